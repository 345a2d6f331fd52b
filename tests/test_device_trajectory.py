"""The trajectory kept on the model's device: recorded, read, turned into a design and
selected from as the host stores are (bit for bit on the CPU), and sized before training."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from granger_prune import placement
from granger_prune.design import granger_design
from granger_prune.placement import steps_device
from granger_prune.record import (DeviceStore, DeviceTrajectory, InMemoryTrajectory,
                                  TrajectoryRecorder)
from granger_prune.record import device as device_module
from granger_prune.selection import Rank, Significance, select_causal
from granger_prune.study import StudyConfig

from _tolerances import assert_same_enet_solution, assert_tests_close


def record(trajectory, steps=23, chunk_steps=4, seed=0):
    """An MLP trained by SGD with momentum on random data, recorded into ``trajectory``."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3))
    params = {name: p for name, p in model.named_parameters() if name.endswith("weight")}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    recorder = TrajectoryRecorder(model, params, trajectory=trajectory, chunk_steps=chunk_steps)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    for t in range(steps):
        batch = slice(8 * (t % 8), 8 * (t % 8) + 8)
        recorder.step(optimizer, nn.functional.cross_entropy, x[batch], y[batch])
    recorder.close()
    return recorder.trajectory


SHAPES = {"0.weight": (8, 5), "2.weight": (3, 8)}


def assert_same_trajectory(a, b):
    assert a.n_steps == b.n_steps and a.shapes == b.shapes
    for got, expected in zip(a.losses(), b.losses()):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(a.grad_norms(), b.grad_norms())
    for name in a.names:
        np.testing.assert_array_equal(a.deltas(name), b.deltas(name))
        np.testing.assert_array_equal(a.step_sizes(name), b.step_sizes(name))


@pytest.mark.parametrize("capacity", [0, 5, 23, 40], ids=lambda c: f"capacity{c}")
def test_recorded_on_the_cpu_it_holds_the_memory_stores_steps_bit_for_bit(capacity):
    """Whatever room it starts with (none, less than the steps: it grows, exactly enough,
    more), a device store holds what the memory store holds."""
    on_device = record(DeviceTrajectory(SHAPES, "cpu", capacity=capacity))
    assert_same_trajectory(on_device, record(InMemoryTrajectory(SHAPES)))
    assert on_device.capacity >= 23 and (capacity < 23 or on_device.capacity == capacity)
    steps = on_device.steps("0.weight")
    assert steps.dtype == torch.float32 and steps.shape == (23, 40) and steps.device.type == "cpu"
    view = on_device.deltas("0.weight")
    assert not view.flags.writeable and np.shares_memory(view, steps.numpy())  # no copy
    assert_same_trajectory(on_device.to_host(), on_device)


def test_it_takes_tensors_and_arrays_and_checks_their_sizes():
    traj = DeviceTrajectory({"w": (2, 2)}, "cpu")
    traj.append_block([1.0, 2.0], [0.5, 1.5], {"w": torch.arange(8.0, dtype=torch.float64).reshape(2, 4)},
                      step_sizes={"w": [0.1, 0.2]}, grad_norms=torch.tensor([3.0, 4.0]))
    traj.append(3.0, 2.5, {"w": np.full((2, 2), 1 / 3)})
    assert traj.n_steps == 3
    np.testing.assert_array_equal(traj.deltas("w")[:2], np.arange(8.0, dtype=np.float32).reshape(2, 4))
    np.testing.assert_array_equal(traj.deltas("w")[2], np.float32(1 / 3))  # rounded as float32 is
    np.testing.assert_array_equal(traj.grad_norms(), [3.0, 4.0, np.nan])
    np.testing.assert_array_equal(traj.step_sizes("w"), [0.1, 0.2, np.nan])
    with pytest.raises(ValueError, match="has 3 entries per step, expected 4"):
        traj.append(1.0, 1.0, {"w": np.ones(3)})
    with pytest.raises(KeyError, match="no recorded tensor named 'v'"):
        traj.deltas("v")
    traj.clear()
    assert traj.n_steps == 0 and traj.nbytes() == 0 and traj.deltas("w").shape == (0, 4)


@pytest.mark.parametrize("options", [
    dict(), dict(features="momentum", lags=2, scale="column"), dict(scale="layer", step_size="divide"),
], ids=["vanilla", "momentum-lags-column", "layer-divide"])
def test_its_design_is_the_memory_stores(options):
    on_device, in_memory = record(DeviceTrajectory(SHAPES, "cpu")), record(InMemoryTrajectory(SHAPES))
    alive = {"0.weight": np.arange(40).reshape(8, 5) % 3 != 0, "2.weight": np.ones((3, 8), bool)}
    a = granger_design(on_device, alive=alive, **options)
    b = granger_design(in_memory, alive=alive, **options)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.column_scale, b.column_scale)


@pytest.mark.filterwarnings("ignore:the restricted residuals are serially correlated")
@pytest.mark.parametrize("rule", [Rank(), Significance()], ids=lambda r: r.name)
def test_a_selection_from_it_is_the_memory_stores(rule):
    on_device, in_memory = record(DeviceTrajectory(SHAPES, "cpu")), record(InMemoryTrajectory(SHAPES))
    alive = {name: np.ones(shape, bool) for name, shape in SHAPES.items()}
    a = select_causal(on_device, alive, rule=rule, density=0.5)
    b = select_causal(in_memory, alive, rule=rule, density=0.5)
    for name in SHAPES:
        np.testing.assert_array_equal(a.masks[name], b.masks[name])
        np.testing.assert_array_equal(a.scores[name], b.scores[name])


def test_a_lazy_design_reads_a_cpu_device_store_as_any_host_store():
    traj = record(DeviceTrajectory(SHAPES, "cpu"))
    lazy, whole = granger_design(traj, lazy=True), granger_design(traj)
    np.testing.assert_array_equal(np.asarray(lazy.X), whole.X.astype(np.float32))


def test_the_store_refuses_a_round_over_its_budget_and_frees_each_round():
    store = DeviceStore("cpu", budget=1000)
    assert store.check({"w": (10,)}, 10) == 10 * (4 * 10 + 8 * 4)
    with pytest.raises(MemoryError, match=r"needs 0\.00 GB, above the budget"):
        store.check({"w": (100,)}, 10)
    traj = store.new({"w": (10,)}, 7)
    assert traj.capacity == 7 and traj.nbytes() == 7 * 10 * 4 and traj.device == torch.device("cpu")
    store.release(traj)
    assert traj.nbytes() == 0


def test_on_cuda_the_store_refuses_what_it_and_its_design_would_not_fit_in(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3000, 10 ** 6))
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(placement, "cupy_works", lambda: True)
    assert device_module.DEVICE_SHARE == 0.8
    # 720 bytes of steps; with a float64 vanilla design 2160 <= 0.8 * 3000
    assert DeviceStore("cuda").check({"w": (10,)}, 10) == 720
    with pytest.raises(MemoryError, match=r"0\.00 GB with the design .* record to disk"):
        DeviceStore("cuda", features_per_parameter=3).check({"w": (10,)}, 10)  # 7 * 720 > 2400
    monkeypatch.setattr(placement, "cupy_works", lambda: False)
    with pytest.raises(MemoryError, match="through CuPy"):
        DeviceStore("cuda").check({"w": (10,)}, 10)


def test_a_store_on_a_gpu_names_the_device_the_statistics_run_on():
    assert steps_device(SimpleNamespace(device=torch.device("cuda", 1))) == "cuda:1"
    assert steps_device(DeviceTrajectory(SHAPES, "cpu")) is None
    assert steps_device(InMemoryTrajectory(SHAPES)) is None


def test_a_study_keeps_float32_steps_on_the_device():
    with pytest.raises(ValueError, match="keeps them in float32"):
        StudyConfig(trajectory_store="device", store_dtype="bfloat16")


@pytest.mark.gpu
def test_on_the_gpu_the_steps_stay_there_and_the_design_is_built_there():
    """Recorded on CUDA, the store holds the steps a memory store gets through the host
    (the same kernels), its reads are CuPy views, and the design, its F-tests and a
    selection from it agree with the host's from the same steps."""
    import cupy

    def on_cuda(trajectory):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).cuda()
        params = {name: p for name, p in model.named_parameters() if name.endswith("weight")}
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        recorder = TrajectoryRecorder(model, params, trajectory=trajectory, chunk_steps=4)
        x, y = torch.randn(64, 5, device="cuda"), torch.randint(0, 3, (64,), device="cuda")
        for t in range(23):
            batch = slice(8 * (t % 8), 8 * (t % 8) + 8)
            recorder.step(optimizer, nn.functional.cross_entropy, x[batch], y[batch])
        recorder.close()
        return recorder.trajectory

    on_device = on_cuda(DeviceTrajectory(SHAPES, "cuda", capacity=10))
    host = on_device.to_host()
    assert isinstance(on_device.deltas("0.weight"), cupy.ndarray)
    assert_same_trajectory(host, on_cuda(InMemoryTrajectory(SHAPES)))
    design, host_design = granger_design(on_device, features="momentum", scale="column"), \
        granger_design(host, features="momentum", scale="column")
    assert isinstance(design.X, cupy.ndarray)
    # the features are the same products; the column scale's means are summed in another order
    np.testing.assert_allclose(cupy.asnumpy(design.X), host_design.X, rtol=1e-12, atol=0)
    from granger_prune.stats import granger_f_tests

    assert_tests_close(granger_f_tests(design, device="cuda"), granger_f_tests(host_design).fvalue,
                       tol=1e-8)
    alive = {name: np.ones(shape, bool) for name, shape in SHAPES.items()}
    reference = select_causal(host, alive, rule=Rank(), density=0.5)
    for device in ("cuda", None):  # None: the store's device all the same
        selection = select_causal(on_device, alive, rule=Rank(), density=0.5, device=device)
        assert sum(int(m.sum()) for m in selection.masks.values()) == 32
        for name in SHAPES:  # each layer's lasso: the same solution within both duality gaps
            one = granger_design(host, [name])
            fits = []
            for chosen in (selection, reference):
                w = chosen.scores[name].reshape(-1)  # the signed γ of one-column units
                row = chosen.diagnostics.set_index("tensors").loc[name]
                fits.append(SimpleNamespace(w=w, intercept=float(np.mean(one.y - one.X @ w)),
                                            dual_gap=float(row["dual_gap"]), alpha=float(row["alpha"])))
            assert fits[0].alpha == pytest.approx(fits[1].alpha, rel=1e-9)  # alpha_max: one reduction
            assert_same_enet_solution(one.X, one.y, fits[0], fits[1], fits[1].alpha)


def test_the_design_of_a_cuda_store_is_built_on_its_device_without_reading_it(monkeypatch):
    """cuda:N made current for the whole build (where CuPy works), decided from the store's
    device, not from a read of its steps (without CuPy a read is a host copy)."""
    from granger_prune.design.granger import _steps_device

    class Store:
        device = torch.device("cuda", 1)

        def deltas(self, name):
            raise AssertionError("read")

    entered = []
    monkeypatch.setattr(placement, "running_on", lambda device: entered.append(device) or "on it")
    monkeypatch.setattr(placement, "cupy_works", lambda: True)
    assert _steps_device(Store()) == "on it" and entered == ["cuda:1"]
    monkeypatch.setattr(placement, "cupy_works", lambda: False)
    for store in (Store(), InMemoryTrajectory({"w": (3,)})):  # host copies; a host store
        with _steps_device(store) as xp:
            assert xp is np
    assert entered == ["cuda:1"]
