"""Training loops and Algorithm 1 (causal pruning with rewinding).

Algorithm 1 of both seeds::

    train N_pre epochs; remember θ_pre
    repeat N_iter times:
        train N_prune epochs (recording the trajectory when the method needs it)
        select the surviving parameters (prune a fraction of those alive)
        rewind: every weight back to θ_pre, pruned weights to zero
    train N_post epochs with the masks enforced; evaluate

Every method (causal and the baselines) runs under this identical schedule.
The optimizer is rebuilt after each rewind, so no momentum carries across rounds.
"""

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..criteria import RoundInputs
from ..selection.masks import full_masks, sparsity as mask_sparsity
from ..network.pruning import MaskEnforcer, named_parameters, weights_numpy
from ..selection.keep import density_schedule
from ..network.structure import pruning_units
from .._checks import check_choice
from .._progress import progress
from ..placement import release_device_memory
from ..record.recorder import TrajectoryRecorder, optimizer_step
from .resume import RoundState
from .optim import PHASES, OptimizerSpec, build_phase, mixed_precision
from .task import (DataLoaders, Objective, evaluate_batches, evaluation_batches, has_validation,
                   model_device, on_device, steps_per_epoch, training_batches)


@dataclass(frozen=True)
class Schedule:
    """Epoch counts of Algorithm 1.

    Attributes
    ----------
    n_pre : int >= 0
        Epochs of pre-training before pruning starts.
    n_iter : int >= 1
        Pruning rounds.
    n_prune : int >= 1
        Epochs trained (and recorded) in each round before selecting.
    n_post : int >= 0
        Epochs of post-training with the final masks.
    keep_best : bool
        Keep the post-training epoch with the best validation metric (its
        weights are restored before the test evaluation) instead of the last;
        needs a validation split.  False (default): the last epoch, as the papers.
    """

    n_pre: int = 10
    n_iter: int = 3
    n_prune: int = 2
    n_post: int = 20
    keep_best: bool = False

    def __post_init__(self):
        if not isinstance(self.keep_best, bool):
            raise ValueError(f"keep_best must be true or false, got {self.keep_best!r}")
        for name, low in (("n_pre", 0), ("n_iter", 1), ("n_prune", 1), ("n_post", 0)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True)
class SGDConfig:
    """Plain SGD with one constant learning rate in every phase, and the batch size
    (the shorthand of :class:`~granger_prune.training.TrainingConfig`)."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32

    def __post_init__(self):
        for name in ("lr", "momentum", "weight_decay", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ValueError(f"{name} must be a number, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {self.weight_decay!r}")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {self.batch_size!r}")

    def make(self, model):
        """A fresh optimizer over all of ``model``'s parameters."""
        return self.phase("pre").optimizer(model.parameters())

    def phase(self, name):
        """Every phase's :class:`~granger_prune.training.OptimizerSpec`: plain SGD at a constant rate."""
        check_choice("phase", name, PHASES)
        return OptimizerSpec("sgd", lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    #: Full precision (see :class:`~granger_prune.training.TrainingConfig` for mixed precision).
    precision = None

    def build(self, model, phase, steps_per_epoch, n_epochs):
        """A fresh optimizer for ``phase`` and its scheduler (None: a constant rate)."""
        return build_phase(self.phase(phase), model, steps_per_epoch, n_epochs)


def train_epochs(model, batches, optimizer, n_epochs, *, loss_fn=None, recorder=None, scheduler=None,
                 scaler=None, autocast_dtype=None):
    """Train ``n_epochs`` over ``batches``; return the mean training loss of each epoch.

    With a :class:`~granger_prune.record.TrajectoryRecorder` every step is
    recorded (a recorder made with the same ``autocast_dtype``); without one the
    steps are plain ``optimizer_step`` calls.  A learning-rate ``scheduler`` is
    stepped after every step taken; ``scaler`` and ``autocast_dtype`` are
    those of :func:`~granger_prune.record.optimizer_step` (mixed precision).
    """
    loss_fn = loss_fn or nn.functional.cross_entropy
    model.train()
    device = model_device(model)
    means = []
    what = "recording" if recorder is not None else "training"
    for epoch in progress(range(n_epochs), desc=what, unit="epoch"):
        total, count = 0.0, 0
        for i, batch in enumerate(batches):
            x, y = on_device(batch, device)
            if recorder is not None:
                skipped = recorder.n_skipped
                loss = recorder.step(optimizer, loss_fn, x, y, scaler=scaler)
                taken = recorder.n_skipped == skipped
            else:
                loss, taken = optimizer_step(model, optimizer, loss_fn, x, y, step=f"{i} of epoch {epoch}",
                                             scaler=scaler, autocast_dtype=autocast_dtype)
            if scheduler is not None and taken:  # a step the scaler skipped moves no schedule
                scheduler.step()
            total += loss * len(x)
            count += len(x)
        means.append(total / count)
    return means


def evaluate(model, x, y, loss_fn=None):
    """Return ``(accuracy, mean loss)`` of ``model`` on ``(x, y)`` in eval mode
    (:func:`~granger_prune.training.task.evaluate_batches` for other metrics and loaders)."""
    return evaluate_batches(model, [(x, y)], Objective(loss=loss_fn or "cross_entropy"))


def snapshot(model):
    """A detached copy of ``model.state_dict()``, to rewind to later."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class PruningResult:
    """Outcome of :func:`prune_and_retrain`.

    Attributes
    ----------
    masks : dict of str to bool ndarray
        The final surviving parameters, for the tensors the method selects on
        (Linear/Conv weights; with filters or layers also their biases and
        BatchNorm parameters, see :func:`granger_prune.network.structure.pruning_units`).
    metric, loss : float
        The test metric (``metric_name``) and loss after post-training.
    sparsity : float
        Achieved fraction of pruned parameters among those tensors.
    diagnostics : pandas.DataFrame
        The method's per-round diagnostics (for the causal method one row per
        fitted lasso problem or test family and round, for Taylor the minibatches
        averaged over; empty for magnitude and random), with a ``round`` column.
    seconds : float
        Wall time of the pruning rounds and post-training.
    metric_name : str
        What ``metric`` is (``"accuracy"`` by default); ``accuracy`` reads it then.
    val_metric, val_loss : float
        The same on the validation split (NaN when the data has none).
    best_epoch : int
        The post-training epoch whose weights were evaluated (1-based; ``n_post``,
        the last, unless ``Schedule.keep_best`` chose another on the validation
        split; 0 when there was no post-training).
    """

    masks: dict
    metric: float
    loss: float
    sparsity: float
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)
    seconds: float = 0.0
    metric_name: str = "accuracy"
    val_metric: float = float("nan")
    val_loss: float = float("nan")
    best_epoch: int = 0

    @property
    def accuracy(self):
        """The test accuracy, when the metric is accuracy."""
        if self.metric_name != "accuracy":
            raise AttributeError(f"the run's metric is {self.metric_name!r}, not accuracy: read .metric")
        return self.metric


def pretrain(model, data, schedule, sgd, seed, objective=Objective()):
    """Train ``schedule.n_pre`` epochs from the model's current weights; return θ_pre.

    ``data``, ``sgd`` and ``objective`` are as for :func:`prune_and_retrain`."""
    torch.manual_seed(seed)
    batches = minibatches(data, sgd, seed)
    optimizer, scheduler = sgd.build(model, "pre", steps_per_epoch(batches), schedule.n_pre)
    dtype, scaler = mixed_precision(sgd.precision, model)
    train_epochs(model, batches, optimizer, schedule.n_pre, loss_fn=objective.loss_fn, scheduler=scheduler,
                 scaler=scaler, autocast_dtype=dtype)
    return snapshot(model)


def prune_and_retrain(model, data, method, sparsity, *, schedule, sgd, seed, pretrained_state,
                      objective=Objective(), store=None, checkpoint=None):
    """Run Algorithm 1's pruning rounds and post-training from ``pretrained_state``.

    Parameters
    ----------
    model : torch.nn.Module
        Its weights are overwritten by ``pretrained_state`` first.
    data : granger_prune.training.DataLoaders or granger_prune.zoo.TensorData
        A user's training (and test) loaders, or an in-memory dataset, whose
        training set is drawn in ``sgd.batch_size`` minibatches shuffled by ``seed``.
    method : granger_prune.criteria.PruningMethod
        A criterion: it gets what its ``needs`` declare (the round's recorded
        trajectory; the model, its parameters and minibatches of the training
        data; or only the weights).
    sparsity : float in [0, 1) or None
        Target sparsity of the rank rules: the fraction of units pruned
        (weights, or filters and layers with ``method.granularity``); the zero
        and significance rules take ``None`` and keep, each round, the units
        with non-zero lasso coefficients or significant F-tests.
    schedule : Schedule
    sgd : SGDConfig or TrainingConfig
        The batch size and each phase's optimizer and learning-rate schedule
        (plain SGD at a constant rate with ``SGDConfig``).
    seed : int
        Seeds the minibatch order and the method's randomness.
    pretrained_state : dict
        θ_pre from :func:`pretrain`; the surviving weights are rewound to it.
    objective : Objective
        The training loss and the reported metric (cross-entropy and accuracy
        by default; ``Objective("mse", "mse")`` for regression).
    store : granger_prune.record.DiskStore or DeviceStore, optional
        Record each round's trajectory to disk, or keep it on the model's device
        (a round that would not fit the store's budget, free disk or device
        memory is refused before any training); in host memory by default.
    checkpoint : object, optional
        Where the state between rounds is kept, to continue after a crash: its
        ``load()`` returns the last saved
        :class:`~granger_prune.training.resume.RoundState` (None: start at round
        0) and ``save(state)`` keeps one and returns it as it will be read back
        (e.g. :class:`~granger_prune.study.run_folder.RoundCheckpoints`).  The
        rounds after the saved one run from the saved masks and random states,
        so the result equals a run without a stop (bit for bit on the CPU).

    Returns
    -------
    PruningResult
    """
    start = time.perf_counter()
    params, groups = pruning_units(model, method.granularity)
    if not params:
        raise ValueError("the model has no prunable parameters (no Linear or Conv weights)")
    batches = minibatches(data, sgd, seed)
    evaluation_batches(data, "test")  # a missing test split fails now, not after the training
    n_recorded = schedule.n_prune * steps_per_epoch(batches)
    method.check_recorded_steps(n_recorded)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    if store is not None and "trajectory" in method.needs:
        store.check(shapes, n_recorded)
    if not method.targets_sparsity:
        densities = [None] * schedule.n_iter
    elif sparsity is None:
        raise ValueError(f"sparsity is required by the rank rule of {method.label}")
    else:
        densities = density_schedule(sparsity, schedule.n_iter)
    model.load_state_dict(pretrained_state)
    alive = full_masks(params)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    diagnostics, first_round, seconds_before = [], 0, 0.0
    saved = None if checkpoint is None else checkpoint.load()
    if saved is not None:
        saved.restore(rng, batches, model_device(model))
        alive, diagnostics = _checked_alive(saved.alive, params), list(saved.diagnostics)
        first_round, seconds_before = saved.next_round, saved.seconds
    for round_index, density in enumerate(densities):
        if round_index < first_round:
            continue
        optimizer, scheduler = sgd.build(model, "prune", steps_per_epoch(batches), schedule.n_prune)
        enforcer = MaskEnforcer(params, alive).attach(optimizer)
        dtype, scaler = mixed_precision(sgd.precision, model)
        recorder = None
        if "trajectory" in method.needs:
            trajectory = None if store is None else store.new(shapes, n_recorded)
            recorder = TrajectoryRecorder(model, params, trajectory=trajectory, autocast_dtype=dtype,
                                          **method.recorder_options())
        train_epochs(model, batches, optimizer, schedule.n_prune, loss_fn=objective.loss_fn, recorder=recorder,
                     scheduler=scheduler, scaler=scaler, autocast_dtype=dtype)
        enforcer.detach()
        if recorder is not None:
            recorder.close()  # every step in the store, the writer thread stopped
        device = model_device(model)
        if recorder is not None and device.type == "cuda":
            torch.cuda.empty_cache()  # torch's cached blocks, for the statistics on the device
        inputs = RoundInputs(weights=weights_numpy(params), groups=groups, rng=rng,
                             trajectory=recorder.trajectory if recorder else None,
                             device=str(device))
        if "model" in method.needs:
            inputs.model, inputs.params, inputs.loss_fn = model, params, objective.loss_fn
            inputs.batches = gradient_batches(data, sgd, rng)
        selection = method.select(alive, density, inputs)
        if store is not None and recorder is not None:
            store.release(inputs.trajectory)
        if device.type == "cuda":
            release_device_memory()  # CuPy's unused blocks, for the next round's training
        alive = selection.masks
        if len(selection.diagnostics):
            diagnostics.append(selection.diagnostics.assign(round=round_index))
        model.load_state_dict(pretrained_state)
        if checkpoint is not None:  # go on from what was saved, as a resumed run will
            state = checkpoint.save(RoundState.capture(
                round_index + 1, alive, rng, batches, model_device(model), diagnostics,
                seconds_before + time.perf_counter() - start))
            alive, diagnostics = state.alive, list(state.diagnostics)

    post = post_train(model, data, alive, schedule=schedule, sgd=sgd, batches=batches, objective=objective)
    return PruningResult(
        masks=alive, metric=post.metric, loss=post.loss, sparsity=mask_sparsity(alive),
        metric_name=objective.metric_name, val_metric=post.val_metric, val_loss=post.val_loss,
        best_epoch=post.best_epoch,
        diagnostics=pd.concat(diagnostics, ignore_index=True) if diagnostics else pd.DataFrame(),
        seconds=seconds_before + time.perf_counter() - start,
    )


def _checked_alive(alive, params):
    """Saved masks, checked against the parameters they must fit."""
    if set(alive) != set(params):
        raise ValueError(f"the saved masks cover tensors {sorted(alive)}, the model's prunable "
                         f"tensors are {sorted(params)}: not a state of this model")
    for name, p in params.items():
        if tuple(alive[name].shape) != tuple(p.shape):
            raise ValueError(f"the saved mask of {name!r} has shape {tuple(alive[name].shape)}, the "
                             f"parameter {tuple(p.shape)}: not a state of this model")
    return alive


@dataclass(frozen=True)
class PostTraining:
    """What :func:`post_train` measured on the weights it kept.

    Attributes
    ----------
    metric, loss : float
        Test metric and loss.
    val_metric, val_loss : float
        Validation metric and loss (NaN without a validation split).
    best_epoch : int
        The epoch kept (1-based; ``n_post`` unless ``schedule.keep_best``; 0 for ``n_post = 0``).
    """

    metric: float
    loss: float
    val_metric: float
    val_loss: float
    best_epoch: int


def post_train(model, data, masks, *, schedule, sgd, batches, objective=Objective()):
    """Zero the pruned weights and train ``n_post`` epochs keeping them zero.

    With ``schedule.keep_best`` the validation metric is measured after every
    epoch and the best epoch's weights are restored (the first of equals); the
    test split is evaluated once, on the weights kept.  ``masks`` names the
    model's parameters it covers (``model.named_parameters()``).

    Returns
    -------
    PostTraining
    """
    if schedule.keep_best and not has_validation(data):
        raise ValueError("Schedule(keep_best=True) chooses the epoch on the validation split, and the "
                         "data has none: give a validation loader or TensorData.with_validation(fraction)")
    optimizer, scheduler = sgd.build(model, "post", steps_per_epoch(batches), schedule.n_post)
    enforcer = MaskEnforcer(named_parameters(model, masks), masks).attach(optimizer)
    dtype, scaler = mixed_precision(sgd.precision, model)
    train = dict(loss_fn=objective.loss_fn, scheduler=scheduler, scaler=scaler, autocast_dtype=dtype)
    best_epoch = schedule.n_post
    if schedule.keep_best and schedule.n_post:
        best, best_state = None, None
        for epoch in range(1, schedule.n_post + 1):
            train_epochs(model, batches, optimizer, 1, **train)
            value, _ = validation_metrics(model, data, objective)
            if objective.improves(value, best):
                best, best_state, best_epoch = value, snapshot(model), epoch
        model.load_state_dict(best_state)
    else:
        train_epochs(model, batches, optimizer, schedule.n_post, **train)
    enforcer.detach()
    metric, loss = evaluate_batches(model, evaluation_batches(data, "test"), objective)
    val_metric, val_loss = validation_metrics(model, data, objective)
    return PostTraining(metric, loss, val_metric, val_loss, best_epoch)


def validation_metrics(model, data, objective=Objective()):
    """``(metric, loss)`` of ``model`` on the validation split of ``data``; NaN without one."""
    if not has_validation(data):
        return float("nan"), float("nan")
    return evaluate_batches(model, evaluation_batches(data, "validation"), objective)


def gradient_batches(data, sgd, rng):
    """Minibatches of the training set for a criterion's gradients: the user's training
    loader (whose own generator, if it has one, it advances), or in-memory minibatches in
    an order drawn from the run's ``rng``, which leaves the training order as it is."""
    if isinstance(data, DataLoaders):
        return data.train
    return training_batches(data, sgd.batch_size, int(rng.integers(2**62)))


def minibatches(data, sgd, seed):
    """One epoch's minibatches: the user's training loader, or the in-memory training
    set in ``sgd.batch_size`` minibatches shuffled by ``seed`` each epoch."""
    return training_batches(data, sgd.batch_size, seed)
