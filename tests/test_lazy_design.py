"""Lazy designs: X computed from the trajectory store when read, never copied."""

import dataclasses
import threading
from types import SimpleNamespace

import numpy as np
import pytest

from granger_prune import CausalLasso
from granger_prune.design import granger_design
from granger_prune.design import lazy as lazy_module
from granger_prune.design.lazy import LazyFeatures
from granger_prune.exceptions import DegenerateLayerWarning
from granger_prune.lasso import alpha_max
from granger_prune.lasso.estimator import unit_sd_scale
from granger_prune.record import DiskTrajectory
from granger_prune.stats import granger_f_tests

from _tolerances import (FLOAT32_PRODUCTS_TOL, assert_f_close, assert_same_enet_solution, assert_tests_close,
                         reduction_atol)

SHAPES = {"a": (6, 50), "b": (40,)}


def stored_trajectory(path, dtype, n_steps=60, frozen=(), seed=0):
    """A trajectory whose loss change depends on the first row of ``a``, in a disk store."""
    rng = np.random.default_rng(seed)
    traj = DiskTrajectory(path, SHAPES, dtype=dtype)
    for t in range(n_steps):
        deltas = {k: (rng.normal(size=s) * 1e-3 * (k not in frozen)).astype(np.float32)
                  for k, s in SHAPES.items()}
        loss = 1.0 - 0.01 * t + 0.01 * rng.normal()  # lagged losses not collinear with t
        change = -1e3 * float((deltas["a"][0] ** 2).sum()) + 1e-6 * rng.normal()
        rate = 0.1 * 0.9 ** (t // 20)  # a schedule, for step_size="divide"
        traj.append(loss, loss + change, deltas, step_sizes={"a": rate, "b": rate}, grad_norm=1.0)
    return traj


def several_blocks(design):
    """The design with blocks of 16 units, so that every test crosses block edges."""
    design.X.block_columns = 16 * design.X.m
    return design


OPTIONS = [dict(), dict(features="momentum"), dict(features="momentum", lags=2), dict(scale="layer"),
           dict(scale="column"), dict(step_size="divide"), dict(tensors=["b", "a"]),
           dict(alive={"a": np.arange(300).reshape(6, 50) % 3 > 0, "b": np.ones(40, bool)})]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "vanilla")
def test_lazy_features_are_the_in_memory_design_rounded_to_float32_bit_for_bit(tmp_path, dtype, options):
    traj = stored_trajectory(tmp_path / "t", dtype)
    memory = granger_design(traj, **options)
    lazy = several_blocks(granger_design(traj, lazy=True, **options))
    assert isinstance(lazy.X, LazyFeatures) and lazy.X.shape == memory.X.shape
    # the raw vanilla squares are taken in float32: the exact square rounded once, as
    # float64 squaring then rounding does; everything else is float64 rounded last
    # (a scaled design's mean squares are summed in another order: its column scale may
    # differ in the last bit, its features by one float32 rounding)
    scale = options.get("scale", "raw")
    exact = scale == "raw"
    T, d = memory.X.shape
    summed = {"raw": 0, "layer": T * d, "column": T}[scale]  # squares in one mean square
    np.testing.assert_allclose(lazy.column_scale, memory.column_scale,
                               rtol=summed * np.finfo(float).eps, atol=0)
    np.testing.assert_allclose(np.asarray(lazy.X), memory.X.astype(np.float32),
                               rtol=0 if exact else 2.0 ** -23, atol=0)
    np.testing.assert_array_equal(lazy.y, memory.y)
    np.testing.assert_array_equal(lazy.Z, memory.Z)
    # the row summary sums float32 squares (raw) or float64 ones in another order
    np.testing.assert_allclose(lazy.summaries["mean_sq_step"], memory.summaries["mean_sq_step"],
                               rtol=1e-6, atol=0)
    index = np.array([5, 0, 7, 7, lazy.n_features - 1, 33])  # unsorted, repeated, across tensors
    np.testing.assert_array_equal(lazy.X.columns(index), np.asarray(lazy.X)[:, index])
    np.testing.assert_array_equal(lazy.X[:, index], np.asarray(lazy.X)[:, index])
    np.testing.assert_array_equal(lazy.X[:, 3:40], np.asarray(lazy.X)[:, 3:40])
    np.testing.assert_array_equal(lazy.X[:, 1:30:4], np.asarray(lazy.X)[:, 1:30:4])
    with pytest.raises(IndexError, match="columns only"):
        lazy.X[:5]
    assert len(list(lazy.X.column_blocks())) > 2  # the comparisons above crossed block edges


def test_the_summary_pass_splits_tensors_into_blocks_too(tmp_path, monkeypatch):
    traj = stored_trajectory(tmp_path / "t", "bfloat16")
    memory = granger_design(traj, features="momentum", scale="column")
    monkeypatch.setattr(lazy_module, "BLOCK_ENTRIES", 7 * 60 * 3)  # 7 units a block: 43 of a
    lazy = granger_design(traj, features="momentum", scale="column", lazy=True)
    assert lazy.X.block_columns == 21
    # sums of 60 squares per column, and of 340 per row, in other orders
    np.testing.assert_allclose(lazy.column_scale, memory.column_scale, rtol=60 * np.finfo(float).eps, atol=0)
    np.testing.assert_allclose(lazy.summaries["mean_sq_step"], memory.summaries["mean_sq_step"],
                               rtol=340 * np.finfo(float).eps, atol=0)


def test_lazy_columns_take_numpy_indices_and_refuse_what_numpy_refuses(tmp_path, monkeypatch):
    lazy = several_blocks(granger_design(stored_trajectory(tmp_path / "t", "float32"), lazy=True))
    X = np.asarray(lazy.X)
    mask = np.zeros(X.shape[1], dtype=bool)
    mask[[2, 300]] = True
    np.testing.assert_array_equal(lazy.X[:, mask], X[:, mask])
    np.testing.assert_array_equal(lazy.X[:, [-1, 0, -340]], X[:, [-1, 0, -340]])
    np.testing.assert_array_equal(lazy.X[:, 7], X[:, 7])  # one column: 1-D, as NumPy
    for bad in ([340], [-341], mask[:10], [0.5]):
        with pytest.raises(IndexError):
            lazy.X[:, bad]
    with pytest.raises(ValueError, match="no array to share"):
        np.asarray(lazy.X, copy=False)
    monkeypatch.setattr(lazy_module, "MATERIALISE_BYTES", X.nbytes - 1)
    with pytest.raises(MemoryError, match="read it by columns"):
        np.asarray(lazy.X)


def test_stopping_early_stops_the_helper_threads(tmp_path):
    lazy = several_blocks(granger_design(stored_trajectory(tmp_path / "t", "float32"), lazy=True))
    def helpers():  # by name: another test's threads may still be ending beside this one
        return sum(t.name.startswith("granger-prune-design") for t in threading.enumerate())

    assert helpers() == 0
    blocks = lazy.X.column_blocks()
    next(blocks)
    assert helpers() > 0  # at work on the next blocks
    blocks.close()
    assert helpers() == 0


def test_a_lasso_and_f_tests_on_lazy_features_match_those_on_the_array(tmp_path):
    traj = stored_trajectory(tmp_path / "t", "bfloat16")
    lazy = several_blocks(granger_design(traj, lazy=True))
    X = np.asarray(lazy.X)
    y = lazy.y
    a_max = alpha_max(X, y)
    # X^T v per block of columns: the same float32 products, which BLAS may sum in another order
    atol = np.max(reduction_atol(X - X.mean(0), y - y.mean(), X.dtype)) / len(y)
    np.testing.assert_allclose(alpha_max(lazy.X, y), a_max, rtol=0, atol=atol)
    for standardize in (False, "std"):
        fits = [CausalLasso(alpha=0.05 * a_max, standardize=standardize).fit(A, y) for A in (X, lazy.X)]
        assert fits[0].support_.sum() > 0
        # both within their duality gaps of the one optimum (of the standardised problem)
        sd = unit_sd_scale(X, np) if standardize else np.ones(X.shape[1])
        assert_same_enet_solution(X / sd, y, *[SimpleNamespace(w=f.coef_.astype(np.float64) * sd,
                                                               intercept=f.intercept_, dual_gap=f.dual_gap_)
                                               for f in fits], alpha=0.05 * a_max)
        blocked = fits[1]
        # the prediction, block by block in float64, is the float64 product with the array
        w = blocked.coef_.astype(np.float64)
        exact = X.astype(np.float64) @ w + blocked.intercept_
        atol = 4 * X.shape[1] * np.finfo(float).eps * (np.abs(X) @ np.abs(w) + abs(blocked.intercept_))
        assert np.all(np.abs(blocked.predict(lazy.X) - exact) <= atol)
    dense_tests = granger_f_tests(dataclasses.replace(lazy, X=X))  # the same float32 X, in memory
    lazy_tests = granger_f_tests(lazy)
    assert np.isfinite(dense_tests.fvalue).all()
    # the single-column tests project X with float32 products (another BLAS order per block)
    assert_tests_close(lazy_tests, dense_tests.fvalue, tol=FLOAT32_PRODUCTS_TOL)


def test_lazy_refuses_groups_and_out_and_warns_of_a_frozen_tensor(tmp_path):
    traj = stored_trajectory(tmp_path / "t", "float32", frozen=("b",))
    with pytest.raises(ValueError, match="one unit per parameter.*neither out="):
        granger_design(traj, lazy=True, out=tmp_path / "X.npy")
    groups = {"a": np.zeros((6, 50), dtype=int), "b": np.ones(40, dtype=int)}
    with pytest.raises(ValueError, match="neither out=.*nor groups="):
        granger_design(traj, lazy=True, groups=groups)
    with pytest.warns(DegenerateLayerWarning, match="'b' did not change"):
        lazy = granger_design(traj, lazy=True)
    assert lazy.partialled()[0] is lazy.X  # an intercept alone: no copy
    with pytest.raises(ValueError, match="without a copy of X"):
        lazy.partialled(rows=np.arange(10))
    with pytest.raises(ValueError, match="without a copy of X"):
        granger_design(traj, lazy=True, lags=1).partialled()


def test_f_tests_with_lagged_losses_on_lazy_features(tmp_path):
    traj = stored_trajectory(tmp_path / "t", "float32")
    lazy = several_blocks(granger_design(traj, lazy=True, features="momentum", lags=2))
    dense = granger_f_tests(dataclasses.replace(lazy, X=np.asarray(lazy.X)))
    blocked = granger_f_tests(lazy)
    assert dense.df_num.max() == 3 and np.isfinite(dense.fvalue).all()
    # a group's columns are taken to float64 and projected group by group, wherever it lies
    assert_tests_close(blocked, dense.fvalue, tol=1e-10)
    hac_dense = granger_f_tests(dataclasses.replace(lazy, X=np.asarray(lazy.X)), inference="hac")
    hac_blocked = granger_f_tests(lazy, inference="hac")
    assert_tests_close(hac_blocked, hac_dense.fvalue, tol=1e-10)
    for refused in (dict(inference="prewhiten"), dict(factors="scale"), dict(rows=np.arange(30))):
        with pytest.raises(ValueError, match="lazy design .* is tested with"):
            granger_f_tests(lazy, **refused)
    some = np.array([3, 40, 77])  # a few units: their columns gathered
    assert_f_close(granger_f_tests(lazy, units=some).fvalue, dense.fvalue[some], tol=1e-10)
