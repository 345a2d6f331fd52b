"""Array-namespace dispatch between NumPy and CuPy.

The namespace is taken from the input arrays, never from a global flag.  CuPy is
imported lazily, only when an input array already is a CuPy array, so
``import granger_prune`` never imports CuPy.
"""

import sys

import numpy as np


def get_namespace(*arrays):
    """Return the array module (``numpy`` or ``cupy``) of ``arrays``.

    Parameters
    ----------
    *arrays : array-like
        NumPy arrays, CuPy arrays or Python scalars.  ``None`` is ignored.

    Returns
    -------
    module
        ``cupy`` when any array is a CuPy array, else ``numpy``.

    Raises
    ------
    TypeError
        When CuPy and NumPy arrays are mixed.
    """
    cupy = sys.modules.get("cupy")
    kinds = set()
    for a in arrays:
        if a is None:
            continue
        if cupy is not None and isinstance(a, cupy.ndarray):
            kinds.add("cupy")
        elif isinstance(a, np.ndarray):
            kinds.add("numpy")
    if kinds == {"cupy", "numpy"}:
        raise TypeError("arrays mix NumPy and CuPy; move them to one device first")
    return cupy if kinds == {"cupy"} else np


def to_numpy(a):
    """Return ``a`` as a NumPy array (copying from the GPU when needed)."""
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy.asnumpy(a)
    return np.asarray(a)


def from_torch(tensor):
    """A NumPy (CPU tensor) or CuPy (CUDA tensor) view of a torch tensor, without a copy.

    Goes through DLPack, so the result shares memory with ``tensor``; writing to
    one writes to the other.  torch is not imported here: ``tensor`` is
    recognised by its ``device`` attribute.

    Parameters
    ----------
    tensor : torch.Tensor
        Dense, on the CPU or a CUDA device; detached first when it requires grad.

    Returns
    -------
    numpy.ndarray or cupy.ndarray
        Same shape, dtype and memory as ``tensor``.

    Raises
    ------
    TypeError
        When ``tensor`` is on another kind of device.
    """
    if getattr(tensor, "requires_grad", False):
        tensor = tensor.detach()
    kind = tensor.device.type
    if kind == "cpu":
        return np.from_dlpack(tensor)
    if kind == "cuda":
        import cupy  # only a CUDA tensor brings CuPy in

        return cupy.from_dlpack(tensor)
    raise TypeError(f"tensors on device type {kind!r} are not supported; move it to the CPU")


def is_torch_tensor(obj):
    """Whether ``obj`` is a torch tensor (without importing torch)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.Tensor)
