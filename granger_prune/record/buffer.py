"""Preallocated blocks of recorded steps on the parameters' device, handed to a store.

A step's ``Δθ`` is formed in one row of a float32 ``(chunk_steps, size)`` block
per tensor, on the tensor's device: :meth:`StepBuffer.begin` copies ``θ`` into
a buffer of its own dtype before the optimizer step, :meth:`StepBuffer.commit`
writes ``θ_after - θ_before`` (the same float32 subtraction as ever) into the
row.  Nothing is allocated per step and nothing waits for the device: on CUDA
the loss after the step and the gradient norm are written to device rows too.

When a block is full (or on :meth:`StepBuffer.flush`) it goes to the store:

* on the CPU the block itself is handed over (no copy) and the next one, already
  allocated and touched by the writer thread (fresh memory costs a page fault
  per 4 KiB on first write, about as much as the write itself), takes its place;
* on CUDA it is copied on a side stream into one of two pinned host staging
  blocks, asynchronously (the compute stream never waits; the caching allocator
  is told the device block is in use on the side stream), and a new device block
  takes its place; the writer copies the staging block out into ordinary host
  memory, so no more than two blocks of host memory are ever pinned.

The writer thread then waits for the copy and appends the block to the store
(:meth:`~granger_prune.record.Trajectory.append_block`, or one ``append`` per
step for a store without it), so a disk store's writes overlap training.  An
error in the writer (a non-finite loss, a full disk) is raised by the next
:meth:`flush`.
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
    """Rows of recorded steps on the device of ``params``, flushed in blocks to ``store``.

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
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="granger-prune-writer")
        self._pending = None
        self._spare = None
        # θ_before in the tensor's own dtype: the difference is taken there, then rounded
        # to float32 (a float32 θ_before would lose a float64 model's small steps)
        self._previous = [torch.empty_like(p.detach().reshape(-1)) for p in params.values()]
        self._deltas = self._device_block() if self._on_cuda else self._host_block()
        self._staging = [None, None]  # CUDA: the two pinned host blocks, allocated when first used
        self._n_flushes = 0
        self._new_scalars()

    def _host_block(self):
        """Float32 host blocks, every page touched now (first writes would fault)."""
        blocks = [torch.empty((self.chunk_steps, size), dtype=torch.float32) for size in self.sizes]
        for block in blocks:
            block.zero_()
        return blocks

    def _staging_block(self):
        """The pinned host staging block of this flush (two alternate: the writer has
        finished with the one used two flushes ago before the previous job was waited for)."""
        slot = self._n_flushes % 2
        if self._staging[slot] is None:
            n = self.chunk_steps
            self._staging[slot] = [torch.empty((n, size), dtype=torch.float32, pin_memory=True)
                                   for size in self.sizes] + [
                torch.empty(n, dtype=torch.float64, pin_memory=True) for _ in range(2)]
        return self._staging[slot]

    def _device_block(self):
        return [torch.empty((self.chunk_steps, size), dtype=torch.float32, device=self.device)
                for size in self.sizes]

    def _take_spare(self):
        """The host block the writer allocated ahead (allocated now if there is none)."""
        spare, self._spare = self._spare, None
        return self._host_block() if spare is None else spare.result()

    def _new_scalars(self):
        n = self.chunk_steps
        if self._on_cuda:
            self._loss_after = torch.full((n,), float("nan"), dtype=torch.float64, device=self.device)
            self._grad_norms = torch.full((n,), float("nan"), dtype=torch.float64, device=self.device)
        else:
            self._loss_after, self._grad_norms = np.full(n, np.nan), np.full(n, np.nan)
        self._loss_before = np.full(n, np.nan)
        self._rates = np.full((n, len(self.names)), np.nan)

    def begin(self, tensors):
        """Keep ``θ`` of every tensor (in order), before the step."""
        for previous, tensor in zip(self._previous, tensors):
            previous.copy_(tensor.detach().reshape(-1))

    def commit(self, tensors, loss_before, loss_after, rates, grad_norm):
        """Write ``θ_after - θ_before`` of the step into the next row, with its scalars.

        ``loss_after`` and ``grad_norm`` may be device tensors (kept on the device on
        CUDA; read on the CPU); ``rates`` one learning rate per tensor.  A full
        block is flushed.
        """
        row = self._row
        for block, previous, tensor in zip(self._deltas, self._previous, tensors):
            torch.sub(tensor.detach().reshape(-1), previous, out=block[row])
        if self._on_cuda:
            self._loss_after[row] = loss_after
            self._grad_norms[row] = grad_norm
        else:
            self._loss_after[row] = float(loss_after)
            self._grad_norms[row] = float(grad_norm)
        self._loss_before[row] = loss_before
        self._rates[row] = rates
        self._row += 1
        self.n_steps += 1
        if self._row == self.chunk_steps:
            self.flush(wait=False)

    def flush(self, wait=True):
        """Hand the rows committed so far to the store; with ``wait``, until it has them
        (and without a host block allocated ahead: recording is over or paused)."""
        n = self._row
        if n:
            first = self.n_steps - n
            host = self._to_host(n)
            self._new_scalars()
            self._row = 0
            self._result()
            self._pending = self._writer.submit(self._append, first, *host)
            self._n_flushes += 1
            if not wait and not self._on_cuda:
                self._spare = self._writer.submit(self._host_block)
        if wait:
            self._result()
            spare, self._spare = self._spare, None
            if spare is not None:
                spare.result()

    def _to_host(self, n):
        """``(done, loss_before, loss_after, deltas, rates, grad_norms)`` of the first ``n``
        rows, the block replaced; ``done`` an event to wait for before reading the
        tensors (None on the CPU)."""
        rates = {name: self._rates[:n, k].copy() for k, name in enumerate(self.names)}
        done = None
        if self._on_cuda:
            tensors = [block[:n] for block in self._deltas] + [self._loss_after[:n],
                                                               self._grad_norms[:n]]
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
            self._deltas = self._device_block()
            *deltas, loss_after, grad_norms = (h.numpy() for h in host)
        else:
            full = n == self.chunk_steps  # a part block is copied: its rest would stay alive
            deltas = [block.numpy() if full else block[:n].numpy().copy() for block in self._deltas]
            loss_after, grad_norms = self._loss_after[:n], self._grad_norms[:n]
            if full:
                self._deltas = self._take_spare()
        return (done, self._loss_before[:n], loss_after, dict(zip(self.names, deltas)), rates,
                grad_norms)

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
