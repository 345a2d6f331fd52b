"""A trajectory whose steps stay on the model's device (torch).

:class:`DeviceTrajectory` keeps the ``Δθ`` of every recorded tensor in one
preallocated float32 ``(capacity, size)`` torch tensor on the device the model
trains on.  The :class:`~granger_prune.record.TrajectoryRecorder` hands it each
flushed block's device tensors (``takes_device_blocks``), so on a GPU the steps
never cross to the host; only the losses, learning rates and gradient norms
(a few numbers a step) do.  :meth:`DeviceTrajectory.deltas` gives a tensor's
steps without a copy through DLPack: a CuPy array on CUDA (when CuPy works
there), a NumPy array on the CPU, so the Granger design is built where the
steps are (:func:`granger_prune.design.granger_design`) and the lasso and the
F-tests read it there.

:class:`DeviceStore` is the per-round factory Algorithm 1 takes
(``prune_and_retrain(..., store=DeviceStore("cuda"))``), with the size check a
:class:`~granger_prune.record.DiskStore` makes, against the device's free memory.
"""

import numpy as np
import torch

from .. import placement
from ..backend import from_torch
from .disk import trajectory_bytes
from .trajectory import InMemoryTrajectory, Trajectory

#: Share of the device's free memory a round's steps and the float64 Granger design
#: built from them (``2 m`` times the steps' bytes for ``m`` features per parameter) may
#: take together; the solver's vectors and the tests' blocks need the rest.
DEVICE_SHARE = 0.8


class DeviceTrajectory(Trajectory):
    """A :class:`Trajectory` whose steps are float32 torch tensors on ``device``.

    Parameters
    ----------
    shapes : mapping of str to tuple of int
        The recorded tensors' names and shapes, in recording order.
    device : str or torch.device
        Where the steps are kept (the model's device).
    capacity : int, default=0
        Steps to allocate room for now (Algorithm 1 passes the round's steps);
        the room doubles whenever a block does not fit, which copies the steps
        so far once.

    Notes
    -----
    :meth:`deltas` returns views of the store's memory: a read must not be
    written to.  On the CPU they are read-only NumPy arrays; on CUDA CuPy
    arrays (read-only is not a CuPy notion), or host copies when CuPy cannot
    use the device.
    """

    #: The recorder hands this store its blocks' device tensors, not host copies.
    takes_device_blocks = True

    def __init__(self, shapes, device, capacity=0):
        super().__init__(shapes)
        self.device = torch.device(device)
        self.clear()
        self._reserve(int(capacity))

    @property
    def n_steps(self):
        return self._n_steps

    @property
    def capacity(self):
        """Steps the allocated room holds."""
        return self._grad_norms.size

    def nbytes(self):
        """Device bytes the allocated steps take."""
        return sum(t.numel() * t.element_size() for t in self._steps.values())

    def _reserve(self, n):
        """Room for at least ``n`` steps (the steps so far copied into it when it grows)."""
        if n <= self.capacity:
            return
        kept = self._n_steps
        for name, old in self._steps.items():
            new = torch.empty((n, old.shape[1]), dtype=torch.float32, device=self.device)
            new[:kept] = old[:kept]
            self._steps[name] = new
        self._losses = _grown(self._losses, n, kept)
        self._rates = _grown(self._rates, n, kept)
        self._grad_norms = _grown(self._grad_norms, n, kept)

    def append_block(self, loss_before, loss_after, deltas, step_sizes=None, grad_norms=None):
        """Add ``n`` consecutive steps (see :meth:`Trajectory.append_block`); ``deltas`` may
        be torch tensors on any device or arrays, ``grad_norms`` a torch tensor."""
        if isinstance(grad_norms, torch.Tensor):
            grad_norms = grad_norms.detach().cpu().numpy()
        super().append_block(loss_before, loss_after, deltas, step_sizes=step_sizes,
                             grad_norms=grad_norms)

    @staticmethod
    def _as_rows(block):
        """A torch tensor (arrays, also CuPy's, are wrapped without a copy); rounded to
        float32 when copied into the store."""
        return block.detach() if isinstance(block, torch.Tensor) else torch.as_tensor(block)

    def _store_block(self, loss_before, loss_after, deltas, step_sizes, grad_norms):
        n, first = loss_before.size, self._n_steps
        if first + n > self.capacity:
            self._reserve(max(first + n, 2 * self.capacity))
        rows = slice(first, first + n)
        for name in self.shapes:
            self._steps[name][rows].copy_(deltas[name])
        self._losses[rows] = np.stack([loss_before, loss_after], axis=1)
        self._rates[rows] = np.stack([step_sizes[name] for name in self.shapes], axis=1)
        self._grad_norms[rows] = grad_norms
        self._n_steps += n

    def steps(self, name):
        """``Δθ`` of tensor ``name``: the store's float32 torch tensor of shape (T, size), a view."""
        self._check_name(name)
        return self._steps[name][:self._n_steps]

    def deltas(self, name):
        """``Δθ`` of tensor ``name``, float32 of shape (T, size), without a copy: a NumPy
        array on the CPU (read-only), a CuPy array on CUDA, or a host copy where CuPy
        cannot use the device."""
        steps = self.steps(name)
        if steps.device.type == "cpu":
            view = from_torch(steps)
            view.flags.writeable = False
            return view
        if steps.device.type == "cuda" and placement.cupy_works():
            return from_torch(steps)
        return steps.cpu().numpy()

    def losses(self):
        losses = self._losses[:self._n_steps]
        return losses[:, 0].copy(), losses[:, 1].copy()

    def step_sizes(self, name):
        self._check_name(name)
        return self._rates[:self._n_steps, self.names.index(name)].copy()

    def grad_norms(self):
        return self._grad_norms[:self._n_steps].copy()

    def clear(self):
        """Drop every step and free the room (the trajectory is empty after)."""
        self._n_steps = 0
        self._steps = {name: torch.empty((0, size), dtype=torch.float32, device=self.device)
                       for name, size in self.sizes().items()}
        self._losses = np.empty((0, 2))
        self._rates = np.empty((0, len(self.shapes)))
        self._grad_norms = np.empty(0)

    def to_host(self):
        """The same trajectory as an :class:`InMemoryTrajectory` (one copy of the steps)."""
        host = InMemoryTrajectory(self.shapes)
        if self._n_steps:
            before, after = self.losses()
            host.append_block(before, after, {name: self.steps(name).cpu().numpy() for name in self.names},
                              step_sizes={name: self.step_sizes(name) for name in self.names},
                              grad_norms=self.grad_norms())
        return host


def _grown(array, n, kept):
    """``array`` with room for ``n`` rows, its first ``kept`` rows kept (NaN after them)."""
    new = np.full((n,) + array.shape[1:], np.nan)
    new[:kept] = array[:kept]
    return new


class DeviceStore:
    """Where Algorithm 1 records each pruning round's trajectory: a fresh
    :class:`DeviceTrajectory` on ``device`` per round.

    Parameters
    ----------
    device : str or torch.device
        The model's device.
    budget : int, optional
        The most bytes one round's steps may take.
    features_per_parameter : int, default=1
        Columns of the Granger design per recorded parameter (1 for the vanilla
        features, 3 for the momentum ones): what the design built on the device
        from the steps takes beside them (float64).
    """

    def __init__(self, device, budget=None, features_per_parameter=1):
        self.device, self.budget = torch.device(device), budget
        self.features_per_parameter = int(features_per_parameter)

    def check(self, shapes, n_steps):
        """Refuse now (before any training) a round that would not fit; returns the
        bytes of its steps.

        Raises ``MemoryError`` when the round's float32 steps need more than
        ``budget`` bytes, or, on CUDA, when they and the float64 design built from
        them need more than :data:`DEVICE_SHARE` of the device's free memory, or
        CuPy cannot use the device (the design is built there through it).
        """
        needed = trajectory_bytes(shapes, n_steps)
        what = f"recording {n_steps} steps of {len(shapes)} tensors on {self.device} needs {needed / 1e9:.2f} GB"
        if self.budget is not None and needed > self.budget:
            raise MemoryError(f"{what}, above the budget of {self.budget / 1e9:.2f} GB")
        if self.device.type == "cuda":
            if not placement.cupy_works():
                raise MemoryError(f"trajectory_store='device' on {self.device} builds the design there "
                                  "through CuPy, which cannot run here (pip install 'granger_prune[gpu]'): "
                                  "record in memory or to disk")
            torch.cuda.empty_cache()  # torch's cached blocks count as free for the round
            free, _ = torch.cuda.mem_get_info(self.device)
            with_design = needed * (1 + 2 * self.features_per_parameter)
            if with_design > DEVICE_SHARE * free:
                raise MemoryError(f"{what}, {with_design / 1e9:.2f} GB with the design built from them; "
                                  f"the device has {free / 1e9:.2f} GB free, of which they may take "
                                  f"{DEVICE_SHARE:.0%}: record to disk (trajectory_store='disk')")
        return needed

    def new(self, shapes, n_steps):
        """A new round's trajectory with room for ``n_steps`` steps."""
        return DeviceTrajectory(shapes, self.device, capacity=n_steps)

    def release(self, trajectory):
        """Done with a round's trajectory: its device memory is freed (it is empty after)
        and torch's cache emptied, for the next round's training (Algorithm 1 then
        frees CuPy's unused pool, whatever the store)."""
        if isinstance(trajectory, DeviceTrajectory):
            trajectory.clear()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
