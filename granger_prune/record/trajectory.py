"""Recorded trajectories: the loss around each optimizer step and the change of
every recorded tensor, as plain arrays (torch-free).

For optimizer step ``t`` on minibatch ``B_t`` a trajectory holds

* ``loss_before[t] = L(θ^{t-1}; B_t)``: the training loss of the step,
* ``loss_after[t] = L(θ^t; B_t)``: the loss on the *same* minibatch after the
  step (seed 001 §3, "we collect the loss before and after the gradient step"),
* ``Δθ^t = θ^t − θ^{t-1}`` for each recorded tensor, the optimizer's real step,
* ``η_t`` per recorded tensor: the learning rate of the optimizer's parameter
  group holding it at step ``t`` (what a schedule set), and
* ``||g^t||``: the Euclidean norm of the step's gradient over all recorded tensors.

:class:`Trajectory` is the interface every store implements;
:class:`InMemoryTrajectory` keeps the steps in host memory and
:class:`~granger_prune.record.DiskTrajectory` in files.  The
:class:`~granger_prune.record.TrajectoryRecorder` fills either, a block of steps
at a time (:meth:`Trajectory.append_block`).
"""

from abc import ABC, abstractmethod

import numpy as np


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
        self.shapes = {name: tuple(int(n) for n in shape) for name, shape in shapes.items()}

    @property
    def names(self):
        """Names of the recorded tensors, in recording order."""
        return tuple(self.shapes)

    def sizes(self):
        """``{name: number of entries}`` of the recorded tensors."""
        return {name: int(np.prod(shape)) for name, shape in self.shapes.items()}

    @property
    @abstractmethod
    def n_steps(self):
        """Number of recorded steps ``T``."""

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
        if step_sizes is not None and not np.isscalar(step_sizes):
            step_sizes = {name: [value] for name, value in step_sizes.items()}
        self.append_block([loss_before], [loss_after],
                          {name: np.reshape(row, (1, -1)) for name, row in deltas.items()},
                          step_sizes=step_sizes, grad_norms=[grad_norm])

    def append_block(self, loss_before, loss_after, deltas, step_sizes=None, grad_norms=None):
        """Add ``n`` consecutive steps at once.

        Parameters
        ----------
        loss_before, loss_after : array of shape (n,)
        deltas : mapping of str to array of shape (n, size)
            Float32 blocks are kept without a copy where the store allows.
        step_sizes : float, or mapping of str to array of shape (n,), optional
        grad_norms : array of shape (n,), optional
        """
        self._store_block(*self._checked_block(loss_before, loss_after, deltas, step_sizes,
                                               grad_norms))

    def _checked_block(self, loss_before, loss_after, deltas, step_sizes, grad_norms):
        """The block as float64 losses, float32 ``(n, size)`` deltas and float64 rates."""
        loss_before = np.asarray(loss_before, dtype=np.float64).reshape(-1)
        loss_after = np.asarray(loss_after, dtype=np.float64).reshape(-1)
        n = loss_before.size
        if loss_after.size != n:
            raise ValueError(f"loss_after has {loss_after.size} steps, loss_before {n}")
        missing = set(self.shapes) - set(deltas)
        if missing:
            raise ValueError(f"deltas lacks recorded tensors {sorted(missing)}")
        blocks = {}
        for name, size in self.sizes().items():
            block = self._as_rows(deltas[name])
            entries = int(np.prod(block.shape))
            if entries != n * size:
                raise ValueError(f"deltas[{name!r}] has {entries // max(n, 1)} entries per "
                                 f"step, expected {size}")
            blocks[name] = block.reshape(n, size)
        if step_sizes is None or np.isscalar(step_sizes):
            fill = np.nan if step_sizes is None else float(step_sizes)
            step_sizes = dict.fromkeys(self.shapes, np.full(n, fill))
        rates = {name: np.broadcast_to(np.asarray(step_sizes.get(name, np.nan), dtype=np.float64),
                                       (n,)) for name in self.shapes}
        norms = np.full(n, np.nan) if grad_norms is None else np.asarray(grad_norms, np.float64)
        return loss_before, loss_after, blocks, rates, norms.reshape(n)

    @staticmethod
    def _as_rows(block):
        """A block of steps as the store takes it (float32 NumPy here)."""
        return np.asarray(block, dtype=np.float32)

    @abstractmethod
    def _store_block(self, loss_before, loss_after, deltas, step_sizes, grad_norms):
        """Keep a checked block (see :meth:`_checked_block`)."""

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
        """Return ``Δθ`` of tensor ``name``, float32 of shape (T, size): an ndarray, or an
        array-like whose indexing returns ndarrays (a store that decodes on read)."""

    def read_steps(self, name, first, stop, columns):
        """Steps ``first:stop`` of the entries ``columns`` (a slice, or sorted indices: a
        gather in row order) of tensor ``name``, as a new writable float32 array of shape
        (stop - first, n): what a pass over a block of columns reads.  An ndarray from
        :meth:`deltas` (a memory map) is copied; an array-like that decodes on read
        (bfloat16 bits) already returns a new array."""
        steps = self.deltas(name)
        if isinstance(steps, np.ndarray):
            return np.array(steps[first:stop, columns], dtype=np.float32)
        block = np.asarray(steps[first:stop, columns], dtype=np.float32)
        return block if block.flags.writeable else block.copy()

    def _check_name(self, name):
        if name not in self.shapes:
            raise KeyError(f"no recorded tensor named {name!r}; recorded: {list(self.shapes)}")

    def __len__(self):
        return self.n_steps

    def __repr__(self):
        return f"{type(self).__name__}(n_steps={self.n_steps}, tensors={list(self.names)})"


class InMemoryTrajectory(Trajectory):
    """A :class:`Trajectory` kept in host memory: float32 ``(n, size)`` blocks per tensor,
    joined into one ``(T, size)`` array the first time a tensor is read."""

    def __init__(self, shapes):
        super().__init__(shapes)
        self._losses = []
        self._deltas = {name: [] for name in self.shapes}
        self._step_sizes = {name: [] for name in self.shapes}
        self._grad_norms = []
        self._n_steps = 0

    @property
    def n_steps(self):
        return self._n_steps

    def _store_block(self, loss_before, loss_after, deltas, step_sizes, grad_norms):
        for name in self.shapes:
            self._deltas[name].append(deltas[name])
            self._step_sizes[name].append(step_sizes[name])
        self._losses.append(np.stack([loss_before, loss_after], axis=1))
        self._grad_norms.append(grad_norms)
        self._n_steps += loss_before.size

    @staticmethod
    def _joined(blocks, empty):
        """The blocks joined along the steps, kept joined so that a second read copies
        nothing; a read-only view."""
        if not blocks:
            return empty
        if len(blocks) > 1:
            blocks[:] = [np.concatenate(blocks, axis=0)]
        view = blocks[0].view()
        view.flags.writeable = False
        return view

    def losses(self):
        joined = self._joined(self._losses, np.empty((0, 2)))
        return joined[:, 0].copy(), joined[:, 1].copy()

    def step_sizes(self, name):
        self._check_name(name)
        return self._joined(self._step_sizes[name], np.empty(0)).copy()

    def grad_norms(self):
        return self._joined(self._grad_norms, np.empty(0)).copy()

    def deltas(self, name):
        self._check_name(name)
        size = self.sizes()[name]
        return self._joined(self._deltas[name], np.empty((0, size), dtype=np.float32))
