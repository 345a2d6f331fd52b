"""The disk store: the same steps as the memory store, readable with NumPy alone."""

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.record import (DiskTrajectory, InMemoryTrajectory, TrajectoryRecorder,
                                  check_room, optimizer_step, trajectory_bytes)
from granger_prune.record import disk as disk_module

SHAPES = {"0.weight": (4, 3), "layer/1": (5,)}


def fill(store, n_steps, seed=0):
    rng = np.random.default_rng(seed)
    for start in range(0, n_steps, 7):  # blocks of 7 and a part block
        n = min(7, n_steps - start)
        store.append_block(rng.normal(size=n), rng.normal(size=n),
                           {name: rng.normal(size=(n, int(np.prod(s)))).astype(np.float32)
                            for name, s in SHAPES.items()},
                           step_sizes={"0.weight": np.full(n, 0.1), "layer/1": np.arange(n) / 10},
                           grad_norms=rng.uniform(size=n))
    store.append(1.0, 0.5, {name: np.ones(s) for name, s in SHAPES.items()}, step_sizes=0.2,
                 grad_norm=3.0)
    return store


def same_steps(a, b):
    assert a.n_steps == b.n_steps
    for x, y in zip(a.losses(), b.losses()):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.grad_norms(), b.grad_norms())
    for name in SHAPES:
        np.testing.assert_array_equal(a.deltas(name), b.deltas(name))
        np.testing.assert_array_equal(a.step_sizes(name), b.step_sizes(name))


def test_disk_store_holds_what_the_memory_store_holds_and_reopens(tmp_path):
    disk = fill(DiskTrajectory(tmp_path / "run", SHAPES), 30)
    memory = fill(InMemoryTrajectory(SHAPES), 30)
    same_steps(disk, memory)
    assert isinstance(disk.deltas("0.weight"), np.memmap) and not disk.deltas("0.weight").flags.writeable
    same_steps(DiskTrajectory.open(tmp_path / "run"), memory)
    # the documented layout, read with NumPy alone
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["n_steps"] == 31 and [t["name"] for t in meta["tensors"]] == list(SHAPES)
    for t in meta["tensors"]:
        np.testing.assert_array_equal(np.load(tmp_path / "run" / t["file"]), memory.deltas(t["name"]))
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "losses.npy")[:, 1], memory.losses()[1])
    # appending after reopening continues the same files
    reopened = DiskTrajectory.open(tmp_path / "run")
    reopened.append(2.0, 1.0, {name: np.zeros(s) for name, s in SHAPES.items()})
    assert DiskTrajectory.open(tmp_path / "run").n_steps == 32
    assert disk.nbytes() == trajectory_bytes(SHAPES, 31)


def test_disk_store_refuses_what_does_not_fit_and_what_is_not_a_trajectory(tmp_path):
    need = trajectory_bytes(SHAPES, 100)
    assert need == 100 * (4 * 17 + 8 * 5)
    with pytest.raises(OSError, match="above the budget"):
        DiskTrajectory(tmp_path / "a", SHAPES, expected_steps=100, budget=need - 1)
    assert not (tmp_path / "a").exists()  # refused before anything was written
    with pytest.raises(OSError, match="GB free"):
        check_room(tmp_path, {"w": (10 ** 9,)}, 10 ** 6)
    small = DiskTrajectory(tmp_path / "b", SHAPES, budget=trajectory_bytes(SHAPES, 10))
    with pytest.raises(OSError, match="exceed the budget"):
        fill(small, 30)
    assert DiskTrajectory.open(tmp_path / "b").n_steps == 7  # the blocks that fitted
    with pytest.raises(FileExistsError):
        DiskTrajectory(tmp_path / "b", SHAPES)
    with pytest.raises(FileNotFoundError, match="no meta.json"):
        DiskTrajectory.open(tmp_path / "nothing")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "meta.json").write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(ValueError, match="is not a granger_prune.trajectory"):
        DiskTrajectory.open(tmp_path / "c")


def test_disk_store_ignores_rows_past_the_last_committed_block(tmp_path):
    """A crash between a block's data and its meta.json leaves a consistent prefix."""
    store = fill(DiskTrajectory(tmp_path / "run", SHAPES), 14)
    name = store._files["0.weight"]
    with open(tmp_path / "run" / name, "ab") as f:  # a half-written block
        f.write(os.urandom(4 * 12 * 3))
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    meta["n_steps"] = 10
    (tmp_path / "run" / "meta.json").write_text(json.dumps(meta))
    reopened = DiskTrajectory.open(tmp_path / "run")
    assert reopened.n_steps == 10
    np.testing.assert_array_equal(reopened.deltas("0.weight"), store.deltas("0.weight")[:10])
    meta["n_steps"] = 99  # ahead of the files: only a power cut leaves that
    (tmp_path / "run" / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(GrangerPruneWarning, match="says 99 steps, its files hold 15.*first 15"):
        cut = DiskTrajectory.open(tmp_path / "run")
    np.testing.assert_array_equal(cut.deltas("0.weight"), store.deltas("0.weight"))
    (tmp_path / "run" / "meta.json").write_text('{"format": "granger')  # torn
    with pytest.raises(ValueError, match="not readable JSON"):
        DiskTrajectory.open(tmp_path / "run")


def record(store=None, n_steps=45, chunk_steps=8, recorded=True):
    """Train a small BatchNorm + dropout net for ``n_steps`` steps; ``store(shapes)`` makes
    the trajectory (default: the recorder's memory store); ``recorded=False``: no recorder."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                          nn.Linear(8, 3))
    params = {n: p for n, p in model.named_parameters() if p.dim() > 1}
    trajectory = None if store is None else store({n: tuple(p.shape) for n, p in params.items()})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    recorder = TrajectoryRecorder(model, params, trajectory=trajectory, chunk_steps=chunk_steps)
    for _ in range(n_steps):
        x, y = torch.randn(10, 6, generator=g), torch.randint(0, 3, (10,), generator=g)
        if recorded:
            recorder.step(optimizer, nn.functional.cross_entropy, x, y)
        else:
            optimizer_step(model, optimizer, nn.functional.cross_entropy, x, y)
    return model, recorder


def test_recording_to_disk_gives_the_memory_recording_and_the_unrecorded_weights(tmp_path):
    plain, _ = record(recorded=False)
    in_memory, memory = record()
    on_disk, disk = record(lambda shapes: DiskTrajectory(tmp_path / "run", shapes))
    for a, b, c in zip(plain.parameters(), in_memory.parameters(), on_disk.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert disk.n_steps == 45 and disk.trajectory.n_steps == 45  # 5 blocks of 8 and a part
    for name in ("0.weight", "4.weight"):
        np.testing.assert_array_equal(memory.trajectory.deltas(name), disk.trajectory.deltas(name))
    for a, b in zip(memory.trajectory.losses(), disk.trajectory.losses()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(memory.trajectory.grad_norms(), disk.trajectory.grad_norms())
    # blocks of another length change nothing
    _, one_by_one = record(chunk_steps=1)
    np.testing.assert_array_equal(one_by_one.trajectory.deltas("4.weight"),
                                  memory.trajectory.deltas("4.weight"))


def test_a_failing_store_is_reported_by_the_next_flush(tmp_path):
    class Full(InMemoryTrajectory):
        def _store_block(self, *block):
            raise OSError(28, "No space left on device")

    model = nn.Linear(3, 1)
    params = {"weight": model.weight}
    recorder = TrajectoryRecorder(model, params, trajectory=Full({"weight": (1, 3)}), chunk_steps=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3), torch.randn(4, 1)
    with pytest.raises(OSError, match="No space left"):
        for _ in range(6):
            recorder.step(optimizer, nn.functional.mse_loss, x, y)


@pytest.mark.parametrize("features, scale", [("vanilla", "raw"), ("momentum", "column"),
                                             ("vanilla", "layer")])
def test_a_design_written_to_a_file_is_the_in_memory_design_in_float32(tmp_path, features, scale,
                                                                        monkeypatch):
    from granger_prune.design import granger, granger_design

    _, recorder = record(lambda shapes: DiskTrajectory(tmp_path / "run", shapes))
    trajectory = DiskTrajectory.open(tmp_path / "run")
    monkeypatch.setattr(granger, "DESIGN_BLOCK_ENTRIES", 200)  # blocks of a few rows
    in_memory = granger_design(trajectory, features=features, lags=1, scale=scale)
    on_disk = granger_design(trajectory, features=features, lags=1, scale=scale,
                             out=tmp_path / "X.npy")
    assert isinstance(on_disk.X, np.memmap) and on_disk.X.dtype == np.float32
    # the features are float64 products of float32 steps, rounded once to float32 (and the
    # scales are sums in another order: a few ulps)
    np.testing.assert_allclose(on_disk.X, in_memory.X, rtol=4 * np.finfo(np.float32).eps, atol=0)
    np.testing.assert_allclose(on_disk.column_scale, in_memory.column_scale, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(on_disk.y, in_memory.y)
    np.testing.assert_allclose(on_disk.summaries["mean_sq_step"],
                               in_memory.summaries["mean_sq_step"], rtol=1e-12, atol=0)
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), on_disk.X)


@pytest.mark.gpu
@pytest.mark.parametrize("store", ["memory", "disk"])
def test_recording_on_cuda_keeps_every_step_as_taken(tmp_path, store):
    """The device blocks, the side-stream copies and the staging ring lose and reorder
    nothing: every recorded row equals the change of the weights around that step."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 64), nn.ReLU(), nn.Linear(64, 3)).cuda()
    params = {n: p for n, p in model.named_parameters() if p.dim() > 1}
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    trajectory = DiskTrajectory(tmp_path / "run", shapes) if store == "disk" else None
    recorder = TrajectoryRecorder(model, params, trajectory=trajectory, chunk_steps=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    expected = []
    for _ in range(20):
        before = {n: p.detach().clone() for n, p in params.items()}
        x, y = torch.randn(8, 6, device="cuda"), torch.randint(0, 3, (8,), device="cuda")
        recorder.step(optimizer, nn.functional.cross_entropy, x, y)
        expected.append({n: (p.detach() - before[n]).reshape(-1).cpu().numpy()
                         for n, p in params.items()})
    recorded = recorder.trajectory
    assert recorded.n_steps == 20 and np.all(np.isfinite(recorded.losses()[1]))
    for name in params:
        np.testing.assert_array_equal(recorded.deltas(name), np.stack([e[name] for e in expected]))
    assert np.all(recorded.grad_norms() > 0)


def test_the_passes_over_a_design_read_a_memory_map_as_they_read_an_array(tmp_path):
    """The lasso, the F-tests and the factor SVD take a design on disk block by block and
    give what they give on the same array in memory.  The operations are the same, but a
    memory map and an array may start at different alignments, which a BLAS may sum in
    another order: the tolerances are those of rounding (F to 1e-10 of max(F, 1), the
    factors' subspace to 1e-8, the lasso within its duality gaps)."""
    from types import SimpleNamespace

    from granger_prune import CausalLasso
    from granger_prune.stats import granger_tests, nested_f_tests
    from granger_prune.stats.factors import common_factors
    from _tolerances import assert_same_enet_solution, assert_tests_close

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(120, 700)) * rng.lognormal(size=700) * 1e-3).astype(np.float32) ** 2
    y = X[:, :5] @ rng.uniform(1e5, 2e5, 5) + rng.normal(size=120)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    assert_tests_close(nested_f_tests(y, mapped), nested_f_tests(y, X).fvalue, tol=1e-10)
    assert_tests_close(granger_tests(y, mapped, factors="scale"),
                       granger_tests(y, X, factors="scale").fvalue, tol=1e-10)
    on_disk, in_memory = common_factors(mapped, 3), common_factors(X, 3)
    cosines = np.linalg.svd(on_disk.factors.T @ in_memory.factors, compute_uv=False)
    np.testing.assert_allclose(cosines, 1.0, rtol=0, atol=1e-8)  # orthonormal bases
    np.testing.assert_allclose(on_disk.share, in_memory.share, rtol=1e-10, atol=0)
    fits = [CausalLasso(alpha=1e-3, tol=1e-10).fit(A, y) for A in (mapped, X)]
    assert_same_enet_solution(X, y, *[SimpleNamespace(w=f.coef_, intercept=f.intercept_,
                                                      dual_gap=f.dual_gap_) for f in fits],
                              alpha=1e-3)


def test_a_full_disk_mid_block_leaves_the_last_committed_steps(tmp_path, monkeypatch):
    from granger_prune.record import disk

    store = fill(DiskTrajectory(tmp_path / "run", SHAPES), 14)
    calls = []
    real = disk._AppendableArray.append

    def full_on_second(self, rows):  # the first tensor's rows written, then ENOSPC
        calls.append(self.path.name)
        if len(calls) == 2:
            raise OSError(28, f"writing {self.path}: No space left on device")
        return real(self, rows)

    monkeypatch.setattr(disk._AppendableArray, "append", full_on_second)
    with pytest.raises(OSError, match="No space left"):
        store.append(1.0, 0.5, {name: np.ones(s) for name, s in SHAPES.items()})
    monkeypatch.setattr(disk._AppendableArray, "append", real)
    assert store.n_steps == 15 and DiskTrajectory.open(tmp_path / "run").n_steps == 15
    store.append(2.0, 1.5, {name: np.full(s, 2.0) for name, s in SHAPES.items()})
    reopened = DiskTrajectory.open(tmp_path / "run")
    assert reopened.n_steps == 16
    np.testing.assert_array_equal(reopened.deltas("0.weight")[-1], 2.0)
    np.testing.assert_array_equal(reopened.losses()[0][-1], 2.0)


def test_bfloat16_bits_round_to_nearest_even_as_torch_does():
    from granger_prune.record.bfloat16 import from_bfloat16_bits, to_bfloat16_bits

    rng = np.random.default_rng(0)
    # raw-scale steps, ties, signed zeros, the largest finite values, inf and NaN
    values = np.concatenate([rng.normal(size=5000) * 10.0 ** rng.uniform(-12, 2, size=5000),
                             np.array([0.0, -0.0, 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8,
                                       np.finfo(np.float32).max, -np.finfo(np.float32).max,
                                       np.inf, -np.inf, np.nan, 1e-40])]).astype(np.float32)
    bits = to_bfloat16_bits(values)
    expected = torch.from_numpy(values).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    finite = ~np.isnan(values)
    np.testing.assert_array_equal(bits[finite], expected[finite])
    decoded = from_bfloat16_bits(bits)
    assert np.isnan(decoded[~finite]).all()
    np.testing.assert_array_equal(decoded[finite],
                                  torch.from_numpy(values[finite]).to(torch.bfloat16).float().numpy())
    normal = np.isfinite(values) & (np.abs(values) >= np.finfo(np.float32).tiny) \
        & (np.abs(values) < np.finfo(np.float32).max / 2)
    assert np.all(np.abs(decoded[normal] - values[normal]) <= 2.0 ** -8 * np.abs(values[normal]))


def test_a_bfloat16_store_keeps_the_rounded_steps_in_half_the_bytes(tmp_path, monkeypatch):
    from granger_prune.design import granger, granger_design
    from granger_prune.record import Bfloat16Rows

    from granger_prune.record import disk

    monkeypatch.setattr(disk, "ENCODE_BLOCK_ENTRIES", 8)  # blocks encoded a few rows at a time
    half = fill(DiskTrajectory(tmp_path / "half", SHAPES, dtype="bfloat16"), 30)
    memory = fill(InMemoryTrajectory(SHAPES), 30)
    assert half.nbytes() == trajectory_bytes(SHAPES, 31, "bfloat16") < trajectory_bytes(SHAPES, 31)
    reopened = DiskTrajectory.open(tmp_path / "half")
    assert reopened.dtype == "bfloat16"
    meta = json.loads((tmp_path / "half" / "meta.json").read_text())
    assert meta["dtype"] == "bfloat16"
    for name in SHAPES:
        rows = reopened.deltas(name)
        assert isinstance(rows, Bfloat16Rows) and rows.shape == (31, memory.sizes()[name])
        rounded = torch.from_numpy(np.array(memory.deltas(name))).to(torch.bfloat16).float().numpy()
        np.testing.assert_array_equal(np.asarray(rows), rounded)
        np.testing.assert_array_equal(rows[3:9], rounded[3:9])  # a slice decodes only itself
        # the documented layout: uint16 bits, decoded with NumPy alone
        bits = np.load(tmp_path / "half" / meta["tensors"][list(SHAPES).index(name)]["file"])
        np.testing.assert_array_equal((bits.astype(np.uint32) << 16).view(np.float32), rounded)
    for x, y in zip(reopened.losses(), memory.losses()):
        np.testing.assert_array_equal(x, y)  # losses and rates stay float64
    # a design read block by block from the bfloat16 store is the design of the rounded steps
    rounded_store = InMemoryTrajectory(SHAPES)
    rounded_store.append_block(*memory.losses(), {n: np.asarray(reopened.deltas(n)) for n in SHAPES})
    monkeypatch.setattr(granger, "DESIGN_BLOCK_ENTRIES", 20)  # blocks of a row or two
    on_disk = granger_design(reopened, out=tmp_path / "X.npy")
    np.testing.assert_allclose(on_disk.X, granger_design(rounded_store).X,
                               rtol=np.finfo(np.float32).eps, atol=0)
    with pytest.raises(ValueError, match="dtype must be one of"):
        DiskTrajectory(tmp_path / "other", SHAPES, dtype="float16")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("readahead_off, threads", [(True, 1), (True, 3), (False, 1)],
                         ids=["preadv", "preadv-3-threads", "memory-map"])
def test_a_block_of_columns_is_read_as_the_memory_map_gives_it(tmp_path, monkeypatch, dtype,
                                                                 readahead_off, threads):
    """``read_steps`` (positioned reads with readahead off, by one or several threads, or
    the memory map where the system lacks them) gives exactly the memory map's rows and
    columns, as new writable float32 arrays."""
    monkeypatch.setattr(disk_module, "READS_WITHOUT_READAHEAD",
                        readahead_off and disk_module.READS_WITHOUT_READAHEAD)
    monkeypatch.setattr(disk_module, "READ_THREADS", threads)
    monkeypatch.setattr(disk_module, "SPAN_GAP_BYTES", 8)  # indices 3 apart: separate runs
    rng = np.random.default_rng(0)
    traj = DiskTrajectory(tmp_path / "t", {"a": (3, 5), "b": (7,)}, dtype=dtype)
    for _ in range(3):
        traj.append_block(rng.normal(size=4), rng.normal(size=4),
                          {"a": rng.normal(size=(4, 15)) * 1e-6, "b": rng.normal(size=(4, 7))})
    reference = np.asarray(traj.deltas("a")[:], dtype=np.float32)
    for first, stop, columns in [(0, 12, slice(None)), (2, 9, slice(4, 11)), (5, 6, slice(14, 15)),
                                 (1, 12, np.array([0, 3, 4, 13])), (3, 3, slice(2, 5)),
                                 (0, 12, np.array([0, 14])),  # scattered: the memory map
                                 (0, 20, slice(0, 15, 2)), (0, 12, np.array([], dtype=np.int64))]:
        block = traj.read_steps("a", first, stop, columns)
        assert block.dtype == np.float32 and block.flags.writeable
        np.testing.assert_array_equal(block, reference[first:stop, columns])
    np.testing.assert_array_equal(traj.read_steps("b", 0, 12, slice(1, 6)),
                                  np.asarray(traj.deltas("b")[:, 1:6], dtype=np.float32))


def test_sorted_indices_are_read_as_pieces_of_near_neighbours():
    index = np.array([2, 3, 5, 9, 10, 30, 30, 31, 40])
    pieces = disk_module._index_pieces(index, gap=2, longest=8)
    assert [(start, stop) for start, stop, _, _ in pieces] == [(2, 6), (9, 11), (30, 32), (40, 41)]
    for start, stop, members, within in pieces:  # every index found where it lies in its piece
        np.testing.assert_array_equal(np.arange(start, stop)[within], index[members])
    assert sum(len(index[m]) for _, _, m, _ in pieces) == index.size
    cut = disk_module._index_pieces(np.arange(0, 20, 2), gap=2, longest=8)  # one run, cut in 3
    assert [(start, stop) for start, stop, _, _ in cut] == [(0, 7), (8, 15), (16, 19)]
