"""Recording the SGD trajectory while the model trains (torch).

:class:`TrajectoryRecorder` takes the real optimizer's steps and records, for
each, the loss before and after the step on the step's minibatch and every
recorded tensor's change (see :mod:`granger_prune.record.trajectory` for what a
trajectory holds).

The after-step forward pass never disturbs training: it runs without autograd,
with the random state the before-step pass saw (dropout draws the same mask) and
with every buffer (BatchNorm running statistics) restored afterwards, so a
recorded and an unrecorded run with the same seed end with bit-identical weights
on the CPU.  With ``loss_change="consecutive"`` the after-step pass is skipped and
``ΔL`` is later taken between consecutive minibatches (seed 000 eq. 8): free but
noisier.

Recording costs little beyond that forward pass: the buffer
(:mod:`granger_prune.record.buffer`) copies the recorded tensors once per step
into a preallocated block on the model's device, and ``Δθ^t = θ^t − θ^{t−1}``
is formed a block at a time (on the CPU by the writer thread); the gradient norm
comes from the non-finite check of the gradients that every training step makes.  A step post-hook counts the optimizer's
steps, so a step taken outside :meth:`TrajectoryRecorder.step` restarts the chain
of parameters instead of being counted in the next recorded change; a change
made to the parameters by hand between two recorded steps is counted in the next
one (start a new recorder after one).  On CUDA the loss after the step stays on
the device until its block is flushed, where its non-finite check runs (the loss
before every step is checked at once, as training does).
"""

import contextlib
import math
import warnings

import torch

from .._checks import check_choice
from ..design.granger import LOSS_CHANGES
from ..exceptions import GrangerPruneWarning, NonFiniteGradientError, NonFiniteLossError
from .buffer import StepBuffer
from .trajectory import InMemoryTrajectory


def optimizer_step(model, optimizer, loss_fn, inputs, targets, step=None, *, scaler=None,
                   autocast_dtype=None, return_grad_norms=False):
    """One ordinary training step; returns ``(loss, taken)``: the minibatch loss as a
    float, and whether the optimizer took the step; with ``return_grad_norms``,
    ``(loss, taken, norms)`` with the :func:`gradient_norms` of the step (taken from
    the check, so they cost nothing more; under a scaler, of the unscaled gradients after
    the step).

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
    NonFiniteGradientError
        When a gradient holds NaN or inf (without a scaler, which skips such
        steps itself); raised before ``optimizer.step()``, naming the tensor.
        The check is the gradients' 2-norms (one fused reduction): a NaN or inf
        entry makes its tensor's norm NaN or inf.
    """
    optimizer.zero_grad(set_to_none=True)
    with autocast(model, autocast_dtype):
        loss = loss_fn(model(inputs), targets)
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLossError(f"the training loss is {value}{_at_step(step)}; the parameters were not "
                                 "updated (training diverged? a lower learning rate may help)")
    if scaler is None:
        loss.backward()
        norms = _checked_gradient_norms(model, optimizer, step, value)
        optimizer.step()
        return (value, True, norms) if return_grad_norms else (value, True)
    scaler.scale(loss).backward()
    scale = scaler.get_scale()
    scaler.step(optimizer)  # unscales the gradients in place
    scaler.update()
    taken = scaler.get_scale() >= scale  # the scaler backs off exactly when it skipped
    return (value, taken, gradient_norms(optimizer)) if return_grad_norms else (value, taken)


def gradient_norms(optimizer):
    """The 2-norm of the gradient of every parameter of ``optimizer``.

    Returns
    -------
    torch.Tensor of shape (n,), float32
        One norm per parameter in ``param_groups`` order (0 for a parameter without
        a gradient), on the first gradient's device.  One fused kernel
        (``torch._foreach_norm``, what ``clip_grad_norm_`` uses) when the gradients
        share a device and dtype and are dense; a NaN or inf entry makes its norm
        NaN or inf, and so does a norm beyond float32's range (entries of ~1e19).
    """
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        device = params[0].device if params else torch.device("cpu")
        return torch.zeros(len(params), dtype=torch.float32, device=device)
    device, dtype = grads[0].device, grads[0].dtype
    if (hasattr(torch, "_foreach_norm") and
            all(g.device == device and g.dtype == dtype and not g.is_sparse for g in grads)):
        norms = torch.stack(torch._foreach_norm(grads, 2, dtype=_norm_dtype(dtype))).float()
    else:
        norms = torch.stack([torch.linalg.vector_norm(g.coalesce().values() if g.is_sparse else g,
                                                      dtype=_norm_dtype(g.dtype)).to(device, torch.float32)
                             for g in grads])
    if len(grads) == len(params):
        return norms
    has_grad = torch.tensor([p.grad is not None for p in params], device=device)
    return torch.zeros(len(params), dtype=torch.float32, device=device).masked_scatter_(has_grad, norms)


def _norm_dtype(dtype):
    """float32 for half-precision gradients (their own dtype would overflow at norms of
    ~6e4, as float16 gradients of 1e3 reach), else None (their own)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else None


def _at_step(step):
    """`` at step …`` for an error message, or nothing when ``step`` is None."""
    return "" if step is None else f" at step {step}"


def _checked_gradient_norms(model, optimizer, step, loss):
    """:func:`gradient_norms`, after raising :class:`NonFiniteGradientError` naming the
    first parameter whose gradient holds NaN or inf (one host read of the norms' check:
    a NaN step would wreck the weights it touches).  A norm beyond float32's range with
    finite entries is no error."""
    norms = gradient_norms(optimizer)
    if math.isfinite(float(norms.sum())):  # the norms are >= 0: any NaN or inf shows in the sum
        return norms
    where = _at_step(step)
    for name, p in model.named_parameters():
        if p.grad is not None and not torch.isfinite(p.grad).all():
            bad = int((~torch.isfinite(p.grad)).sum())
            raise NonFiniteGradientError(
                f"the gradient of {name!r} holds {bad} NaN or infinite entries{where} (the loss was "
                f"{loss:.6g}); the parameters were not updated")
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if any(not torch.isfinite(g).all() for g in grads):
        raise NonFiniteGradientError(f"a gradient of a tensor outside the model holds NaN or inf{where}; "
                                     "the parameters were not updated")
    return norms  # finite entries, norms (or their sum) beyond float32's range


def model_device(model):
    """The device of ``model``'s first parameter (the CPU for a model without any)."""
    parameter = next(model.parameters(), None)
    return torch.device("cpu") if parameter is None else parameter.device


def autocast(model, dtype):
    """``torch.autocast`` on the device of ``model``'s parameters, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(model_device(model).type, dtype=dtype)


def rng_states(device):
    """torch's global random states ``(cpu, cuda)`` as tensors; ``cuda`` is None unless
    ``device`` is a CUDA device."""
    cpu = torch.default_generator.get_state()  # what torch.get_rng_state() returns, less a call
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return cpu, cuda


def set_rng_states(states, device):
    """Restore what :func:`rng_states` returned."""
    cpu, cuda = states
    torch.default_generator.set_state(cpu)
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
    chunk_steps : int, optional
        Steps kept on the device before a block goes to the store (default: 64 MiB of
        float32 rows on the CPU, 512 MiB on CUDA, at most 256 steps; see
        :func:`~granger_prune.record.buffer.default_chunk_steps`).

    The steps reach the store a block at a time: :attr:`trajectory` (or
    :meth:`flush`) hands over the steps still in the buffer first.

    Examples
    --------
    >>> recorder = TrajectoryRecorder(model, prunable_parameters(model))  # doctest: +SKIP
    >>> for x, y in loader:                                             # doctest: +SKIP
    ...     recorder.step(optimizer, loss_fn, x, y)
    >>> recorder.trajectory.n_steps                                     # doctest: +SKIP
    """

    def __init__(self, model, params, trajectory=None, loss_change="same_batch", autocast_dtype=None,
                 chunk_steps=None):
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
        self._tensors = list(params.values())
        self.loss_change = loss_change
        shapes = {n: tuple(p.shape) for n, p in params.items()}
        if trajectory is None:
            trajectory = InMemoryTrajectory(shapes)
        elif dict(trajectory.shapes) != shapes:
            where = getattr(trajectory, "path", "the trajectory")
            raise ValueError(f"{where} records tensors {dict(trajectory.shapes)}, the parameters "
                             f"given are {shapes}: a store of another model")
        self._store = trajectory
        self._buffer = StepBuffer(params, trajectory, chunk_steps,
                                  check_after=loss_change == "same_batch")
        self.device = self._buffer.device
        # the after-step check waits for the device only where that is free (the CPU)
        self._check_at_once = self.device.type != "cuda"
        # the model's buffers (BatchNorm statistics), restored after the extra forward pass;
        # listed once (a walk over the modules costs more than the copies)
        self._buffers = list(model.buffers())
        self._saved_buffers = [torch.empty_like(b) for b in self._buffers]
        self._layout_of = (None,)
        # the optimizer whose steps are recorded, with the hook that counts its steps
        self._hooked, self._hooks = None, []
        self._optimizer_steps = self._expected_steps = 0

    @property
    def trajectory(self):
        """The store, holding every step recorded so far (the buffer is flushed first)."""
        self._buffer.flush(wait=True)
        return self._store

    @property
    def n_steps(self):
        """Steps recorded so far, in the store or still in the buffer."""
        return self._buffer.n_steps

    def flush(self):
        """Hand the buffered steps to the store and wait until it has them."""
        self._buffer.flush(wait=True)

    def close(self):
        """Flush, remove the optimizer hook and stop the writer thread (the store stays)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks, self._hooked = [], None
        self._buffer.close()

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
            When the loss before or after the step is NaN or infinite (on CUDA,
            the loss after a step is checked when its block is flushed).
        """
        step_index = self._buffer.n_steps
        if not isinstance(optimizer, torch.optim.SGD) and not self._warned_optimizer:
            self._warned_optimizer = True
            warnings.warn(
                f"recording {type(optimizer).__name__} steps: the Granger designs are derived for "
                "SGD steps (with or without momentum); under an adaptive optimizer such as Adam or "
                "AdamW each parameter's step is rescaled, so the design is an approximation",
                GrangerPruneWarning, stacklevel=2)
        self._watch(optimizer)
        if self._optimizer_steps != self._expected_steps:  # a step taken outside the recorder
            self._buffer.restart()
        rng_before = rng_states(self.device)
        self._buffer.begin(self._tensors)

        loss_before, taken, norms = optimizer_step(
            self.model, optimizer, loss_fn, inputs, targets, step=f"{step_index} of the recording",
            scaler=scaler, autocast_dtype=self.autocast_dtype, return_grad_norms=True)
        if not taken:
            self.n_skipped += 1
            return loss_before

        loss_after = float("nan")
        if self.loss_change == "same_batch":
            loss_after = self._loss_after_step(loss_fn, inputs, targets, rng_before)
            if self._check_at_once:
                loss_after = float(loss_after)
                if not math.isfinite(loss_after):
                    raise NonFiniteLossError(
                        f"the loss after step {step_index} of the recording is {loss_after}")
        self._expected_steps = self._optimizer_steps
        groups, inside, outside = self._layout(optimizer)
        self._buffer.commit(self._tensors, loss_before, loss_after, self._group_rates(optimizer, groups),
                            self._recorded_grad_norm(norms, inside, outside))
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

    def _layout(self, optimizer):
        """Per recorded tensor, its parameter group (None when it is in none); the positions
        among the optimizer's parameters of the recorded tensors in it (on CUDA an index
        tensor: a host list as index is a copy per step); the recorded tensors outside it.
        Looked up once per optimizer."""
        if self._layout_of[0] is not optimizer:
            where = {id(p): (k, i) for i, (k, p) in enumerate(
                (k, p) for k, g in enumerate(optimizer.param_groups) for p in g["params"])}
            found = [where.get(id(p), (None, None)) for p in self._tensors]
            inside = [i for _, i in found if i is not None]
            if self.device.type == "cuda":
                inside = torch.tensor(inside, dtype=torch.long, device=self.device)
            outside = [p for p, (_, i) in zip(self._tensors, found) if i is None]
            self._layout_of = (optimizer, [k for k, _ in found], inside, outside)
        return self._layout_of[1:]

    @staticmethod
    def _group_rates(optimizer, groups):
        """The learning rate of the parameter group of every recorded tensor (nan if in none)."""
        param_groups = optimizer.param_groups
        return [float("nan") if k is None else param_groups[k]["lr"] for k in groups]

    def _recorded_grad_norm(self, norms, inside, outside):
        """The 2-norm of the recorded tensors' gradients, from the step's :func:`gradient_norms`
        at positions ``inside`` (0 for a tensor without a gradient) and of the ``outside``
        tensors' own: a float; a 0-d tensor on CUDA, with no synchronisation; nan when none
        has a gradient."""
        outside = [p.grad for p in outside if p.grad is not None]
        if self.device.type == "cuda":
            if not any(p.grad is not None for p in self._tensors):
                return float("nan")
            if norms.device != self.device:  # the optimizer's first gradient on another GPU
                norms = norms.to(self.device)
            total = norms[inside].square().sum() if len(inside) else torch.zeros((), device=self.device)
            for g in outside:
                total = total + torch.linalg.vector_norm(g.float()).square()
            return total.sqrt()
        values = norms.tolist()
        norm = math.hypot(*[values[i] for i in inside],
                          *[float(torch.linalg.vector_norm(g.float())) for g in outside])
        if norm == 0 and not any(p.grad is not None for p in self._tensors):
            return float("nan")  # checked only here: a gradient of norm 0 is rare, the check is not free
        return norm

    def _watch(self, optimizer):
        """Hook ``optimizer``: a step post-hook counts its steps (a step taken outside
        :meth:`step` breaks the chain of recorded parameters, which then restarts)."""
        if optimizer is self._hooked:
            return
        for handle in self._hooks:
            handle.remove()
        if self._hooked is not None:
            self._buffer.restart()
        self._hooked = optimizer
        self._optimizer_steps = self._expected_steps = 0
        self._hooks = [optimizer.register_step_post_hook(self._after_optimizer_step)]

    def _after_optimizer_step(self, optimizer, args, kwargs):
        self._optimizer_steps += 1

    def _loss_after_step(self, loss_fn, inputs, targets, rng_before):
        """The loss after the step on the same minibatch, as a tensor (no synchronisation)."""
        rng_after = rng_states(self.device)
        buffers = self._buffers
        with torch.no_grad():  # one context for all of it: entering one costs as much as the copies
            try:
                for saved, b in zip(self._saved_buffers, buffers):
                    saved.copy_(b)
                set_rng_states(rng_before, self.device)
                with autocast(self.model, self.autocast_dtype):
                    loss = loss_fn(self.model(inputs), targets).detach()
            finally:
                for b, saved in zip(buffers, self._saved_buffers):
                    b.copy_(saved)
                set_rng_states(rng_after, self.device)
        return loss
