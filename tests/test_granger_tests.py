"""Granger F-tests on the package's designs: statsmodels on recorded trajectories,
streaming statistics equal to the stored computation, and the significance rule."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
import torch
from numpy.testing import assert_allclose, assert_array_equal
from statsmodels.stats.stattools import durbin_watson
from torch import nn

from granger_prune.zoo.datasets import load_dataset
from granger_prune.design.granger import granger_design
from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.zoo.models import build_model
from granger_prune.network.pruning import prunable_parameters
from granger_prune.criteria import Causal, RoundInputs
from granger_prune.design import DesignSpec
from granger_prune.selection import Significance, select_causal
from granger_prune.stats import StreamingGrangerTests, adjust_pvalues, granger_f_tests
from granger_prune.record.recorder import TrajectoryRecorder
from granger_prune.record.trajectory import InMemoryTrajectory

from _tolerances import assert_f_close, assert_p_close, assert_tests_close, residual_rtol

#: F error allowed against statsmodels in float64 (scaled by max(F, 1)): both are
#: backward stable on O(1)-conditioned designs; 1e-8 leaves room for cond(Z).
F_TOL = 1e-8
#: Streaming against stored tests: the tolerance the streaming docstring states
#: for multi-column units (Gram solves; single columns are far closer).
STREAM_TOL = 1e-6


def record_digits(n_steps=80, sink=None, loss_change="same_batch", seed=0):
    """A real trajectory: SGD with momentum on digits, MLP 64-16-10."""
    torch.manual_seed(seed)
    data = load_dataset("digits")
    model = build_model("mlp", data.input_shape, data.n_classes, hidden=[16])
    params = prunable_parameters(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    recorder = TrajectoryRecorder(model, params, trajectory=sink, loss_change=loss_change)
    for t in range(n_steps):
        start = (t * 16) % (len(data.x_train) - 16)
        recorder.step(optimizer, nn.functional.cross_entropy, data.x_train[start:start + 16],
                      data.y_train[start:start + 16])
    return recorder.trajectory


@pytest.fixture(scope="module")
def digits_trajectory():
    return record_digits()


def _statsmodels_unit_test(design, unit):
    m = design.features_per_unit
    columns = design.X[:, unit * m:(unit + 1) * m]
    Z = design.Z
    restricted = sm.OLS(design.y, Z).fit()
    full = sm.OLS(design.y, np.column_stack([Z, columns])).fit()
    f, p, df = full.compare_f_test(restricted)
    return f, p, df, restricted


@pytest.mark.parametrize("features, lags", [("vanilla", 0), ("vanilla", 2), ("momentum", 2)])
def test_unit_tests_on_a_recorded_trajectory_match_statsmodels(digits_trajectory, features, lags):
    design = granger_design(digits_trajectory, ["1.weight"], features=features, lags=lags)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)  # pixels that are always 0
        result = granger_f_tests(design)
    assert result.n_tests == design.n_units == 64 * 16
    assert_array_equal(result.n_columns, design.features_per_unit)
    tested = np.flatnonzero(np.isfinite(result.fvalue))
    assert np.all(result.df_num[~np.isfinite(result.fvalue)] == 0)
    assert tested.size > 500
    for unit in tested[:: max(1, tested.size // 25)]:
        f, p, df, restricted = _statsmodels_unit_test(design, unit)
        assert result.df_num[unit] == df
        assert_f_close(result.fvalue[unit], f, tol=F_TOL)
        assert_p_close(result.pvalue[unit], f, result.df_num[unit], result.df_denom[unit], tol=F_TOL)
    assert_allclose(result.durbin_watson, durbin_watson(restricted.resid),
                    rtol=residual_rtol(design.y, design.Z))
    # input pixels that never vary give no test, reported as p = 1
    dead = np.flatnonzero(~np.isfinite(result.fvalue))
    assert dead.size and np.all(result.pvalue[dead] == 1.0)


def test_tests_on_a_subset_of_units_and_rows(digits_trajectory):
    design = granger_design(digits_trajectory, ["3.weight"], features="momentum", lags=1)
    units, rows = np.array([5, 2, 77]), np.arange(10, design.n_steps)
    result = granger_f_tests(design, units=units, rows=rows)
    for i, unit in enumerate(units):
        cols = design.X[rows, unit * 3:(unit + 1) * 3]
        restricted = sm.OLS(design.y[rows], design.Z[rows]).fit()
        full = sm.OLS(design.y[rows], np.column_stack([design.Z[rows], cols])).fit()
        assert_f_close(result.fvalue[i], full.compare_f_test(restricted)[0], tol=F_TOL)
    with pytest.raises(ValueError, match="units"):
        granger_f_tests(design, units=[design.n_units])


def synthetic_trajectory(n_steps=60, seed=0):
    rng = np.random.default_rng(seed)
    traj = InMemoryTrajectory({"a": (3, 4), "b": (5,)})
    loss = 3.0
    for _ in range(n_steps):
        a = rng.normal(size=(3, 4)) * np.geomspace(1e-4, 1e-2, 4)
        b = rng.standard_t(3, size=5) * 1e-3
        b[4] = 0.0  # a parameter that never moves: no test
        change = -40.0 * a[0, 0] ** 2 - 5e3 * b[0] ** 2 + 1e-3 * rng.normal()
        traj.append(loss, loss + change, {"a": a, "b": b})
        loss += change + 1e-4 * rng.normal()
    return traj


def replay(traj, **options):
    stream = StreamingGrangerTests(traj.shapes, **options)
    before, after = traj.losses()
    for t in range(traj.n_steps):
        stream.append(before[t], after[t], {n: traj.deltas(n)[t] for n in traj.names})
    return stream


GROUPS = {"a": np.repeat(np.arange(3), 4).reshape(3, 4), "b": np.array([0, 1, 2, 3, 3])}


@pytest.mark.parametrize("options", [
    dict(),
    dict(restricted="none"),
    dict(features="momentum", lags=2),
    dict(features="momentum", lags=3, restricted="none", loss_change="consecutive"),
    dict(lags=1, loss_change="consecutive", groups=GROUPS),
    dict(features="momentum", groups=GROUPS,
         alive={"a": np.arange(12).reshape(3, 4) % 3 != 0, "b": np.ones(5, bool)}),
])
def test_streaming_tests_equal_the_stored_computation(options):
    traj = synthetic_trajectory()
    if options.get("loss_change") == "consecutive":
        traj = _without_after_losses(traj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        stored = granger_f_tests(granger_design(traj, **options))
        stream = replay(traj, **options)
        streamed = stream.f_tests()
    design = granger_design(traj, **options)
    assert stream.n_rows == design.n_steps and stream.n_units == design.n_units
    for name in traj.names:
        assert_array_equal(stream.unit_map[name], design.unit_map[name])
    assert_array_equal(np.isnan(streamed.fvalue), np.isnan(stored.fvalue))
    ok = np.isfinite(stored.fvalue)
    assert ok.sum() >= design.n_units - 1
    assert_tests_close(streamed, stored.fvalue, tol=STREAM_TOL)
    residual = residual_rtol(design.y, design.Z) if design.Z.shape[1] else 1e-12
    assert_allclose(streamed.ssr_restricted, stored.ssr_restricted, rtol=residual)
    assert_allclose(streamed.durbin_watson, stored.durbin_watson, rtol=residual)
    assert_array_equal(streamed.df_denom, stored.df_denom)


def _without_after_losses(traj):
    out = InMemoryTrajectory(traj.shapes)
    before, _ = traj.losses()
    for t in range(traj.n_steps):
        out.append(before[t], np.nan, {n: traj.deltas(n)[t] for n in traj.names})
    return out


def test_streaming_memory_does_not_grow_with_steps():
    traj = synthetic_trajectory(n_steps=200)
    short, long = replay(_truncated(traj, 20)), replay(traj)
    sizes = [sum(v.nbytes for v in vars(s).values() if isinstance(v, np.ndarray)) for s in (short, long)]
    assert sizes[0] == sizes[1]
    assert long.n_rows == 200


def _truncated(traj, n_steps):
    out = InMemoryTrajectory(traj.shapes)
    before, after = traj.losses()
    for t in range(n_steps):
        out.append(before[t], after[t], {n: traj.deltas(n)[t] for n in traj.names})
    return out


def test_recorder_feeds_streaming_tests_that_equal_the_stored_ones():
    stored_traj = record_digits(n_steps=40)
    shapes = {n: s for n, s in stored_traj.shapes.items()}
    stream = record_digits(n_steps=40, sink=StreamingGrangerTests(shapes, ["3.weight"],
                                                                   features="momentum", lags=2))
    assert stream.n_steps == 40 and stream.n_rows == 39
    expected = granger_f_tests(granger_design(stored_traj, ["3.weight"], features="momentum", lags=2))
    assert_tests_close(stream.f_tests(), expected.fvalue, tol=STREAM_TOL)


def test_streaming_bad_input():
    shapes = {"w": (3,)}
    with pytest.raises(ValueError, match="features"):
        StreamingGrangerTests(shapes, features="adam")
    with pytest.raises(ValueError, match="lags"):
        StreamingGrangerTests(shapes, lags=-1)
    with pytest.raises(ValueError, match="does not cover"):
        StreamingGrangerTests(shapes, groups={})
    stream = StreamingGrangerTests(shapes)
    with pytest.raises(ValueError, match="lacks tensor 'w'"):
        stream.append(1.0, 0.9, {})
    with pytest.raises(ValueError, match="entries"):
        stream.append(1.0, 0.9, {"w": np.zeros(4)})
    with pytest.raises(ValueError, match="not finite"):
        stream.append(1.0, np.nan, {"w": np.zeros(3)})
    stream.append(1.0, 0.9, {"w": np.ones(3)})
    with pytest.raises(ValueError, match="n_rows=1"):
        stream.f_tests()
    stream = replay(synthetic_trajectory(n_steps=4), features="momentum", lags=1)
    with pytest.raises(ValueError, match=r"T=3 steps are too few for 5 regressors"):
        stream.f_tests()


def planted(n_steps=200, d=40, causal=(3, 7, 11), seed=0):
    rng = np.random.default_rng(seed)
    traj = InMemoryTrajectory({"w": (d,), "v": (6,)})
    loss = 2.0
    for _ in range(n_steps):
        delta = rng.normal(size=d) * 0.1
        change = -10.0 * np.sum(delta[list(causal)] ** 2) + 0.05 * rng.normal()
        traj.append(loss, loss + change, {"w": delta, "v": rng.normal(size=6) * 0.1})
        loss += 0.01 * rng.normal()
    return traj


def test_significance_rule_keeps_what_the_tests_find():
    traj = planted()
    alive = {"w": np.ones(40, bool), "v": np.ones(6, bool)}
    result = select_causal(traj, alive, rule=Significance(q=0.05))
    assert set(np.flatnonzero(result.masks["w"])) == {3, 7, 11}
    diag = result.diagnostics.set_index("tensors")
    assert diag.loc["w", "n_tested"] == 40 and diag.loc["w", "n_significant"] == 3
    assert 1.5 < diag.loc["w", "durbin_watson"] < 2.5
    # the same decisions by hand: F-tests of each layer's design, BH at q within the layer
    for name in ("w", "v"):
        tests = granger_f_tests(granger_design(traj, [name]))
        reject, _ = adjust_pvalues(tests.pvalue, alpha=0.05)
        assert_array_equal(result.masks[name], reject)
        # the same tests on another gather of the columns: rounding-level differences
        assert_p_close(result.pvalue[name], tests.fvalue, tests.df_num, tests.df_denom, tol=1e-10)


def test_significance_rule_global_scope_is_one_family():
    traj = planted()
    alive = {"w": np.ones(40, bool), "v": np.ones(6, bool)}
    result = select_causal(traj, alive, rule=Significance(correction="bonferroni"), scope="global")
    p = np.concatenate([result.pvalue["w"], result.pvalue["v"]])
    kept = np.concatenate([result.masks["w"], result.masks["v"]])
    assert_array_equal(kept, p <= 0.05 / 46)
    assert len(result.diagnostics) == 1 and result.diagnostics["n_tested"].iloc[0] == 46


def test_significance_rule_with_sample_splitting_tests_the_screened_units_on_fresh_steps():
    traj = planted(n_steps=300)
    alive = {"w": np.ones(40, bool)}
    result = select_causal(traj, {"w": alive["w"]}, rule=Significance(split=0.5, alpha_ratio=0.1))
    diag = result.diagnostics.iloc[0]
    assert 3 <= diag["n_tested"] == diag["lasso_support"] < 40
    assert set(np.flatnonzero(result.masks["w"])) == {3, 7, 11}
    untested = result.scores["w"] == 0
    assert np.all(result.pvalue["w"][untested] == 1.0) and not result.masks["w"][untested].any()
    # the tests used only the second half of the steps
    design = granger_design(traj, ["w"])
    screened = np.flatnonzero(~untested)
    second = granger_f_tests(design, units=screened, rows=np.arange(150, design.n_steps))
    assert_p_close(result.pvalue["w"][screened], second.fvalue, second.df_num, second.df_denom,
                   tol=1e-10)
    with pytest.raises(ValueError, match="split=0.005 of T=300 rows leaves 1 rows to screen"):
        select_causal(traj, alive, rule=Significance(split=0.005))


def test_significance_rule_with_momentum_units():
    traj = planted()
    result = select_causal(traj, {"w": np.ones(40, bool)}, rule=Significance(),
                           design=DesignSpec(features="momentum", lags=2))
    assert {3, 7, 11} <= set(np.flatnonzero(result.masks["w"]))
    pvalue = granger_f_tests(granger_design(traj, ["w"], features="momentum", lags=2)).pvalue
    assert_array_equal(result.masks["w"], adjust_pvalues(pvalue, alpha=0.05)[0])
    assert result.diagnostics["n_units"].iloc[0] == 40
    assert result.diagnostics["n_features"].iloc[0] == 120


def test_significance_method_in_the_pruning_loop_options():
    method = Causal(rule=Significance(q=0.01, correction="holm"))
    assert method.label == "causal-significance(q=0.01, correction=holm)/layer"
    assert not method.targets_sparsity and Causal().targets_sparsity
    selection = method.select({"w": np.ones(40, bool), "v": np.ones(6, bool)}, None,
                              RoundInputs({"w": np.zeros(40), "v": np.zeros(6)}, trajectory=planted()))
    assert set(np.flatnonzero(selection.masks["w"])) == {3, 7, 11}
    assert Causal(design=DesignSpec(features="momentum", lags=2)).label == \
        "causal-rank(features=momentum, lags=2)/layer"
    assert Causal(rule=Significance(split=0.5)).label == "causal-significance(split=0.5)/layer"
    # the F-tests of 3 momentum features with an intercept and two lags need T > 6
    momentum = Causal(design=DesignSpec(features="momentum", lags=2), rule=Significance())
    momentum.check_recorded_steps(8)  # 7 rows
    with pytest.raises(ValueError, match="needs at least 7"):
        momentum.check_recorded_steps(7)
    with pytest.raises(ValueError, match="needs at least 6"):
        Causal(rule=Significance(split=0.5)).check_recorded_steps(5)
    for bad in (dict(q=0.0), dict(q=1.5), dict(correction="sidak"), dict(split=1.0)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Significance(**bad)
    for bad in (dict(lags=-2), dict(features="adam")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DesignSpec(**bad)


def test_streaming_with_an_emptied_tensor_and_rejected_steps():
    traj = synthetic_trajectory()
    alive = {"a": np.zeros((3, 4), bool), "b": np.ones(5, bool)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        stream = replay(traj, alive=alive, features="momentum", lags=1)
        expected = granger_f_tests(granger_design(traj, alive=alive, features="momentum", lags=1))
        # a rejected step leaves the statistics as they were
        with pytest.raises(ValueError, match="not finite"):
            stream.append(1.0, 0.5, {"a": np.zeros((3, 4)), "b": np.full(5, np.nan)})
        with pytest.raises(ValueError, match="not finite"):
            stream.append(1.0, np.inf, {"a": np.zeros((3, 4)), "b": np.zeros(5)})
        result = stream.f_tests()
    assert stream.n_units == 5 and stream.n_steps == traj.n_steps
    assert_tests_close(result, expected.fvalue, tol=STREAM_TOL)


def test_a_response_in_the_span_of_the_restricted_model_has_nothing_to_test():
    traj = InMemoryTrajectory({"w": (3,)})
    for t in range(10):
        traj.append(2.0, 1.5, {"w": np.arange(3.0) * (t + 1)})  # every loss change is -0.5
    with pytest.raises(ValueError, match="span"):
        granger_f_tests(granger_design(traj))
    with pytest.raises(ValueError, match="span"):
        replay(traj).f_tests()


STREAM_OPTIONS = [
    dict(),
    dict(restricted="none", lags=1),
    dict(features="momentum", lags=2),
    dict(features="momentum", lags=3, restricted="none", loss_change="consecutive"),
    dict(lags=1, loss_change="consecutive", groups=GROUPS),
    dict(features="momentum", groups=GROUPS,
         alive={"a": np.arange(12).reshape(3, 4) % 3 != 0, "b": np.ones(5, bool)}),
]


def replay_blocks(traj, sizes, **options):
    """Feed ``traj`` to a StreamingGrangerTests in blocks of ``sizes`` steps (cycled)."""
    stream = StreamingGrangerTests(traj.shapes, **options)
    before, after = traj.losses()
    t, i = 0, 0
    while t < traj.n_steps:
        stop = min(traj.n_steps, t + sizes[i % len(sizes)])
        stream.append_block(before[t:stop], after[t:stop], {n: traj.deltas(n)[t:stop] for n in traj.names})
        t, i = stop, i + 1
    return stream


@pytest.mark.parametrize("options", STREAM_OPTIONS)
def test_blocks_of_steps_give_the_tests_of_single_steps(options):
    """Blocks of any size (one step, blocks across the lag and momentum edges, all at once)
    merge into the moments that single steps give, to the rounding of the merge."""
    traj = synthetic_trajectory()
    if options.get("loss_change") == "consecutive":
        traj = _without_after_losses(traj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        single = replay(traj, **options)
        reference = single.f_tests()
        for sizes in ([1], [2, 5, 1, 7], [traj.n_steps]):
            stream = replay_blocks(traj, sizes, **options)
            assert (stream.n_rows, stream.n_steps) == (single.n_rows, single.n_steps)
            assert_tests_close(stream.f_tests(), reference.fvalue, tol=STREAM_TOL)
    assert not single.takes_device_blocks


def test_a_bad_block_is_left_out_whole():
    traj = synthetic_trajectory(n_steps=30)
    before, after = traj.losses()
    stream = replay_blocks(_truncated(traj, 20), [20])
    moments = {k: v.copy() for k, v in vars(stream).items() if isinstance(v, np.ndarray)}
    deltas = {n: traj.deltas(n)[20:30].copy() for n in traj.names}
    deltas["b"][6, 2] = np.inf
    with pytest.raises(ValueError, match="deltas\\['b'\\] of step 26 is not finite"):
        stream.append_block(before[20:30], after[20:30], deltas)
    bad_after = after[20:30].copy()
    bad_after[3] = np.nan
    with pytest.raises(ValueError, match="loss change of step 23 is not finite"):
        stream.append_block(before[20:30], bad_after, {n: traj.deltas(n)[20:30] for n in traj.names})
    with pytest.raises(ValueError, match="entries per step"):
        stream.append_block(before[20:30], after[20:30], {"a": np.zeros((10, 11)), "b": np.zeros((10, 5))})
    with pytest.raises(ValueError, match="loss_after has 1 steps, loss_before 10"):
        stream.append_block(before[20:30], after[20:21], {n: traj.deltas(n)[20:30] for n in traj.names})
    stream.append_block([], [], {n: traj.deltas(n)[:0] for n in traj.names})  # an empty block: nothing
    assert (stream.n_steps, stream.n_rows) == (20, 20)
    for k, v in moments.items():
        assert_array_equal(getattr(stream, k), v)
    stream.append_block(before[20:30], after[20:30], {n: traj.deltas(n)[20:30] for n in traj.names})
    assert_tests_close(stream.f_tests(), replay(traj).f_tests().fvalue, tol=STREAM_TOL)


@pytest.mark.parametrize("options", [STREAM_OPTIONS[2], STREAM_OPTIONS[4], STREAM_OPTIONS[5]])
def test_the_device_branch_of_streaming_tests(monkeypatch, numpy_as_device, options):
    """The device form (moments in the namespace of the device, the scatter-add of
    weight-shared units) through NumPy posing as CuPy."""
    import contextlib

    from granger_prune.design import granger as granger_module
    from granger_prune.stats import streaming

    traj = synthetic_trajectory()
    if options.get("loss_change") == "consecutive":
        traj = _without_after_losses(traj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        reference = replay(traj, **options).f_tests()
        monkeypatch.setattr(streaming, "statistics_device", lambda device: device)
        monkeypatch.setattr(streaming, "running_on", lambda device: contextlib.nullcontext(numpy_as_device))
        monkeypatch.setattr(StreamingGrangerTests, "xp", property(lambda self: numpy_as_device))
        monkeypatch.setattr(granger_module, "get_namespace", lambda *a: numpy_as_device)
        stream = replay_blocks(traj, [2, 5, 1, 7], device="cuda:0", **options)
        assert stream.xp is numpy_as_device and stream.takes_device_blocks
        assert_tests_close(stream.f_tests(), reference.fvalue, tol=STREAM_TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("options", [dict(features="momentum", lags=2), dict(lags=1, groups=GROUPS)])
def test_streaming_tests_on_the_gpu_equal_those_on_the_host(options):
    import cupy

    traj = synthetic_trajectory()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        reference = replay(traj, **options).f_tests()
        stream = replay_blocks(traj, [2, 5, 1, 7], device="cuda", **options)
        assert isinstance(stream._cxx, cupy.ndarray)
        assert_tests_close(stream.f_tests(), reference.fvalue, tol=STREAM_TOL)


@pytest.mark.gpu
def test_a_cuda_recorder_hands_streaming_tests_its_blocks_on_the_device():
    data = load_dataset("digits")
    torch.manual_seed(0)
    model = build_model("mlp", data.input_shape, data.n_classes, hidden=[16]).cuda()
    params = prunable_parameters(model)
    shapes = {n: tuple(p.shape) for n, p in params.items()}
    sinks = [StreamingGrangerTests(shapes, ["3.weight"], lags=1, device=d) for d in (None, "cuda")]
    assert [s.takes_device_blocks for s in sinks] == [False, True]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for sink in sinks:  # the same steps into a host and a device sink
        model.load_state_dict(state)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        recorder = TrajectoryRecorder(model, params, trajectory=sink)
        for t in range(41):
            start = (t * 16) % (len(data.x_train) - 16)
            recorder.step(optimizer, nn.functional.cross_entropy, data.x_train[start:start + 16].cuda(),
                          data.y_train[start:start + 16].cuda())
        recorder.close()
    assert sinks[1].n_rows == sinks[0].n_rows == 40  # 41 steps, one lag
    assert_tests_close(sinks[1].f_tests(), sinks[0].f_tests().fvalue, tol=STREAM_TOL)


def test_streaming_tests_pickle_and_go_on():
    import pickle

    traj = synthetic_trajectory(n_steps=40)
    before, after = traj.losses()
    stream = replay_blocks(_truncated(traj, 25), [7], features="momentum", lags=1)
    copy = pickle.loads(pickle.dumps(stream))
    for s in (stream, copy):
        s.append_block(before[25:], after[25:], {n: traj.deltas(n)[25:] for n in traj.names})
    assert_tests_close(copy.f_tests(), stream.f_tests().fvalue, tol=0)


@pytest.mark.gpu
def test_streaming_tests_on_another_gpu_take_blocks_from_any_device():
    import cupy

    if cupy.cuda.runtime.getDeviceCount() < 2:
        pytest.skip("needs two GPUs")
    traj = synthetic_trajectory()
    reference = replay(traj, lags=1).f_tests()
    stream = StreamingGrangerTests(traj.shapes, lags=1, device="cuda:1")
    before, after = traj.losses()
    for start in range(0, traj.n_steps, 9):  # blocks on GPU 0, on the host, as torch tensors
        block = slice(start, start + 9)
        kind = (start // 9) % 3
        with cupy.cuda.Device(0):
            deltas = {n: (cupy.asarray(traj.deltas(n)[block]) if kind == 0 else
                          torch.from_numpy(traj.deltas(n)[block].copy()) if kind == 1 else
                          traj.deltas(n)[block]) for n in traj.names}
        stream.append_block(before[block], after[block], deltas)
    assert_tests_close(stream.f_tests(), reference.fvalue, tol=STREAM_TOL)
