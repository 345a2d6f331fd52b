"""Recording the SGD trajectory: the loss around each optimizer step and the
change of every prunable tensor.

For optimizer step ``t`` on minibatch ``B_t`` the recorder stores

* ``loss_before[t] = L(θ^{t-1}; B_t)``: the training loss of the step,
* ``loss_after[t] = L(θ^t; B_t)``: the loss on the *same* minibatch after the
  step (seed 001 §3, "we collect the loss before and after the gradient step"),
* ``Δθ^t = θ^t − θ^{t-1}`` for each recorded tensor, the optimizer's real step
  (plain SGD, momentum, weight decay, masks: whatever the optimizer did),
* ``η_t`` per recorded tensor: the learning rate of the optimizer's parameter
  group holding it at step ``t`` (what a schedule set), and
* ``||g^t||``: the Euclidean norm of the step's gradient over all recorded
  tensors (unscaled under a ``GradScaler``).

The after-step forward pass never disturbs training: it runs without autograd,
with the random state the before-step pass saw (dropout draws the same mask) and
with every buffer (BatchNorm running statistics) restored afterwards, so a
recorded and an unrecorded run with the same seed end with bit-identical weights
on the CPU.  With ``loss_change="consecutive"`` the after-step pass is skipped and
``ΔL`` is later taken between consecutive minibatches (seed 000 eq. 8): free but
noisier.

Stores hold plain NumPy arrays; :class:`Trajectory` is the interface that a
disk-backed store will also implement.
"""

import contextlib
import warnings
from abc import ABC, abstractmethod

import numpy as np
import torch

from .._checks import check_choice
from ..design.granger import LOSS_CHANGES
from ..exceptions import GrangerPruneWarning, NonFiniteLossError


class Trajectory(ABC):
    """A recorded trajectory of ``n_steps`` optimizer steps.

    Parameters
    ----------
    shapes : mapping of str to tuple of int
        The recorded tensors' names and shapes, in recording order.
    """

    def __init__(self, shapes):
        if not shapes:
            raise ValueError("shapes is empty: a trajectory needs at least one tensor to record")
        self.shapes = {name: tuple(shape) for name, shape in shapes.items()}

    @property
    def names(self):
        """Names of the recorded tensors, in recording order."""
        return tuple(self.shapes)

    @property
    @abstractmethod
    def n_steps(self):
        """Number of recorded steps ``T``."""

    @abstractmethod
    def append(self, loss_before, loss_after, deltas, step_sizes=None, grad_norm=float("nan")):
        """Add one step.

        Parameters
        ----------
        loss_before, loss_after : float
            Minibatch loss before and after the step (``nan`` when not measured).
        deltas : mapping of str to ndarray
            ``Δθ`` of every recorded tensor, any shape with the tensor's size.
        step_sizes : float or mapping of str to float, optional
            The learning rate ``η_t`` of the step, for every tensor or per tensor
            (``nan`` when not known).
        grad_norm : float
            ``||g^t||`` over the recorded tensors (``nan`` when not known).
        """

    @abstractmethod
    def step_sizes(self, name):
        """Return ``η_t`` of tensor ``name`` at every step, a float64 array of shape (T,)."""

    @abstractmethod
    def grad_norms(self):
        """Return ``||g^t||`` of every step, a float64 array of shape (T,)."""

    @abstractmethod
    def losses(self):
        """Return ``(loss_before, loss_after)``, two float64 arrays of shape (T,)."""

    @abstractmethod
    def deltas(self, name):
        """Return ``Δθ`` of tensor ``name`` as a float32 array of shape (T, size)."""

    def __len__(self):
        return self.n_steps

    def __repr__(self):
        return f"{type(self).__name__}(n_steps={self.n_steps}, tensors={list(self.names)})"


class InMemoryTrajectory(Trajectory):
    """A :class:`Trajectory` kept in host memory, one float32 row per step and tensor."""

    def __init__(self, shapes):
        super().__init__(shapes)
        self._loss_before = []
        self._loss_after = []
        self._deltas = {name: [] for name in self.shapes}
        self._step_sizes = {name: [] for name in self.shapes}
        self._grad_norms = []

    @property
    def n_steps(self):
        return len(self._loss_before)

    def append(self, loss_before, loss_after, deltas, step_sizes=None, grad_norm=float("nan")):
        missing = set(self.shapes) - set(deltas)
        if missing:
            raise ValueError(f"deltas lacks recorded tensors {sorted(missing)}")
        rows = {}
        for name, shape in self.shapes.items():
            row = np.asarray(deltas[name], dtype=np.float32).reshape(-1)
            if row.size != int(np.prod(shape)):
                raise ValueError(
                    f"deltas[{name!r}] has {row.size} entries, expected {int(np.prod(shape))}"
                )
            rows[name] = row
        if step_sizes is None or np.isscalar(step_sizes):
            step_sizes = dict.fromkeys(self.shapes, float("nan") if step_sizes is None else step_sizes)
        etas = {name: float(step_sizes.get(name, float("nan"))) for name in self.shapes}
        for name, row in rows.items():
            self._deltas[name].append(row)
            self._step_sizes[name].append(etas[name])
        self._loss_before.append(float(loss_before))
        self._loss_after.append(float(loss_after))
        self._grad_norms.append(float(grad_norm))

    def losses(self):
        return (np.asarray(self._loss_before, dtype=np.float64),
                np.asarray(self._loss_after, dtype=np.float64))

    def step_sizes(self, name):
        self._check_name(name)
        return np.asarray(self._step_sizes[name], dtype=np.float64)

    def grad_norms(self):
        return np.asarray(self._grad_norms, dtype=np.float64)

    def _check_name(self, name):
        if name not in self.shapes:
            raise KeyError(f"no recorded tensor named {name!r}; recorded: {list(self.shapes)}")

    def deltas(self, name):
        self._check_name(name)
        size = int(np.prod(self.shapes[name]))
        if not self._deltas[name]:
            return np.empty((0, size), dtype=np.float32)
        return np.stack(self._deltas[name])


def optimizer_step(model, optimizer, loss_fn, inputs, targets, step=None, *, scaler=None,
                   autocast_dtype=None):
    """One ordinary training step; returns ``(loss, taken)``: the minibatch loss as a
    float, and whether the optimizer took the step.

    Recorded and unrecorded training both go through this function, so the
    recorder cannot drift from plain training.  With a ``torch.amp.GradScaler``
    the loss is scaled before ``backward()`` and the step goes through
    ``scaler.step``; a step the scaler skips (inf or NaN gradients) is not taken,
    which the scaler's lowered scale after ``update()`` tells.  With
    ``autocast_dtype`` (e.g. ``torch.bfloat16``) the forward pass runs under
    ``torch.autocast`` on the model's device.

    Raises
    ------
    NonFiniteLossError
        When the loss is NaN or infinite; raised before ``backward()``, so the
        parameters are left as they were.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast(model, autocast_dtype):
        loss = loss_fn(model(inputs), targets)
    value = loss.item()
    if not np.isfinite(value):
        where = "" if step is None else f" at step {step}"
        raise NonFiniteLossError(f"the training loss is {value}{where}; the parameters were not updated")
    if scaler is None:
        loss.backward()
        optimizer.step()
        return value, True
    scaler.scale(loss).backward()
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return value, scaler.get_scale() >= scale  # the scaler backs off exactly when it skipped


def model_device(model):
    """The device of ``model``'s first parameter (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def autocast(model, dtype):
    """``torch.autocast`` on the device of ``model``'s parameters, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(model_device(model).type, dtype=dtype)


def _rng_states(device):
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return cpu, cuda


def _set_rng_states(states, device):
    cpu, cuda = states
    torch.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


class TrajectoryRecorder:
    """Record the trajectory of the real optimizer while it trains ``model``.

    Parameters
    ----------
    model : torch.nn.Module
    params : mapping of str to torch.nn.Parameter
        The tensors whose changes are recorded (usually the prunable weights).
    trajectory : Trajectory, optional
        Where the steps go; a new :class:`InMemoryTrajectory` by default.
    loss_change : {"same_batch", "consecutive"}
        ``"same_batch"`` (default) measures the loss after each step on the
        step's own minibatch, costing one forward pass; ``"consecutive"`` skips it.
    autocast_dtype : torch.dtype, optional
        Run the forward passes under ``torch.autocast`` with this dtype (mixed
        precision); pass the ``GradScaler`` to :meth:`step`.  A step the scaler
        skips is not recorded (it changed nothing); ``n_skipped`` counts them.

    Examples
    --------
    >>> recorder = TrajectoryRecorder(model, prunable_parameters(model))  # doctest: +SKIP
    >>> for x, y in loader:                                             # doctest: +SKIP
    ...     recorder.step(optimizer, loss_fn, x, y)
    >>> recorder.trajectory.n_steps                                     # doctest: +SKIP
    """

    def __init__(self, model, params, trajectory=None, loss_change="same_batch", autocast_dtype=None):
        check_choice("loss_change", loss_change, LOSS_CHANGES)
        self.autocast_dtype = autocast_dtype
        #: Steps a ``GradScaler`` skipped: not taken, so not recorded.
        self.n_skipped = 0
        #: The learning rate (first parameter group) of every recorded step; the
        #: trajectory keeps each tensor's own (:meth:`Trajectory.step_sizes`).
        self.step_sizes = []
        self._warned_optimizer = False
        self._warned_step_size = False
        params = dict(params)
        if not params:
            raise ValueError("params is empty: there are no prunable parameters to record")
        self.model = model
        self.params = params
        self.loss_change = loss_change
        if trajectory is None:
            trajectory = InMemoryTrajectory({n: tuple(p.shape) for n, p in params.items()})
        self.trajectory = trajectory

    def step(self, optimizer, loss_fn, inputs, targets, scaler=None):
        """Take one optimizer step on ``(inputs, targets)`` and record it.

        With a ``torch.amp.GradScaler`` the step goes through it; a step it
        skips is not recorded.

        Returns
        -------
        float
            The minibatch loss before the step (the usual training loss).

        Raises
        ------
        NonFiniteLossError
            When the loss before or after the step is NaN or infinite.
        """
        step_index = self.trajectory.n_steps
        if not isinstance(optimizer, torch.optim.SGD) and not self._warned_optimizer:
            self._warned_optimizer = True
            warnings.warn(
                f"recording {type(optimizer).__name__} steps: the Granger designs are derived for "
                "SGD steps (with or without momentum); under an adaptive optimizer such as Adam or "
                "AdamW each parameter's step is rescaled, so the design is an approximation",
                GrangerPruneWarning, stacklevel=2)
        device = next(iter(self.params.values())).device
        rng_before = _rng_states(device)
        theta_before = {n: p.detach().clone() for n, p in self.params.items()}

        loss_before, taken = optimizer_step(self.model, optimizer, loss_fn, inputs, targets,
                                            step=f"{step_index} of the recording", scaler=scaler,
                                            autocast_dtype=self.autocast_dtype)
        if not taken:
            self.n_skipped += 1
            return loss_before

        loss_after = float("nan")
        if self.loss_change == "same_batch":
            loss_after = self._loss_after_step(loss_fn, inputs, targets, rng_before, device)
            if not np.isfinite(loss_after):
                raise NonFiniteLossError(
                    f"the loss after step {step_index} of the recording is {loss_after}")

        deltas = {n: (p.detach() - theta_before[n]).cpu().numpy() for n, p in self.params.items()}
        self.trajectory.append(loss_before, loss_after, deltas, step_sizes=self._group_rates(optimizer),
                               grad_norm=self._grad_norm())
        self.step_sizes.append(float(optimizer.param_groups[0]["lr"]))
        if self.step_sizes[-1] != self.step_sizes[0] and not self._warned_step_size:
            self._warned_step_size = True
            warnings.warn(
                f"the learning rate changes within the recorded steps ({self.step_sizes[0]:g} at the "
                f"first, {self.step_sizes[-1]:g} at step {step_index}): the vanilla design fits one "
                "coefficient per parameter, which assumes one step size; divide by the recorded rates "
                "(DesignSpec(step_size='divide')) or record at a constant rate",
                GrangerPruneWarning, stacklevel=2)
        return loss_before

    def _group_rates(self, optimizer):
        """The learning rate of the parameter group of every recorded tensor (nan if in none)."""
        rate = {id(p): float(group["lr"]) for group in optimizer.param_groups for p in group["params"]}
        return {n: rate.get(id(p), float("nan")) for n, p in self.params.items()}

    def _grad_norm(self):
        """``||g||`` over the recorded tensors' gradients of the step just taken."""
        grads = [p.grad.detach().double().norm() for p in self.params.values() if p.grad is not None]
        return float(torch.stack(grads).norm()) if grads else float("nan")

    def _loss_after_step(self, loss_fn, inputs, targets, rng_before, device):
        rng_after = _rng_states(device)
        buffers = [b.detach().clone() for b in self.model.buffers()]
        try:
            _set_rng_states(rng_before, device)
            with torch.no_grad(), autocast(self.model, self.autocast_dtype):
                loss = float(loss_fn(self.model(inputs), targets))
        finally:
            with torch.no_grad():
                for b, saved in zip(self.model.buffers(), buffers):
                    b.copy_(saved)
            _set_rng_states(rng_after, device)
        return loss

