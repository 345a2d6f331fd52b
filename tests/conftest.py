import importlib.util

import numpy as np
import pytest


def _cuda_available():
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


HAS_CUDA = _cuda_available()


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module a solver test runs on: NumPy always, CuPy with a GPU."""
    if request.param == "numpy":
        return np
    import cupy
    return cupy


@pytest.fixture
def numpy_as_device():
    """NumPy under another module name: the code's CuPy branches (``xp is not np``) run
    on the host, so their chunking, blocking and scatter-adds are tested without a GPU."""
    import types
    import warnings

    proxy = types.ModuleType("numpy_as_device")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in dir(np):
            if not name.startswith("__"):
                try:
                    setattr(proxy, name, getattr(np, name))
                except AttributeError:
                    pass
    return proxy
