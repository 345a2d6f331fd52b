"""A trajectory on disk: standard ``.npy`` files, appended a block of steps at a time.

Layout of the folder (``FORMAT``, version ``VERSION``), readable with NumPy alone::

    meta.json          {"format": "granger_prune.trajectory", "version": 1,
                        "n_steps": T, "dtype": "float32", "tensors": [{"name": ...,
                        "shape": [...], "file": "deltas/00-<name>.npy"}, ...]}
    losses.npy         float64 (T, 2): the loss before and after every step
    grad_norms.npy     float64 (T,)
    step_sizes.npy     float64 (T, n_tensors), in the order of "tensors"
    deltas/NN-<name>.npy   float32 (T, size), C order: row t is Δθ of step t

    X = np.load("run/deltas/00-0.weight.npy", mmap_mode="r")   # (T, size), no read yet

With ``dtype="bfloat16"`` (``"dtype": "bfloat16"`` in meta.json; a file without the
key is float32) the step files hold ``uint16`` bit patterns, half the bytes, decoded
with one line of NumPy (:mod:`granger_prune.record.bfloat16`), and ``deltas(name)``
is a :class:`~granger_prune.record.bfloat16.Bfloat16Rows` that decodes the rows a
pass indexes.  bfloat16 keeps float32's exponent range, so raw-scale steps do not
underflow, and rounds each step by at most 2**-8 relative.

Why row-major ``.npy`` memmaps.  The recorder produces whole steps, so a row-major
file is written by appending (sequential writes at the disk's bandwidth), and a
memory map is an ``ndarray``: every pass of the package (the lasso's products,
which read ``X`` in blocks of rows, the F-tests, the factor SVD) reads it block
by block through the page cache without loading a layer whole and without a
line of code of its own.  A lazy design's passes read blocks of *columns*, each
``T`` separate runs of the file: :meth:`DiskTrajectory.read_steps` reads those
with positioned reads, readahead off and several threads, where the memory map's
read-around on every fault would read several times the block from a store
larger than the page cache.  ``studies/bench_recording`` measures the write and
read bandwidths.

Each block is written in the order data, then the ``.npy`` headers (shape ``T``),
then ``meta.json`` (written to a temporary file and renamed), so the files
describe a consistent prefix of the steps at every moment; numpy pads the header
so that it can grow along the first axis in place.
"""

import json
import os
import re
import shutil
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from .._atomic import atomic_write_text
from ..exceptions import GrangerPruneWarning
from . import bfloat16
from .trajectory import Trajectory

FORMAT = "granger_prune.trajectory"
VERSION = 1
#: Bytes recorded per step beyond the float32 deltas: two losses, a gradient norm and
#: a learning rate per tensor, float64.
_SCALAR_BYTES = 8


#: Whether :meth:`DiskTrajectory.read_steps` reads with ``preadv`` and readahead off (POSIX
#: systems with ``posix_fadvise``, e.g. Linux), else through the memory map.
READS_WITHOUT_READAHEAD = hasattr(os, "preadv") and hasattr(os, "posix_fadvise")
#: Sorted indices less than this many bytes apart are read as one run (a page: the disk
#: reads whole pages either way) ...
SPAN_GAP_BYTES = 4096
#: ... and runs are joined until a row of indices is at most this many runs, so that a
#: gather of many scattered columns is a few long reads a row, not one per column.
PIECES_PER_ROW = 64
#: Entries of the longest piece read at once (its buffer: 1 MB of float32 per thread).
PIECE_ENTRIES = 1 << 18
#: Threads that read the rows of one block of columns at once (the disk sees this many
#: reads in flight per block being read).  Measured on a 40 GB store of 10^7 columns,
#: cold, blocks of 2^26 entries: 0.24 GB/s through the memory map, 0.56-0.63 GB/s with
#: one thread, 0.85 with 2, 0.90 with 4, 1.02-1.07 with 8, 0.85-1.18 with 16.
READ_THREADS = 8
#: Entries of a block of steps encoded to bfloat16 at a time (its temporaries: 4 bytes each).
ENCODE_BLOCK_ENTRIES = 1 << 22
#: Stored step dtypes: bytes per entry and the dtype of the file.
STEP_DTYPES = {"float32": (4, np.dtype(np.float32)),
               bfloat16.DTYPE_NAME: (bfloat16.ITEMSIZE, np.dtype(np.uint16))}


def _check_dtype(dtype):
    if dtype not in STEP_DTYPES:
        raise ValueError(f"dtype must be one of {sorted(STEP_DTYPES)} for the stored steps, "
                         f"got {dtype!r}")
    return dtype


def trajectory_bytes(shapes, n_steps, dtype="float32"):
    """Bytes a trajectory of ``n_steps`` steps of tensors ``shapes`` takes, steps stored
    as ``dtype`` ("float32" or "bfloat16")."""
    sizes = [int(np.prod(shape)) for shape in shapes.values()]
    itemsize = STEP_DTYPES[_check_dtype(dtype)][0]
    return int(n_steps) * (itemsize * sum(sizes) + _SCALAR_BYTES * (3 + len(sizes)))


def check_room(path, shapes, n_steps, budget=None, dtype="float32"):
    """Refuse, before any training, a recording that would not fit.

    Raises ``OSError`` (``ENOSPC``) when ``n_steps`` steps of ``shapes`` stored as
    ``dtype`` need more than the free space of the disk holding ``path``, or more
    than ``budget`` bytes when one is given; returns the bytes needed.
    """
    needed = trajectory_bytes(shapes, n_steps, dtype)
    where = Path(path)
    existing = next((p for p in [where, *where.parents] if p.exists()), Path("."))
    free = shutil.disk_usage(existing).free
    if budget is not None and needed > budget:
        raise OSError(28, f"recording {n_steps} steps of {len(shapes)} tensors needs "
                          f"{needed / 1e9:.2f} GB, above the budget of {budget / 1e9:.2f} GB "
                          f"for {path}")
    if needed > free:
        raise OSError(28, f"recording {n_steps} steps of {len(shapes)} tensors needs "
                          f"{needed / 1e9:.2f} GB; the disk of {existing} has "
                          f"{free / 1e9:.2f} GB free")
    return needed


def _index_pieces(index, gap, longest):
    """The sorted ``index`` as pieces to read: runs of neighbours at most ``gap`` apart,
    cut to at most ``longest`` entries each.

    Returns ``(start, stop, members, within)`` tuples: the piece ``[start, stop)`` holds
    the indices ``index[members]`` (a slice of positions), at ``within`` in it."""
    breaks = np.flatnonzero(np.diff(index) > gap) + 1
    bounds = np.r_[0, breaks, index.size]
    pieces = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        part = index[a:b]
        cuts = np.flatnonzero(np.diff((part - part[0]) // longest)) + 1
        for c, e in zip(np.r_[0, cuts].tolist(), np.r_[cuts, part.size].tolist()):
            pieces.append((int(part[c]), int(part[e - 1]) + 1, slice(a + c, a + e), part[c:e] - part[c]))
    return pieces


def _file_name(index, name):
    return f"deltas/{index:02d}-{re.sub(r'[^A-Za-z0-9._-]', '_', name)}.npy"


class _AppendableArray:
    """One ``.npy`` file of rows, appended to and kept valid (header = rows written)."""

    def __init__(self, path, row_shape, dtype, create):
        self.path = Path(path)
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        if create:
            with open(self.path, "wb") as f:
                self._write_header(f, 0)
        with open(self.path, "rb") as f:
            version = npy_format.read_magic(f)
            read_header = (npy_format.read_array_header_1_0 if version == (1, 0)
                           else npy_format.read_array_header_2_0)
            shape, fortran_order, dtype = read_header(f)
            self.offset = f.tell()
        if fortran_order:
            raise ValueError(f"{self.path} is in Fortran order; a trajectory file is C order")
        if tuple(shape[1:]) != self.row_shape or np.dtype(dtype) != self.dtype:
            raise ValueError(f"{self.path} holds {dtype} rows of shape {shape[1:]}, expected "
                             f"{self.dtype} rows of shape {self.row_shape}")
        self.n_rows = shape[0]

    def _write_header(self, f, n_rows):
        f.seek(0)
        npy_format.write_array_header_1_0(f, {"descr": npy_format.dtype_to_descr(self.dtype),
                                              "fortran_order": False,
                                              "shape": (n_rows, *self.row_shape)})

    def append(self, rows):
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            view, written = memoryview(rows).cast("B"), 0
            position = self.offset + self.n_rows * self.row_bytes
            while written < view.nbytes:  # pwrite may write less than asked
                written += os.pwrite(fd, view[written:], position + written)
        except OSError as error:
            raise OSError(error.errno, f"writing {self.path}: {error.strerror}") from error
        finally:
            os.close(fd)
        self.n_rows += rows.shape[0]

    def commit_header(self):
        with open(self.path, "r+b") as f:
            self._write_header(f, self.n_rows)
            if f.tell() != self.offset:
                raise RuntimeError(f"the .npy header of {self.path} changed length")

    def read_columns(self, first, stop, columns, threads=1):
        """Rows ``first:stop`` of the entries ``columns`` of each row (a ``(start, end)``
        pair, or sorted indices), a new array of shape (stop - first, n).

        Indices must not be empty.  Positioned reads with the kernel's readahead off for them
        (:data:`READS_WITHOUT_READAHEAD`), by ``threads`` threads at once (each reads a
        share of the rows; the reads release the GIL): one read per row of a range; for
        indices, one per piece of :func:`_index_pieces` (at most
        :data:`PIECES_PER_ROW` runs, pieces of at most :data:`PIECE_ENTRIES`), each
        gathered from a buffer of one piece."""
        if isinstance(columns, tuple):
            pieces, width = None, columns[1] - columns[0]
        else:
            span = int(columns[-1]) - int(columns[0]) + 1
            gap = max(SPAN_GAP_BYTES // self.dtype.itemsize, span // PIECES_PER_ROW)
            pieces, width = _index_pieces(columns, gap, PIECE_ENTRIES), columns.size
        out = np.empty((stop - first, width), dtype=self.dtype)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # this descriptor only
            shares = np.array_split(np.arange(stop - first), max(1, min(int(threads), stop - first)))
            jobs = [(self._read_range, fd, out, rows, first, columns) if pieces is None else
                    (self._read_pieces, fd, out, rows, first, pieces) for rows in shares]
            if len(jobs) == 1:
                jobs[0][0](*jobs[0][1:])
            else:
                with ThreadPoolExecutor(len(jobs), "granger-prune-reader") as pool:
                    for done in [pool.submit(*job) for job in jobs]:
                        done.result()
        finally:
            os.close(fd)
        return out

    def _read_range(self, fd, out, rows, first, span):
        """``out[i] = row first + i`` of the entries ``span[0]:span[1]``, for ``i`` in ``rows``."""
        for i in rows:
            self._read_into(fd, memoryview(out[i]).cast("B"), first + int(i), span[0])

    def _read_pieces(self, fd, out, rows, first, pieces):
        """``out[i]`` = the indexed entries of row ``first + i``, a piece at a time."""
        buffer = np.empty(max(stop - start for start, stop, _, _ in pieces), dtype=self.dtype)
        for i in rows:
            for start, stop, members, within in pieces:
                self._read_into(fd, memoryview(buffer[:stop - start]).cast("B"), first + int(i), start)
                out[i, members] = buffer[within]

    def _read_into(self, fd, view, row, start):
        """Fill ``view`` from row ``row``, entry ``start`` on."""
        position, done = self.offset + row * self.row_bytes + start * self.dtype.itemsize, 0
        while done < view.nbytes:  # a read may return less than asked
            n = os.preadv(fd, [view[done:]], position + done)
            if n == 0:
                raise EOFError(f"{self.path} ends before row {row}")
            done += n

    def read(self, n_rows):
        """The first ``n_rows`` rows as a read-only memory map (no data read yet)."""
        if n_rows == 0:
            return np.empty((0, *self.row_shape), dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                         shape=(n_rows, *self.row_shape))


class DiskTrajectory(Trajectory):
    """A :class:`Trajectory` in a folder of ``.npy`` files (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The folder; created (it must not hold a trajectory already) when
        ``shapes`` is given, opened for reading and appending otherwise
        (:meth:`open`).
    shapes : mapping of str to tuple of int, optional
        The recorded tensors' names and shapes, in recording order.
    expected_steps : int, optional
        Steps the recording will take: checked against ``budget`` and the free
        disk before anything is written (:func:`check_room`).
    budget : int, optional
        The most bytes the trajectory may take.
    dtype : {"float32", "bfloat16"}
        How the steps are stored (a new folder; an opened one says in meta.json).

    ``deltas(name)`` returns a read-only ``np.memmap`` of shape (T, size), or for
    bfloat16 steps a :class:`~granger_prune.record.bfloat16.Bfloat16Rows` over one.
    """

    def __init__(self, path, shapes=None, *, expected_steps=None, budget=None, dtype="float32"):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if shapes is None:
            if not meta_path.exists():
                raise FileNotFoundError(f"{self.path} holds no trajectory (no meta.json)")
            try:
                meta = json.loads(meta_path.read_text())
            except ValueError:
                raise ValueError(f"{meta_path} is not readable JSON (damaged, or cut by a power "
                                 "failure while recording): the steps cannot be read") from None
            if meta.get("format") != FORMAT or meta.get("version") != VERSION:
                raise ValueError(f"{meta_path} is not a {FORMAT} version {VERSION} file: "
                                 f"format={meta.get('format')!r}, version={meta.get('version')!r}")
            shapes = {t["name"]: tuple(t["shape"]) for t in meta["tensors"]}
            files = [t["file"] for t in meta["tensors"]]
            dtype = meta.get("dtype", "float32")
            if dtype not in STEP_DTYPES:
                raise ValueError(f"{meta_path} stores steps as {dtype!r}, not one of "
                                 f"{sorted(STEP_DTYPES)}")
            create, n_steps = False, int(meta["n_steps"])
        else:
            if meta_path.exists():
                raise FileExistsError(f"{self.path} already holds a trajectory; open it with "
                                      "DiskTrajectory.open or record into a new folder")
            files = [_file_name(i, name) for i, name in enumerate(shapes)]
            create, n_steps = True, 0
        super().__init__(shapes)
        self.dtype = _check_dtype(dtype)
        if create and expected_steps is not None:
            check_room(self.path, self.shapes, expected_steps, budget, dtype)
        self.budget = budget
        if create:
            (self.path / "deltas").mkdir(parents=True, exist_ok=True)
        self._files = dict(zip(self.shapes, files))
        sizes = self.sizes()
        file_dtype = STEP_DTYPES[self.dtype][1]
        self._arrays = {name: _AppendableArray(self.path / self._files[name], (sizes[name],),
                                               file_dtype, create) for name in self.shapes}
        self._losses = _AppendableArray(self.path / "losses.npy", (2,), np.float64, create)
        self._grad_norms = _AppendableArray(self.path / "grad_norms.npy", (), np.float64, create)
        self._step_sizes = _AppendableArray(self.path / "step_sizes.npy", (len(self.shapes),),
                                            np.float64, create)
        shortest = min(array.n_rows for array in self._all_arrays())
        if shortest < n_steps:  # only after a power cut: meta.json is written after the arrays
            warnings.warn(f"{self.path}: meta.json says {n_steps} steps, its files hold {shortest} "
                          f"(a power cut while recording?); reading the first {shortest}",
                          GrangerPruneWarning, stacklevel=3)
            n_steps = shortest
        self._n_steps = n_steps
        for array in self._all_arrays():
            array.n_rows = n_steps  # rows past the last committed block are ignored
        if create:
            self._write_meta(durable=True)

    @classmethod
    def open(cls, path):
        """The trajectory in ``path``, to read or to append to."""
        return cls(path)

    def _all_arrays(self):
        return [*self._arrays.values(), self._losses, self._grad_norms, self._step_sizes]

    def _write_meta(self, durable=False):
        meta = {"format": FORMAT, "version": VERSION, "n_steps": self._n_steps,
                "dtype": self.dtype,
                "tensors": [{"name": name, "shape": list(shape), "file": self._files[name]}
                            for name, shape in self.shapes.items()]}
        # after every block: atomic for a crashed process, not flushed (an fsync per block would
        # also flush the steps just written, holding the recording up by the disk's latency)
        atomic_write_text(self.path / "meta.json", json.dumps(meta, indent=1), durable=durable)

    @property
    def n_steps(self):
        return self._n_steps

    def nbytes(self):
        """Bytes the recorded steps take on disk (without headers)."""
        return trajectory_bytes(self.shapes, self._n_steps, self.dtype)

    def _store_block(self, loss_before, loss_after, deltas, step_sizes, grad_norms):
        n = loss_before.size
        if (self.budget is not None
                and trajectory_bytes(self.shapes, self._n_steps + n, self.dtype) > self.budget):
            raise OSError(28, f"{self.path}: {self._n_steps + n} steps would exceed the budget of "
                              f"{self.budget / 1e9:.2f} GB")
        try:
            for name in self.shapes:
                self._append_steps(self._arrays[name], deltas[name])
            self._losses.append(np.stack([loss_before, loss_after], axis=1))
            self._grad_norms.append(grad_norms)
            self._step_sizes.append(np.stack([step_sizes[name] for name in self.shapes], axis=1))
            for array in self._all_arrays():
                array.commit_header()
            self._n_steps += n
            self._write_meta()
        except BaseException:  # a failed block is not part of the trajectory: the files
            for array in self._all_arrays():  # keep the last committed prefix
                array.n_rows = self._n_steps
            raise

    def _append_steps(self, array, rows):
        if self.dtype == "float32":
            array.append(rows)
            return
        step = max(1, ENCODE_BLOCK_ENTRIES // max(rows.shape[1], 1))
        for start in range(0, rows.shape[0], step):  # encoding temporaries stay small
            array.append(bfloat16.to_bfloat16_bits(rows[start:start + step]))

    def losses(self):
        both = np.array(self._losses.read(self._n_steps))
        return both[:, 0].copy(), both[:, 1].copy()

    def step_sizes(self, name):
        self._check_name(name)
        return np.array(self._step_sizes.read(self._n_steps)[:, self.names.index(name)])

    def grad_norms(self):
        return np.array(self._grad_norms.read(self._n_steps))

    def deltas(self, name):
        self._check_name(name)
        rows = self._arrays[name].read(self._n_steps)
        return rows if self.dtype == "float32" else bfloat16.Bfloat16Rows(rows)

    def read_steps(self, name, first, stop, columns):
        """Steps ``first:stop`` of the entries ``columns`` of tensor ``name`` (a slice, or
        sorted indices), as a new writable float32 array of shape (stop - first, n): what
        ``np.array(deltas(name)[first:stop, columns])`` gives, read for a pass over a
        block of columns.

        Such a block is ``stop - first`` separate runs of a row-major file.  Through the
        memory map, the kernel's read-around on each page fault (up to the disk's
        ``read_ahead_kb``, 8 MB on some virtual disks) reads far beyond each run, and a
        file larger than the page cache is read several times per pass (a solver's
        working set, a few scattered columns, the whole file per gather); here every
        run (for indices, every piece of near neighbours, :meth:`read_columns`) is one
        positioned read with readahead off (where :data:`READS_WITHOUT_READAHEAD`;
        elsewhere through the memory map).
        """
        self._check_name(name)
        stop = min(stop, self._n_steps)
        if isinstance(columns, slice):
            start, end, step = columns.indices(self.sizes()[name])
            index = None if step == 1 else np.arange(start, end, step)
        else:
            index = np.asarray(columns, dtype=np.int64)
        if not READS_WITHOUT_READAHEAD or stop <= first or (index is not None and index.size == 0):
            return super().read_steps(name, first, stop, columns)  # through the memory map
        block = self._arrays[name].read_columns(first, stop, (start, end) if index is None else index,
                                                threads=READ_THREADS)
        return block if self.dtype == "float32" else bfloat16.from_bfloat16_bits(block)


class DiskStore:
    """Where Algorithm 1 records each pruning round's trajectory: a fresh
    :class:`DiskTrajectory` per round under ``root``.

    Parameters
    ----------
    root : str or Path
        The folder the rounds' trajectory folders go in.
    budget : int, optional
        The most bytes one round's trajectory may take.
    keep : bool
        Keep each round's folder after its selection (default: removed once the
        criterion has selected, so the disk holds one round at a time).
    dtype : {"float32", "bfloat16"}
        How the steps are stored (:class:`DiskTrajectory`).
    """

    def __init__(self, root, budget=None, keep=False, dtype="float32"):
        self.root, self.budget, self.keep = Path(root), budget, bool(keep)
        self.dtype = _check_dtype(dtype)
        self._count = 0

    def check(self, shapes, n_steps):
        """Refuse now (before any training) a round that would not fit; returns its bytes."""
        return check_room(self.root, shapes, n_steps, self.budget, self.dtype)

    def new(self, shapes, n_steps):
        """A new round's trajectory, checked against the budget and the free disk."""
        while (self.root / f"round-{self._count}").exists():
            self._count += 1
        path = self.root / f"round-{self._count}"
        self._count += 1
        return DiskTrajectory(path, shapes, expected_steps=n_steps, budget=self.budget,
                              dtype=self.dtype)

    def release(self, trajectory):
        """Done with a round's trajectory: its folder is removed unless ``keep``."""
        if not self.keep and isinstance(trajectory, DiskTrajectory):
            shutil.rmtree(trajectory.path, ignore_errors=True)

