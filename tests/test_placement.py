"""Where the statistics run: the host, or a CUDA device (whole or streamed designs)."""

import importlib.util
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pytest

from granger_prune import CausalLasso, placement
from granger_prune.design import granger_design
from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.lasso import alpha_max
from granger_prune.placement import (StreamedColumns, cuda_index, fits_whole, place, running_on,
                                     statistics_device)
from granger_prune.record import DiskTrajectory, InMemoryTrajectory
from granger_prune.selection import Rank, Significance, Stability, Zero, select_causal
from granger_prune.stats import granger_f_tests, hac_f_tests, nested_f_tests

from _tolerances import (FLOAT32_PRODUCTS_TOL, assert_same_enet_solution, assert_tests_close,
                         reduction_atol)


def planted(trajectory, n_steps=120, d=60, causal=(3, 7, 11), seed=0):
    """ΔL driven by the squared steps of a few planted parameters of ``w``."""
    rng = np.random.default_rng(seed)
    for t in range(n_steps):
        delta = (rng.normal(size=d) * 1e-2).astype(np.float32)
        change = -10.0 * float(np.sum(delta[list(causal)].astype(np.float64) ** 2)) + 1e-5 * rng.normal()
        loss = 1.0 - 1e-3 * t + 1e-3 * rng.normal()
        trajectory.append(loss, loss + change, {"w": delta})
    return trajectory


def test_cuda_index_reads_torch_device_names():
    assert cuda_index(None) is None and cuda_index("cpu") is None
    assert cuda_index("cuda") == -1 and cuda_index("cuda:2") == 2
    assert cuda_index("cuda:0") == 0

    class TorchLike:  # what str(torch.device("cuda", 1)) gives
        def __str__(self):
            return "cuda:1"

    assert cuda_index(TorchLike()) == 1
    for bad in ("gpu", "cuda:x", "mps", 3):
        with pytest.raises(ValueError, match="device must be"):
            cuda_index(bad)


def without_cupy(monkeypatch, why="CuPy is not installed"):
    monkeypatch.setattr(placement, "_cupy_problem", lambda: why)


def test_a_cuda_model_without_a_working_cupy_runs_the_statistics_on_the_host(monkeypatch):
    for why in ("CuPy is not installed", "CuPy cannot use the GPU (CUDARuntimeError: no driver)"):
        without_cupy(monkeypatch, why)
        with pytest.warns(GrangerPruneWarning, match=re.escape(why)):
            assert statistics_device("cuda:0") is None


def test_other_devices_run_the_statistics_on_the_host(monkeypatch):
    without_cupy(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing to install
        for device in (None, "cpu", "mps", "xpu:1", "meta"):
            assert statistics_device(device) is None
    for bad in ("not a device", "cuda:", 3.5):
        with pytest.raises(ValueError, match="device must be"):
            statistics_device(bad)


def test_with_cupy_a_cuda_model_keeps_its_device(monkeypatch):
    monkeypatch.setattr(placement, "_cupy_problem", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert statistics_device("cuda:1") == "cuda:1"


def test_without_cupy_installed_the_problem_says_so(monkeypatch):
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed")
    assert placement._cupy_problem() == "CuPy is not installed"


def test_a_design_goes_whole_up_to_its_share_of_the_free_memory():
    assert fits_whole(50, 100) and not fits_whole(51, 100)
    assert fits_whole(90, 100, share=0.9)
    with running_on("cpu") as xp:
        assert xp is np
    X, y = np.ones((3, 2)), np.zeros(3)
    placed = place(X, np, y, None)
    assert placed[0] is X and placed[1] is y and placed[2] is None


@pytest.mark.parametrize("multiple", [1, 3])
def test_streamed_blocks_cover_the_columns_bit_for_bit(multiple):
    X = np.random.default_rng(0).normal(size=(7, 50)).astype(np.float32)
    streamed = StreamedColumns(X, np, block_bytes=7 * 4 * 8, multiple=multiple)
    assert streamed.block_columns == (8 if multiple == 1 else 6)  # whole units of `multiple`
    starts, blocks = zip(*streamed.column_blocks())
    assert starts == tuple(range(0, 50, streamed.block_columns))
    assert all(b.flags.c_contiguous for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks, axis=1), X)
    index = np.array([49, 0, 3, 3, -1])
    np.testing.assert_array_equal(streamed.columns(index), X[:, index])
    assert streamed.shape == X.shape and streamed.dtype == np.float32 and streamed.ndim == 2
    with pytest.raises(ValueError, match="2-D"):
        StreamedColumns(X[0], np)


def test_a_streamed_lazy_design_keeps_its_blocks(tmp_path):
    design = granger_design(planted(DiskTrajectory(tmp_path / "t", {"w": (60,)})), lazy=True)
    design.X.block_columns = 16
    streamed = StreamedColumns(design.X, np)
    assert streamed.block_columns == 16
    np.testing.assert_array_equal(np.concatenate([b for _, b in streamed.column_blocks()], axis=1),
                                  np.asarray(design.X))
    np.testing.assert_array_equal(streamed.columns([5, 2]), design.X[:, [5, 2]])


def test_a_lasso_on_streamed_columns_is_the_lasso_on_the_array(xp):
    design = granger_design(planted(InMemoryTrajectory({"w": (60,)})))
    X, y = design.X.astype(np.float32), design.y
    streamed = StreamedColumns(X, xp, block_bytes=X.shape[0] * 4 * 7)
    y_placed = xp.asarray(y)
    a_max = alpha_max(X, y)
    atol = np.max(reduction_atol(X - X.mean(0), y - y.mean(), X.dtype)) / len(y)
    np.testing.assert_allclose(alpha_max(streamed, y_placed), a_max, rtol=0, atol=atol)
    fits = [CausalLasso(alpha=0.05 * a_max).fit(A, b) for A, b in ((X, y), (streamed, y_placed))]
    assert fits[0].support_.sum() > 0
    assert_same_enet_solution(X, y, *[SimpleNamespace(w=f.coef_.astype(np.float64), intercept=f.intercept_,
                                                      dual_gap=f.dual_gap_) for f in fits],
                              alpha=0.05 * a_max)
    predicted = fits[1].predict(streamed)
    assert type(predicted) is type(y_placed)


@pytest.mark.parametrize("features", ["vanilla", "momentum"])
def test_f_tests_on_streamed_columns_are_those_on_the_array(xp, features):
    design = granger_design(planted(InMemoryTrajectory({"w": (60,)})), features=features)
    X, y, Z = design.X.astype(np.float32), design.y, design.Z
    m = design.features_per_unit
    groups = None if m == 1 else np.repeat(np.arange(design.n_units), m)
    streamed = StreamedColumns(X, xp, block_bytes=X.shape[0] * 4 * 7, multiple=m)
    assert streamed.block_columns % m == 0 and streamed.block_columns < X.shape[1]
    for tests in (nested_f_tests, hac_f_tests):
        host = tests(y, X, Z, groups=groups)
        on_blocks = tests(xp.asarray(y), streamed, xp.asarray(Z), groups=groups)
        assert isinstance(on_blocks.pvalue, np.ndarray)
        assert np.isfinite(host.fvalue).all()
        assert_tests_close(on_blocks, host.fvalue, tol=FLOAT32_PRODUCTS_TOL)


RULES = [Rank(), Zero(alpha_ratio=0.1), Significance(), Significance(inference="hac"),
         Significance(split=0.5, alpha_ratio=0.1), Stability(n_pairs=5)]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_select_causal_on_a_cuda_device_without_cupy_is_the_host_selection(monkeypatch, rule):
    traj = planted(InMemoryTrajectory({"w": (60,)}))
    alive = {"w": np.ones(60, bool)}
    host = select_causal(traj, alive, rule=rule, density=0.1)
    without_cupy(monkeypatch)
    with pytest.warns(GrangerPruneWarning, match="CuPy is not installed"):
        fallback = select_causal(traj, alive, rule=rule, density=0.1, device="cuda")
    np.testing.assert_array_equal(fallback.masks["w"], host.masks["w"])  # the same code, on the host
    np.testing.assert_array_equal(fallback.scores["w"], host.scores["w"])


@pytest.mark.gpu
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
@pytest.mark.parametrize("free_bytes", [None, 1], ids=["whole", "streamed"])
def test_select_causal_on_the_gpu_keeps_the_planted_parameters(monkeypatch, rule, free_bytes):
    """On a GPU the lasso and the tests run in CuPy, the design copied whole or (with no
    room) streamed; the planted parameters are kept as on the host."""
    if free_bytes is not None:
        monkeypatch.setattr(placement, "free_device_bytes", lambda xp: free_bytes)
    traj = planted(InMemoryTrajectory({"w": (60,)}))
    alive = {"w": np.ones(60, bool)}
    host = select_causal(traj, alive, rule=rule, density=0.05)
    device = select_causal(traj, alive, rule=rule, density=0.05, device="cuda")
    planted_units = np.zeros(60, bool)
    planted_units[[3, 7, 11]] = True
    assert host.masks["w"][planted_units].all() and device.masks["w"][planted_units].all()
    if isinstance(rule, Rank):  # the three planted units far ahead: the same top 3 on any device
        np.testing.assert_array_equal(device.masks["w"], host.masks["w"])
    # the other rules' decisions on the unplanted units may flip where a coefficient, p-value
    # or selection frequency sits at its threshold within the devices' rounding: not compared
    assert (device.pvalue is None) == (host.pvalue is None)


@pytest.mark.gpu
def test_a_lazy_design_fits_on_the_gpu_whole_and_streamed(tmp_path, monkeypatch):
    import cupy

    design = granger_design(planted(DiskTrajectory(tmp_path / "t", {"w": (60,)})), lazy=True)
    design.X.block_columns = 16
    host = granger_f_tests(design)
    for free_bytes in (10 ** 12, 1):
        X, y = place(design.X, cupy, design.y, free_bytes=free_bytes)
        assert isinstance(X, cupy.ndarray) == (free_bytes > 1)
        monkeypatch.setattr(placement, "free_device_bytes", lambda xp: free_bytes)
        assert_tests_close(granger_f_tests(design, device="cuda"), host.fvalue, tol=FLOAT32_PRODUCTS_TOL)


@pytest.mark.parametrize("features", ["vanilla", "momentum"])
def test_the_device_branches_of_the_tests_on_streamed_blocks(monkeypatch, numpy_as_device, features):
    from granger_prune.stats import ftests, hac

    design = granger_design(planted(InMemoryTrajectory({"w": (60,)})), features=features)
    X, y, Z = design.X.astype(np.float32), design.y, design.Z
    m = design.features_per_unit
    groups = None if m == 1 else np.repeat(np.arange(design.n_units), m)
    host = [tests(y, X, Z, groups=groups) for tests in (nested_f_tests, hac_f_tests)]
    # prepare_tests (y, X, Z) takes the device branch; f_sf (three 1-D arrays) stays on SciPy
    on_device = lambda *a: numpy_as_device if len(a) == 3 and getattr(a[1], "ndim", 0) == 2 else np
    monkeypatch.setattr(ftests, "get_namespace", on_device)
    monkeypatch.setattr(hac, "get_namespace", on_device)
    monkeypatch.setattr(ftests, "GROUP_CHUNK_DEVICE", 10)  # several chunks per block
    streamed = StreamedColumns(X, numpy_as_device, block_bytes=X.shape[0] * 4 * 21, multiple=m)
    for reference, tests in zip(host, (nested_f_tests, hac_f_tests)):
        for A in (X, streamed):
            assert_tests_close(tests(y, A, Z, groups=groups), reference.fvalue, tol=FLOAT32_PRODUCTS_TOL)


def test_place_copies_whole_or_streams(tmp_path, numpy_as_device):
    design = granger_design(planted(DiskTrajectory(tmp_path / "t", {"w": (60,)})), lazy=True)
    design.X.block_columns = 16
    nbytes = 4 * design.X.shape[0] * design.X.shape[1]
    X, y, none = place(design.X, numpy_as_device, design.y, None, free_bytes=2 * nbytes)
    assert isinstance(X, np.ndarray) and none is None  # assembled from the lazy blocks
    np.testing.assert_array_equal(X, np.asarray(design.X))
    X, y = place(design.X, numpy_as_device, design.y, free_bytes=2 * nbytes - 1)
    assert isinstance(X, StreamedColumns) and X.block_columns == 16
    dense = np.asarray(design.X)
    X, y = place(dense, numpy_as_device, design.y, free_bytes=nbytes, stream=False)
    assert X is dense  # no room and no streaming: left on the host
    X, y = place(dense, numpy_as_device, design.y, free_bytes=nbytes, multiple=3)
    assert isinstance(X, StreamedColumns) and X.block_columns % 3 == 0


def test_a_design_the_device_cannot_hold_after_all_is_streamed(numpy_as_device):
    """The free memory is an estimate: an out-of-memory error copying X whole streams it."""
    class OutOfMemory(Exception):
        pass

    freed = []
    numpy_as_device.cuda = SimpleNamespace(memory=SimpleNamespace(OutOfMemoryError=OutOfMemory))
    numpy_as_device.get_default_memory_pool = lambda: SimpleNamespace(
        free_all_blocks=lambda: freed.append(True))

    def asarray(a, *args, **kwargs):
        if np.ndim(a) == 2:
            raise OutOfMemory("out of memory allocating 4,096 bytes")
        return np.asarray(a, *args, **kwargs)

    numpy_as_device.asarray = asarray
    X, y = np.ones((8, 64), np.float32), np.zeros(8)
    placed, placed_y = place(X, numpy_as_device, y, free_bytes=10 ** 9)
    assert isinstance(placed, StreamedColumns) and freed == [True]
    assert place(X, numpy_as_device, y, free_bytes=10 ** 9, stream=False)[0] is X


def test_granger_f_tests_on_a_cuda_device_without_cupy_run_on_the_host(monkeypatch):
    design = granger_design(planted(InMemoryTrajectory({"w": (60,)})))
    host = granger_f_tests(design, inference="hac")
    without_cupy(monkeypatch)
    with pytest.warns(GrangerPruneWarning, match="CuPy is not installed"):
        fallback = granger_f_tests(design, inference="hac", device="cuda")
    np.testing.assert_array_equal(fallback.fvalue, host.fvalue)
