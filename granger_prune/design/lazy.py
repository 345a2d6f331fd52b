"""Design features computed from the stored trajectory when they are read (torch-free).

A layer of 10^7 weights recorded for 1000 steps has a 40 GB float32 design, as
large as its trajectory: materialising it needs that much memory or disk again.
``granger_design(..., lazy=True)`` returns a design whose ``X`` is a
:class:`LazyFeatures` instead, which holds nothing but the layout and computes
a block of columns from the trajectory store every time one is read.  Every
pass over ``X`` is then a pass over the store (read, bfloat16 decoded, squared)
and no copy of the design ever exists.

The lasso solvers and the F-tests read ``X`` through four column-separable
operations (column sums, ``max |X|``, sums of squares, ``X^T V``) and column
gathers; for a :class:`LazyFeatures` they run block by block
(:func:`granger_prune.lasso._operator.column_blocks`).  A block is
``BLOCK_ENTRIES`` float32 entries, all rows and as many whole units' columns as
fit; the next blocks are computed by ``HELPER_THREADS`` helper threads while
the current one is used (NumPy releases the GIL in the decoding and the
products).

The values are those of the in-memory design rounded to float32, bit for bit
on the raw scale: the raw vanilla features are squared in float32, which rounds
the exact square once, as float64 squaring and rounding to float32 does; the
other feature sets and divided steps are formed in float64 like the in-memory
design and rounded last.  With ``scale="layer"`` or ``"column"`` the mean
squares behind the column scale are summed in another order, so a feature may
differ by one float32 rounding.  Units are single parameters (``groups=None``):
a unit of a lazy design is one column range of one tensor's steps.  ``X[:,
columns]`` works, selecting rows does not (it would copy every column).
"""

import collections
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .granger import FEATURE_SETS, current_and_previous, needs_previous, step_features, step_window

#: float32 entries of one block of columns (256 MB).
BLOCK_ENTRIES = 1 << 26
#: Bytes up to which ``np.asarray(X)`` builds the whole design (larger: an error, since the
#: design is lazy because it does not fit).
MATERIALISE_BYTES = 1 << 31
#: Helper threads computing the next blocks while one is used (decoding and squaring a
#: block costs about ten times what a product with it does).
HELPER_THREADS = 2


class LazyFeatures:
    """``X`` of shape (T, n_units * m), float32, computed a block of columns at a time.

    Parameters
    ----------
    trajectory : Trajectory
        The store the steps are read from (a :class:`~granger_prune.record.DiskTrajectory`
        typically; any ``Trajectory`` works).
    names : tuple of str
        The design's tensors, in unit order.
    unit_map : dict of str to ndarray of int
        As in :class:`~granger_prune.design.GrangerDesign`, one unit per alive entry.
    kinds : tuple of str
        The ``m`` feature types of :data:`~granger_prune.design.FEATURE_SETS`.
    rows : ndarray of int, shape (T,)
        The recorded steps of the design's rows (consecutive).
    eta : ndarray of shape (n_steps,) or None
        Step sizes to divide the steps by (``step_size="divide"``).
    column_scale : ndarray of shape (n_units * m,) or None
        Column divisors (None: raw scale).
    block_entries : int, optional
        Entries per block (default :data:`BLOCK_ENTRIES`).
    """

    dtype = np.dtype(np.float32)
    ndim = 2

    def __init__(self, trajectory, names, unit_map, kinds, rows, eta=None, column_scale=None,
                 block_entries=None):
        self.trajectory = trajectory
        self.kinds = tuple(kinds)
        self.m = len(self.kinds)
        self.rows = np.asarray(rows)
        self.eta = eta
        self.column_scale = column_scale
        self._lagged = needs_previous(self.kinds)
        # per tensor: (name, its alive entries), and its first unit
        self._tensors, self._offsets, offset = [], [], 0
        for name in names:
            unit = unit_map[name]
            idx = np.flatnonzero(unit >= 0)
            if idx.size and not np.array_equal(unit[idx], offset + np.arange(idx.size)):
                raise ValueError(f"a lazy design needs one unit per parameter, numbered in order; "
                                 f"{name!r} has shared or reordered units (groups): build it in memory "
                                 "or to a file (out=)")
            self._tensors.append((name, idx))
            self._offsets.append(offset)
            offset += idx.size
        self.n_units = offset
        self.shape = (len(self.rows), self.n_units * self.m)
        block_entries = BLOCK_ENTRIES if block_entries is None else int(block_entries)
        per_block = max(1, block_entries // max(1, len(self.rows) * self.m))
        #: Columns of one block (whole units).
        self.block_columns = per_block * self.m
        self._fast = self.kinds == FEATURE_SETS["vanilla"] and eta is None and column_scale is None

    @property
    def size(self):
        return self.shape[0] * self.shape[1]

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"LazyFeatures(shape={self.shape}, kinds={self.kinds})"

    def __getitem__(self, key):
        """``X[:, columns]`` (a slice or integer indices) as a new float32 array.  Rows cannot
        be selected: that would need a copy of every column."""
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] == slice(None)):
            raise IndexError("a lazy design is read by columns only (X[:, columns]); selecting "
                             "rows needs a copy of X: build the design in memory or to a file (out=)")
        columns = key[1]
        if isinstance(columns, slice):
            start, stop, step = columns.indices(self.shape[1])
            if step == 1:
                return self.column_block(start, max(start, stop))
            columns = np.arange(start, stop, step)
        if isinstance(columns, (int, np.integer)):
            return self.columns([columns])[:, 0]
        return self.columns(columns)

    def __array__(self, dtype=None, copy=None):
        """The whole design as a float32 ndarray, up to :data:`MATERIALISE_BYTES`."""
        if copy is False:
            raise ValueError("a lazy design has no array to share: np.asarray(X) computes a copy")
        if 4 * self.size > MATERIALISE_BYTES:
            raise MemoryError(f"this lazy design is {4 * self.size / 1e9:.1f} GB as an array "
                              f"(shape {self.shape}): read it by columns (X[:, columns], "
                              "column_blocks()) or build it to a file (granger_design(..., out=))")
        out = np.concatenate([block for _, block in self.column_blocks()], axis=1)
        return out if dtype is None else out.astype(dtype, copy=False)

    def column_blocks(self):
        """Yield ``(start, block)``: ``block`` is ``X[:, start:start + block.shape[1]]``, a new
        C-ordered float32 array; the next blocks are computed meanwhile by helper threads
        (stopped when the caller stops early)."""
        starts = range(0, self.shape[1], self.block_columns)
        blocks = in_order((self.column_block, start, min(start + self.block_columns, self.shape[1]))
                          for start in starts)
        try:
            yield from zip(starts, blocks)
        finally:
            blocks.close()

    def column_block(self, start, stop):
        """``X[:, start:stop]`` as a new float32 array of shape (T, stop - start)."""
        m = self.m
        first_unit, stop_unit = start // m, -(-stop // m)
        out = self._units(first_unit, stop_unit)
        lo = start - first_unit * m
        return out if (lo, stop - start) == (0, out.shape[1]) else np.ascontiguousarray(
            out[:, lo:lo + stop - start])

    def columns(self, index):
        """``X[:, index]`` as a new float32 array of shape (T, len(index)): one gather of the
        steps of the units involved, in row order (the support, a working set)."""
        index = self._column_index(index)
        units, inverse = np.unique(index // self.m, return_inverse=True)
        parts = []
        for offset, tensor in zip(self._offsets, self._tensors):
            local = units[(units >= offset) & (units < offset + tensor[1].size)] - offset
            if local.size:
                parts.append(self._tensor_features(tensor, offset, local))
        gathered = (np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]) if parts else \
            np.empty((self.shape[0], 0), dtype=np.float32)
        return np.ascontiguousarray(gathered[:, inverse * self.m + index % self.m])

    def _column_index(self, index):
        """``index`` (integers, negatives counting from the end, or a boolean mask of the
        columns) as non-negative int64 positions; ``IndexError`` when out of range."""
        index = np.asarray(index)
        d = self.shape[1]
        if index.dtype == bool:
            if index.shape != (d,):
                raise IndexError(f"a boolean index of the columns needs shape ({d},), got {index.shape}")
            return np.flatnonzero(index)
        if index.size and not np.issubdtype(index.dtype, np.integer):
            raise IndexError(f"column indices must be integers or a boolean mask, got {index.dtype}")
        index = index.astype(np.int64).reshape(-1)
        if index.size and (index.min() < -d or index.max() >= d):
            raise IndexError(f"column index out of range for a design of {d} columns "
                             f"(got {int(index.min())} to {int(index.max())})")
        return np.where(index < 0, index + d, index)

    def raw_summaries(self, exact=False):
        """One pass over the store: per row the sum of the ``"dtheta_sq"`` features (float64,
        shape (T,)), per column the sum of squares of the features (shape (d,)), and the
        names of the tensors with a non-zero step.  With ``exact`` the features are taken
        in float64 (as the in-memory design does), else as the float32 ``X``."""
        m = self.m
        row_sq, col_sq, moved = np.zeros(self.shape[0]), np.zeros(self.shape[1]), set()
        per_block = self.block_columns // m
        pieces = [(offset, tensor, a, min(a + per_block, tensor[1].size))
                  for offset, tensor in zip(self._offsets, self._tensors)
                  for a in range(0, tensor[1].size, per_block)]
        blocks = in_order((self._tensor_features, tensor, offset, slice(a, b), exact)
                          for offset, tensor, a, b in pieces)
        for (offset, tensor, a, b), block in zip(pieces, blocks):
            sq = np.sum(block[:, 0::m], axis=1, dtype=np.float64)
            row_sq += sq
            col_sq[(offset + a) * m:(offset + b) * m] = np.einsum("ij,ij->j", block, block,
                                                                 dtype=np.float64)
            if np.any(sq > 0):
                moved.add(tensor[0])
        return row_sq, col_sq, moved

    def _units(self, first_unit, stop_unit):
        """The columns of units ``[first_unit, stop_unit)``, float32 of shape (T, n * m)."""
        parts = []
        for offset, tensor in zip(self._offsets, self._tensors):
            a = max(first_unit, offset) - offset
            b = min(stop_unit, offset + tensor[1].size) - offset
            if a < b:
                parts.append(self._tensor_features(tensor, offset, slice(a, b)))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts, axis=1) if parts else np.empty((self.shape[0], 0), np.float32)

    def _tensor_features(self, tensor, offset, local, exact=False):
        """Features of the units ``offset + local`` (a slice or sorted indices) of one tensor,
        float32 of shape (T, n * m); with ``exact``, float64 and not divided by the column
        scale."""
        name, idx = tensor
        first, stop = step_window(self.rows, self._lagged)
        entries = idx[local]
        consecutive = entries.size and entries[-1] - entries[0] == entries.size - 1
        columns = slice(int(entries[0]), int(entries[-1]) + 1) if consecutive else entries
        steps = self.trajectory.read_steps(name, first, stop, columns)
        if self._fast and not exact:
            return np.multiply(steps, steps, out=steps)
        T, n, m = self.shape[0], entries.size, self.m
        current, previous = current_and_previous(steps, first, self.rows, self._lagged, self.eta)
        out = np.empty((T, n, m))
        for i, feature in enumerate(step_features(current, previous, self.kinds)):
            out[:, :, i] = feature
        out = out.reshape(T, n * m)
        if exact:
            return out
        if self.column_scale is not None:
            units = offset + np.arange(idx.size)[local]
            out /= self.column_scale[(units[:, None] * m + np.arange(m)).reshape(-1)]
        return out.astype(np.float32)


def in_order(calls, helpers=HELPER_THREADS):
    """Yield ``function(*args)`` for every ``(function, *args)`` of ``calls``, in order, with
    up to ``helpers`` of the next ones computed meanwhile on helper threads."""
    pool = ThreadPoolExecutor(helpers, "granger-prune-design")
    try:
        pending = collections.deque()
        for function, *args in calls:
            pending.append(pool.submit(function, *args))
            if len(pending) > helpers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # also when the caller stops early: what is not started is not computed
        pool.shutdown(wait=True, cancel_futures=True)
