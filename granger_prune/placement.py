"""Where the statistics of a pruning round run: the host, or a CUDA device through CuPy.

A causal round's design is built where its trajectory store keeps the steps: on
the host, or on the GPU for a :class:`~granger_prune.record.DeviceTrajectory`
(used there as it is, see :func:`place`).  The lasso and F-tests of a host design
can then run on the GPU the model trained on.  A design that
fits in :data:`DEVICE_SHARE` of the device's free memory is copied there whole
(one host-to-device transfer, after which every pass of the lasso or the tests
reads device memory); a larger one, or a lazy one that does not fit either, is
streamed: :class:`StreamedColumns` copies one block of columns to the device
whenever a pass reads it, so each pass costs one transfer of the design and the
device holds about two blocks at a time.  A whole copy that runs out of device
memory streams instead.  A model on another device, or a CUDA device without a
working CuPy, runs the statistics on the host (:func:`statistics_device`).

This module is torch-free; CuPy is imported only for a CUDA device.  Devices
are named as torch names them (``"cpu"``, ``"cuda"``, ``"cuda:1"``, or a
``torch.device``).
"""

import contextlib
import importlib
import re
import sys
import warnings

import numpy as np

from .backend import get_namespace, to_numpy
from .design.lazy import in_order
from .exceptions import GrangerPruneWarning
from .lasso._operator import is_blocked

#: Share of the device's free memory a design may take whole (the rest is left to
#: the solver's vectors, the gathered working sets and the tests' blocks).
DEVICE_SHARE = 0.5
#: Bytes of one streamed block of columns.
STREAM_BLOCK_BYTES = 1 << 28

_CUDA = re.compile(r"cuda(?::(\d+))?")
#: How torch names a device: its type, and optionally an index.
_DEVICE = re.compile(r"[a-z_]+(?::\d+)?")


def cuda_index(device):
    """The CUDA device index of ``device``: an int, ``-1`` for ``"cuda"`` (the current
    one), ``None`` for the host (``None`` or ``"cpu"``).

    Raises
    ------
    ValueError
        For another kind of device.
    """
    if device is None:
        return None
    name = str(device)
    if name == "cpu":
        return None
    match = _CUDA.fullmatch(name)
    if match is None:
        raise ValueError(f"device must be None, 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return -1 if match.group(1) is None else int(match.group(1))


def statistics_device(device):
    """The device the statistics of a model on ``device`` run on: ``device`` itself for a
    CUDA device when CuPy works there, else ``None`` (the host).

    Any other device torch names (``"cpu"``, ``"mps"``, ``"xpu:0"``, ...) runs them on
    the host.  A CUDA device without a working CuPy (not installed, or without a
    driver it can use) warns (:class:`GrangerPruneWarning`) that the statistics run on
    the CPU: the training runs on the GPU either way.

    Raises
    ------
    ValueError
        For something that is not a device name.
    """
    if device is None:
        return None
    name = str(device)
    if _DEVICE.fullmatch(name) is None:
        raise ValueError(f"device must be None or a torch device name ('cpu', 'cuda', 'cuda:N', "
                         f"...), got {device!r}")
    if _CUDA.fullmatch(name) is None:
        return None
    problem = _cupy_problem()
    if problem is not None:
        warnings.warn(f"the model is on {name} but {problem}: the lasso and the tests run on the "
                      "CPU (pip install 'granger_prune[gpu]' runs them on the GPU)",
                      GrangerPruneWarning, stacklevel=2)
        return None
    return name


def steps_device(trajectory):
    """The CUDA device a trajectory keeps its steps on (``"cuda:N"``, for a
    :class:`~granger_prune.record.DeviceTrajectory` on a GPU), else None."""
    where = getattr(trajectory, "device", None)
    return str(where) if getattr(where, "type", None) == "cuda" else None


def release_device_memory():
    """Hand the blocks CuPy's memory pool holds unused back to the device (for torch,
    after a round's statistics); nothing when CuPy was never imported."""
    cupy = sys.modules.get("cupy")
    if cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()


def cupy_works():
    """Whether CuPy can run on a CUDA device here."""
    return _cupy_problem() is None


def _cupy_problem():
    """Why CuPy cannot run the statistics (a sentence), or None when it can."""
    try:
        cupy = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "CuPy finds no CUDA device"
    except ImportError:
        return "CuPy is not installed"
    except Exception as error:  # a CuPy built for another CUDA, no driver it can use
        return f"CuPy cannot use the GPU ({type(error).__name__}: {error})"
    return None


@contextlib.contextmanager
def running_on(device):
    """Context in which the statistics run on ``device``; yields its array module.

    ``numpy`` for the host; ``cupy`` with ``device`` the current CUDA device
    (every array CuPy allocates inside is on it).
    """
    index = cuda_index(device)
    if index is None:
        yield np
        return
    import cupy  # a CUDA device only

    with (cupy.cuda.Device(index) if index >= 0 else contextlib.nullcontext()):
        yield cupy


def free_device_bytes(xp):
    """Bytes the current device can still allocate: its free memory and what CuPy's pool
    holds unused."""
    free, _ = xp.cuda.runtime.memGetInfo()
    return int(free) + int(xp.get_default_memory_pool().free_bytes())


def fits_whole(nbytes, free_bytes, share=DEVICE_SHARE):
    """Whether a design of ``nbytes`` is copied to a device with ``free_bytes`` whole."""
    return nbytes <= share * free_bytes


def design_nbytes(X):
    """Bytes of ``X`` as an array (also of a lazy design, which holds none)."""
    return int(np.prod(X.shape)) * np.dtype(X.dtype).itemsize


def place(X, xp, *arrays, stream=True, multiple=1, free_bytes=None):
    """``X`` and ``arrays`` in namespace ``xp``: the same objects for NumPy; for CuPy,
    ``X`` whole when it fits (:func:`fits_whole`), else as :class:`StreamedColumns`
    (or, with ``stream=False``, everything left on the host), and ``arrays``
    (``y``, ``Z``: small) copied; None stays None.

    Parameters
    ----------
    X : ndarray or LazyFeatures of shape (T, d)
        A host design, or one built on the device (a CuPy array, used as it is
        there, and copied to the host for ``xp = numpy``).
    xp : module
        ``numpy`` or ``cupy`` (inside :func:`running_on`).
    *arrays : ndarray or None
    stream : bool, default=True
        Stream a design that does not fit; False for a caller that selects rows
        of ``X``, which a streamed design cannot give.
    multiple : int, default=1
        Streamed blocks hold a multiple of this many columns (a unit's ``m``
        columns, which the grouped tests read from one block).
    free_bytes : int, optional
        The device memory to judge the fit by (default :func:`free_device_bytes`).

    Returns
    -------
    tuple
        ``(X, *arrays)`` placed.
    """
    if get_namespace(X) is not np:  # built on the device (from a device store)
        if xp is np:
            X = to_numpy(X)
        return (X, *(None if a is None else xp.asarray(a) for a in arrays))
    if xp is np:
        return (X, *arrays)
    free = free_device_bytes(xp) if free_bytes is None else free_bytes
    placed = None
    if fits_whole(design_nbytes(X), free):
        try:
            placed = _whole(X, xp)
        except xp.cuda.memory.OutOfMemoryError:  # free memory is an estimate: stream instead
            pass
        if placed is None:  # out of the handler: its traceback held the partial copy
            xp.get_default_memory_pool().free_all_blocks()
    if placed is None:
        if not stream:
            return (X, *arrays)
        placed = StreamedColumns(X, xp, multiple=multiple)
    return (placed, *(None if a is None else xp.asarray(a) for a in arrays))


def _whole(X, xp):
    """``X`` copied to the device (a lazy design assembled from its blocks there)."""
    if not is_blocked(X):
        return xp.asarray(X)
    placed = xp.empty(X.shape, dtype=X.dtype)
    for start, block in X.column_blocks():
        placed[:, start:start + block.shape[1]] = xp.asarray(block)
    return placed


class StreamedColumns:
    """A host design read by the device a block of columns at a time.

    Implements the blocked-design protocol of
    :func:`granger_prune.lasso._operator.column_blocks` (``column_blocks``,
    ``block_columns``, ``columns``), so the lasso and the F-tests pass over it
    block by block: each block of the host ``X`` (an array's columns, gathered
    into a contiguous block by helper threads while the device works on the one
    before, or a lazy design's own blocks, computed by its helper threads) is
    copied to the device when it is read and dropped after use.

    Parameters
    ----------
    X : ndarray or LazyFeatures of shape (T, d), float32 or float64
        The host design; never copied whole.
    xp : module
        Where the blocks go (``cupy``; ``numpy`` gives host blocks, as a test of
        the blocking does).
    block_bytes : int, optional
        Bytes of a block of an array ``X`` (default :data:`STREAM_BLOCK_BYTES`);
        a lazy ``X`` keeps its own blocks (whole units).
    multiple : int, default=1
        An array ``X``'s blocks hold a multiple of this many columns.
    """

    ndim = 2

    def __init__(self, X, xp, block_bytes=STREAM_BLOCK_BYTES, multiple=1):
        if getattr(X, "ndim", None) != 2:
            raise ValueError(f"X must be 2-D, got shape {getattr(X, 'shape', None)}")
        self.source, self.xp = X, xp
        self.shape, self.dtype = tuple(X.shape), np.dtype(X.dtype)
        column_bytes = max(1, self.shape[0] * self.dtype.itemsize)
        multiple = int(multiple)
        #: Columns of one block.
        self.block_columns = (X.block_columns if is_blocked(X) else
                              multiple * max(1, int(block_bytes) // (column_bytes * multiple)))

    def __repr__(self):
        return f"StreamedColumns(shape={self.shape}, dtype={self.dtype}, block_columns={self.block_columns})"

    def column_blocks(self):
        """Yield ``(start, block)``, ``block`` the device copy of ``X[:, start:start + width]``."""
        if is_blocked(self.source):
            for start, block in self.source.column_blocks():
                yield start, self.xp.asarray(block)
            return
        starts = range(0, self.shape[1], self.block_columns)
        blocks = in_order((_contiguous_columns, self.source, start, start + self.block_columns)
                          for start in starts)
        try:
            for start, host in zip(starts, blocks):
                yield start, self.xp.asarray(host)
        finally:
            blocks.close()  # helper threads stop when a caller stops early

    def columns(self, index):
        """``X[:, index]`` on the device, shape (T, len(index)) (a working set, the support)."""
        index = np.asarray(index)  # a host index (take_columns hands one over)
        host = (self.source.columns(index) if is_blocked(self.source)
                else np.take(self.source, index, axis=1))
        return self.xp.asarray(host)


def _contiguous_columns(X, start, stop):
    """``X[:, start:stop]`` as a new C-ordered array (what a host-to-device copy reads)."""
    return np.ascontiguousarray(X[:, start:stop])
