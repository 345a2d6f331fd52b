"""Blocks of recorded steps on the parameters' device, handed to a store.

A block keeps the *parameters* after each step, not their change: row ``r`` holds
``θ`` after the block's ``r``-th step, in the tensor's own dtype, and ``θ`` before
the block's first step is kept beside it.  When the block is flushed, ``Δθ^t =
θ^t − θ^{t−1}`` is formed for all its rows at once (in the tensor's dtype, then
rounded to float32: the same subtraction as ``θ_after − θ_before``, so the steps
are bit for bit those of a clone before and after every step).  That costs one
copy of each tensor per step, where a clone and a subtraction cost three passes.

* On the CPU two blocks alternate: while the training thread copies the next
  steps' parameters into one, the writer thread takes the differences of the
  other (torch releases the GIL inside the subtraction, so on two cores it runs
  beside training) and appends them to the store.  The step's copy into the
  block runs on the training thread: a helper thread for it, beside the extra
  forward pass, cost more than it saved (``studies/bench_recording``).
* On CUDA everything is stream-ordered on the device (copies, norms, the
  differences) and nothing synchronises; a flushed block goes to one of two
  pinned host staging blocks on a side stream, and the store's thread copies it
  out into ordinary host memory.  A store that accumulates on the device
  (``takes_device_blocks``, a :class:`~granger_prune.stats.StreamingGrangerTests`
  on the GPU) is handed the block's device tensors instead, on the training
  thread, with only its losses copied to the host (and the device synchronised
  once per block, after the store's kernels).

The writer thread appends the flushed blocks to the store, so a disk store's
writes never hold training up beyond one block of backlog.  The chain
``θ^{t−1} → θ^t`` holds while only the recorded steps change the parameters;
:meth:`StepBuffer.restart` starts it again (the recorder does so when an
optimizer step was taken outside it, or the optimizer changed).  An error in a
thread (a non-finite loss, a full disk) is raised by the next :meth:`flush`.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..exceptions import NonFiniteLossError

#: Bytes of one block of all recorded tensors on the CPU and on CUDA (where a larger
#: block makes fewer, larger copies): ``chunk_steps`` defaults to as many steps as fit
#: (at least 1, at most :data:`MAX_CHUNK_STEPS`).
CHUNK_BYTES = {"cpu": 1 << 26, "cuda": 1 << 29}
MAX_CHUNK_STEPS = 256


def default_chunk_steps(sizes, device_type="cpu"):
    """Steps per block for tensors of ``sizes`` entries (float32): :data:`CHUNK_BYTES` worth."""
    row_bytes = 4 * max(1, sum(sizes))
    budget = CHUNK_BYTES["cuda" if device_type == "cuda" else "cpu"]
    return int(min(MAX_CHUNK_STEPS, max(1, budget // row_bytes)))


class StepBuffer:
    """Parameters after each recorded step, on the device of ``params``, flushed as
    ``Δθ`` blocks to ``store``.

    Parameters
    ----------
    params : mapping of str to torch.Tensor
        The recorded tensors (all on one device).
    store : Trajectory or an object with ``append``
        Where the blocks go.
    chunk_steps : int, optional
        Steps per block (default :func:`default_chunk_steps`).
    check_after : bool
        Whether the losses after the steps are measured, so that a non-finite one
        is an error (checked on the host when the block is written; NaN marks an
        unmeasured loss otherwise).
    """

    def __init__(self, params, store, chunk_steps=None, check_after=True):
        self.check_after = bool(check_after)
        self.names = tuple(params)
        self.sizes = [int(p.numel()) for p in params.values()]
        devices = {p.device for p in params.values()}
        if len(devices) != 1:
            raise ValueError(f"the recorded tensors are on several devices {sorted(map(str, devices))}: "
                             "record each device's tensors with a recorder of its own")
        self.device = devices.pop()
        self.chunk_steps = (default_chunk_steps(self.sizes, self.device.type) if chunk_steps is None
                            else int(chunk_steps))
        if self.chunk_steps < 1:
            raise ValueError(f"chunk_steps must be at least 1, got {chunk_steps}")
        self.store = store
        #: Steps committed so far (flushed or still in the block).
        self.n_steps = 0
        self._row = 0
        self._on_cuda = self.device.type == "cuda"
        self._side = torch.cuda.Stream(self.device) if self._on_cuda else None
        self._writer = ThreadPoolExecutor(1, "granger-prune-writer")
        self._pending = None
        self._have_previous = False
        # (parameters after each step, parameters before the block's first step); two on
        # the CPU, where the writer reads one while the other fills; zeros: every page
        # touched now, not on its first write
        flat = [p.detach().reshape(-1) for p in params.values()]
        self._blocks = [([torch.zeros((self.chunk_steps, t.numel()), dtype=t.dtype, device=self.device)
                          for t in flat], [torch.empty_like(t) for t in flat])
                        for _ in range(1 if self._on_cuda else 2)]
        self._pointers, self._flat_views = None, None
        # every row's views, made once per block (a view costs about a microsecond)
        self._block_rows = [[[block[r] for block in snapshots] for r in range(self.chunk_steps)]
                            for snapshots, _ in self._blocks]
        self._use_block(0)
        self._staging = [None, None]  # CUDA: the two pinned host blocks, allocated when first used
        self._n_flushes = 0
        self._new_scalars()

    def _new_scalars(self):
        """The block's scalars: Python lists on the host (an append costs less than an
        item of an array), device tensors for what CUDA computes."""
        if self._on_cuda:
            n = self.chunk_steps
            self._loss_after = torch.full((n,), float("nan"), dtype=torch.float64, device=self.device)
            self._grad_norms = torch.full((n,), float("nan"), dtype=torch.float64, device=self.device)
        else:
            self._loss_after, self._grad_norms = [], []
        self._loss_before, self._rates = [], []

    def begin(self, tensors):
        """Before a step: keep ``θ`` as the start of the chain, if there is none."""
        if not self._have_previous:
            _copy_rows(self._previous, self._flat(tensors))
            self._have_previous = True

    def _flat(self, tensors):
        """Flat views of ``tensors`` (kept while their storage stays; a non-contiguous
        tensor is reshaped, a copy, every time)."""
        pointers = [t.data_ptr() for t in tensors]
        if pointers != self._pointers:
            self._pointers = pointers
            self._flat_views = [t.detach().view(-1) if t.is_contiguous() else None for t in tensors]
        return [t.detach().reshape(-1) if v is None else v for t, v in zip(tensors, self._flat_views)]

    def _use_block(self, index):
        """Fill block ``index`` next."""
        self._snapshots, self._previous = self._blocks[index]
        self._row_views = self._block_rows[index]

    def restart(self):
        """Flush the rows so far and start the chain again at the next :meth:`begin`
        (the parameters changed outside the recorded steps)."""
        self.flush(wait=False)
        self._have_previous = False

    def commit(self, tensors, loss_before, loss_after, rates, grad_norm):
        """After a step: copy ``θ`` and the step's scalars into the next row
        (stream-ordered on CUDA).

        ``loss_after`` and ``grad_norm`` may be device tensors (kept on the device
        on CUDA), ``rates`` is one learning rate per tensor.  A full block is flushed.
        """
        row = self._row
        _copy_rows(self._row_views[row], self._flat(tensors))
        if self._on_cuda:
            self._loss_after[row] = loss_after
            self._grad_norms[row] = grad_norm
        else:
            self._loss_after.append(float(loss_after))
            self._grad_norms.append(float(grad_norm))
        self._loss_before.append(loss_before)
        self._rates.append(rates)
        self._row += 1
        self.n_steps += 1
        if self._row == self.chunk_steps:
            self.flush(wait=False)

    def flush(self, wait=True):
        """Hand the rows committed so far to the store; with ``wait``, until it has them."""
        n = self._row
        if n:
            first = self.n_steps - n
            rates = np.array(self._rates, dtype=np.float64).reshape(n, len(self.names))
            scalars = (np.array(self._loss_before, dtype=np.float64),
                       *(np.array(values, dtype=np.float64) if isinstance(values, list) else values[:n]
                         for values in (self._loss_after, self._grad_norms)),
                       {name: rates[:, k].copy() for k, name in enumerate(self.names)})
            self._new_scalars()
            self._row = 0
            if self._on_cuda:
                self._flush_device(first, n, *scalars)
            else:
                self._flush_host(first, n, *scalars)
            self._n_flushes += 1
        if wait:
            self._result()

    @staticmethod
    def _differences(snapshots, previous, n):
        """``Δθ`` of the first ``n`` rows of ``snapshots`` (after ``previous``), float32.

        Each row minus the one before, in the tensor's dtype, written into one new
        array (``torch.diff`` with ``prepend`` would first copy the block whole into a
        second one); on the CPU that array is NumPy's (:func:`_host_empty`)."""
        out = []
        for block, start in zip(snapshots, previous):
            on_host = block.device.type == "cpu"
            if on_host and block.dtype == torch.float32:
                delta = _host_empty((n, block.shape[1]))
            else:
                delta = torch.empty_like(block[:n])
            torch.sub(block[1:n], block[:n - 1], out=delta[1:])
            torch.sub(block[0], start, out=delta[0])
            if delta.dtype != torch.float32:
                delta = (_host_empty(delta.shape).copy_(delta) if on_host else delta.to(torch.float32))
            out.append(delta)
        return out

    def _flush_host(self, first, n, loss_before, loss_after, grad_norms, rates):
        """On the CPU: the writer takes the differences of this block and appends them,
        while the other block fills (once the writer is done with it)."""
        snapshots, previous = self._snapshots, self._previous
        self._result()  # the writer is done with the other block
        self._use_block((self._n_flushes + 1) % 2)
        _copy_rows(self._previous, [block[n - 1] for block in snapshots])  # the chain goes on

        def job():
            deltas = [d.numpy() for d in self._differences(snapshots, previous, n)]
            self._append(first, None, loss_before, loss_after, dict(zip(self.names, deltas)),
                         rates, grad_norms)

        self._pending = self._writer.submit(job)

    def _flush_device(self, first, n, loss_before, loss_after, grad_norms, rates):
        """On CUDA: the differences on the device, copied into a staging block on the side
        stream, then to the writer."""
        tensors = self._differences(self._snapshots, self._previous, n) + [loss_after, grad_norms]
        _copy_rows(self._previous, [block[n - 1] for block in self._snapshots])  # stream-ordered
        if getattr(self.store, "takes_device_blocks", False):  # it accumulates on the device
            *deltas, loss_after, grad_norms = tensors
            self._result()  # the blocks before are in the store first
            self._append(first, None, loss_before, loss_after.cpu().numpy(), dict(zip(self.names, deltas)),
                         rates, grad_norms)  # the losses to the host, for their check
            # the store's kernels (CuPy's stream) read these tensors: done before torch's
            # allocator may reuse their memory
            torch.cuda.synchronize(self.device)
            return
        # the writer finished with this staging block (two flushes ago) before the last
        # flush submitted its job
        host = [h[:n] for h in self._staging_block()]
        self._side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._side):
            for pinned, tensor in zip(host, tensors):
                pinned.copy_(tensor, non_blocking=True)
                tensor.record_stream(self._side)
            done = torch.cuda.Event()
            done.record(self._side)
        *deltas, loss_after, grad_norms = (h.numpy() for h in host)
        self._result()
        self._pending = self._writer.submit(self._append, first, done, loss_before, loss_after,
                                            dict(zip(self.names, deltas)), rates, grad_norms)

    def _staging_block(self):
        """The pinned host staging block of this flush (two alternate)."""
        slot = self._n_flushes % 2
        if self._staging[slot] is None:
            n = self.chunk_steps
            self._staging[slot] = [torch.empty((n, size), dtype=torch.float32, pin_memory=True)
                                   for size in self.sizes] + [
                torch.empty(n, dtype=torch.float64, pin_memory=True) for _ in range(2)]
        return self._staging[slot]

    def _append(self, first, done, loss_before, loss_after, deltas, rates, grad_norms):
        """The writer's job: wait for the copy, check the losses, append the block."""
        if done is not None:  # copy the staging block out: it is reused two flushes on
            done.synchronize()
            loss_after, grad_norms = loss_after.copy(), grad_norms.copy()
            deltas = {name: block.copy() for name, block in deltas.items()}
        bad = np.flatnonzero(~np.isfinite(loss_after)) if self.check_after else np.empty(0, int)
        n = loss_before.size if bad.size == 0 else int(bad[0])
        if n:
            block = (loss_before[:n], loss_after[:n], {k: v[:n] for k, v in deltas.items()},
                     {k: v[:n] for k, v in rates.items()}, grad_norms[:n])
            append_block = getattr(self.store, "append_block", None)
            if append_block is not None:
                append_block(*block[:3], step_sizes=block[3], grad_norms=block[4])
            else:
                for i in range(n):
                    self.store.append(block[0][i], block[1][i], {k: v[i] for k, v in block[2].items()},
                                      step_sizes={k: v[i] for k, v in block[3].items()},
                                      grad_norm=block[4][i])
        if bad.size:
            raise NonFiniteLossError(f"the loss after step {first + n} of the recording is "
                                     f"{loss_after[n]}")

    def _result(self):
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self):
        """Flush, wait, and stop the writer thread."""
        try:
            self.flush(wait=True)
        finally:
            self._writer.shutdown(wait=True)


def _host_empty(shape):
    """A new float32 CPU tensor on memory NumPy allocated.

    NumPy asks Linux for transparent huge pages on large arrays (``madvise``), torch's
    CPU allocator does not: where the kernel gives huge pages only on request, the
    first touch of a fresh block costs a page fault per 4 KiB in torch's memory
    (measured: 0.66 against 0.12 ms a 300k-entry row, filled from new), and on two
    cores the writer's faults slowed the training thread beside it."""
    return torch.from_numpy(np.empty(shape, dtype=np.float32))


def _copy_rows(rows, tensors):
    """``rows[i].copy_(tensors[i])`` for every ``i``: one fused call (a copy per tensor
    costs a dispatch each, most of a small model's copy)."""
    torch._foreach_copy_(rows, tensors)
