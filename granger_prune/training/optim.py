"""Optimizers and learning-rate schedules, one per phase of Algorithm 1 (torch).

A phase (pre-training, each pruning round, post-training) trains with an
:class:`OptimizerSpec`: the algorithm (SGD with momentum or Nesterov, Adam,
AdamW) and a schedule (constant, step, cosine, one-cycle), stepped once per
optimizer step over the phase's epochs, so every round restarts it (each round
rewinds the weights).  :class:`TrainingConfig` holds the batch size and one
spec per phase; :class:`~granger_prune.training.SGDConfig` is the plain-SGD
shorthand (one constant learning rate in every phase).  A callable
``factory(parameters) -> torch.optim.Optimizer`` may stand for a spec in Python.

The Granger designs are derived for SGD at one step size (seed 000/001, with or
without momentum); under Adam or AdamW the step is preconditioned per parameter,
and a schedule that changes the rate within a pruning round changes the step
size the design assumes constant: in both cases the design is an approximation,
which the recorder says in a warning (once per round).
"""

from dataclasses import dataclass
from typing import Optional

import torch

from .._checks import check_choice
from .._options import OptionSet, check_number
from ..record.recorder import model_device

ALGORITHMS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine", "one_cycle")
PHASES = ("pre", "prune", "post")
PRECISIONS = ("float16", "bfloat16")


def mixed_precision(precision, model):
    """``(autocast dtype, GradScaler or None)`` of a phase at ``precision`` (None: full
    precision, ``(None, None)``); a fresh scaler per phase, for float16 only."""
    if precision is None:
        return None, None
    dtype = getattr(torch, precision)
    if dtype is not torch.float16:
        return dtype, None
    return dtype, torch.amp.GradScaler(model_device(model).type)


@dataclass(frozen=True)
class OptimizerSpec(OptionSet):
    """One phase's optimizer and learning-rate schedule.

    Parameters
    ----------
    algorithm : {"sgd", "adam", "adamw"}
    lr : float > 0
        The learning rate (constant, the start of step and cosine schedules,
        the peak of one-cycle).
    momentum : float in [0, 1)
        SGD's momentum.
    nesterov : bool
        SGD's Nesterov momentum (needs ``momentum > 0``).
    weight_decay : float >= 0
        L2 penalty (SGD, Adam) or decoupled decay (AdamW; 0 by default here,
        where torch's AdamW defaults to 0.01).
    betas : tuple of two floats in [0, 1)
        Adam's and AdamW's moment decays.
    schedule : {"constant", "step", "cosine", "one_cycle"}
        ``"step"`` multiplies the rate by ``gamma`` every ``step_epochs``
        epochs; ``"cosine"`` anneals it to ``final_lr`` over the phase;
        ``"one_cycle"`` warms up from ``lr / 25`` to ``lr`` over the first
        ``warmup`` fraction of the phase and anneals to ``final_lr`` (to
        ``lr / 2.5e5`` when ``final_lr`` is 0); seed 001's cosine and one-cycle
        schedules between 0.001 and 0.1 are ``lr=0.1, final_lr=0.001``.
    step_epochs : int >= 1
    gamma : float in (0, 1]
    final_lr : float >= 0
    warmup : float in (0, 1)
    """

    algorithm: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple = (0.9, 0.999)
    schedule: str = "constant"
    step_epochs: int = 1
    gamma: float = 0.1
    final_lr: float = 0.0
    warmup: float = 0.3

    def __post_init__(self):
        check_choice("algorithm", self.algorithm, ALGORITHMS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_number("lr", self.lr, low=0, low_open=True)
        check_number("momentum", self.momentum, low=0, high=1, high_open=True)
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"nesterov must be true or false, got {self.nesterov!r}")
        if self.nesterov and not (self.algorithm == "sgd" and self.momentum > 0):
            raise ValueError("nesterov=True needs algorithm='sgd' and momentum > 0")
        check_number("weight_decay", self.weight_decay, low=0)
        betas = tuple(self.betas)
        if len(betas) != 2:
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for beta in betas:
            check_number("betas", beta, low=0, high=1, high_open=True)
        object.__setattr__(self, "betas", betas)  # a TOML list becomes the tuple torch takes
        check_number("step_epochs", self.step_epochs, low=1, integer=True)
        check_number("gamma", self.gamma, low=0, high=1, low_open=True)
        check_number("final_lr", self.final_lr, low=0)
        check_number("warmup", self.warmup, low=0, high=1, low_open=True, high_open=True)
        if self.schedule in ("cosine", "one_cycle") and self.final_lr >= self.lr:
            raise ValueError(f"final_lr must be below lr for a {self.schedule} schedule, got "
                             f"final_lr={self.final_lr!r} and lr={self.lr!r}")

    def optimizer(self, parameters):
        """A fresh ``torch.optim`` optimizer over ``parameters``."""
        if self.algorithm == "sgd":
            return torch.optim.SGD(parameters, lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay, nesterov=self.nesterov)
        algorithm = torch.optim.Adam if self.algorithm == "adam" else torch.optim.AdamW
        return algorithm(parameters, lr=self.lr, betas=self.betas, weight_decay=self.weight_decay)

    def scheduler(self, optimizer, steps_per_epoch, n_epochs):
        """The schedule over a phase of ``n_epochs`` epochs, stepped once per optimizer
        step; None for the constant rate."""
        total = max(1, steps_per_epoch * n_epochs)
        if self.schedule == "constant":
            return None
        if self.schedule == "step":
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.step_epochs * steps_per_epoch,
                                                   gamma=self.gamma)
        if self.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=self.final_lr)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.lr, total_steps=total, pct_start=self.warmup,
            final_div_factor=self.lr / (25.0 * self.final_lr) if self.final_lr > 0 else 1e4,
            cycle_momentum=False)


@dataclass(frozen=True)
class TrainingConfig(OptionSet):
    """The batch size and each phase's optimizer and schedule.

    Parameters
    ----------
    batch_size : int >= 1
    optimizer : OptimizerSpec or callable
        Every phase's, unless the phase has its own.
    pre, prune, post : OptimizerSpec or callable, optional
        Pre-training's, each pruning round's and post-training's.
    precision : {"float16", "bfloat16"}, optional
        Mixed precision: the training forward passes run under ``torch.autocast``
        with this dtype, and with ``"float16"`` every phase steps through a fresh
        ``torch.amp.GradScaler``, whose skipped steps are not recorded.
        Evaluation runs in full precision.  None (default): full precision.
    """

    batch_size: int = 32
    optimizer: object = OptimizerSpec()
    pre: Optional[object] = None
    prune: Optional[object] = None
    post: Optional[object] = None
    precision: Optional[str] = None

    def __post_init__(self):
        check_number("batch_size", self.batch_size, low=1, integer=True)
        if self.precision is not None:
            check_choice("precision", self.precision, PRECISIONS)
        for name in ("optimizer", *PHASES):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, OptimizerSpec) or callable(value)):
                raise ValueError(f"{name} must be an OptimizerSpec or a callable(parameters), got {value!r}")

    @classmethod
    def _option_from_dict(cls, key, table):
        if key in ("optimizer", *PHASES):
            return OptimizerSpec.from_dict(table)
        return super()._option_from_dict(key, table)

    def phase(self, name):
        """The optimizer spec (or factory) of phase ``name``: ``"pre"``, ``"prune"`` or ``"post"``."""
        check_choice("phase", name, PHASES)
        own = getattr(self, name)
        return self.optimizer if own is None else own

    def build(self, model, phase, steps_per_epoch, n_epochs):
        """A fresh optimizer over ``model``'s parameters and its scheduler (or None) for
        ``phase``, a phase of ``n_epochs`` epochs of ``steps_per_epoch`` steps."""
        return build_phase(self.phase(phase), model, steps_per_epoch, n_epochs)


def build_phase(spec, model, steps_per_epoch, n_epochs):
    """``(optimizer, scheduler or None)`` of an :class:`OptimizerSpec` or a factory callable."""
    if isinstance(spec, OptimizerSpec):
        optimizer = spec.optimizer(model.parameters())
        return optimizer, spec.scheduler(optimizer, steps_per_epoch, n_epochs)
    return spec(model.parameters()), None

