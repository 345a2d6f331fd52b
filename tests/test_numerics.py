"""Scale-safe numerics and rank-aware grouped tests.

The method's own features are raw (Δθ)², 1e-8 to 1e-20 and below; every F-test
and every lasso fit at fixed ``alpha / alpha_max`` is invariant to the scale of
the design, so the package must give the same answer at every scale its dtypes
can hold.  Groups with dependent columns are tested on their rank, as
statsmodels' pseudo-inverse does.
"""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import SingularMatrixWarning

from granger_prune.design.granger import granger_design
from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.lasso import CausalLasso, alpha_max, duality_gap, enet_coordinate_descent
from granger_prune.stats import StreamingGrangerTests, granger_f_tests, nested_f_tests
from granger_prune.record.trajectory import InMemoryTrajectory

from _tolerances import (assert_same_enet_solution, assert_tests_close, reduction_atol,
                         residual_rtol)

SCALES = [10.0 ** k for k in range(-30, 31, 5)]
#: F error against the unscaled float64 answer, scaled by max(F, 1) (issue 12's targets).
SWEEP_TOL = {np.float32: 1e-5, np.float64: 1e-10}


def sweep_problem(seed=0, T=120, d=6):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, d))
    y = X[:, :3] @ np.array([1.0, -2.0, 0.5]) + rng.standard_normal(T)
    Z = np.column_stack([np.ones(T), rng.standard_normal(T)])
    return y, X, Z


def _statsmodels(y, Z, columns):
    with warnings.catch_warnings():  # the reference on a rank-deficient design, on purpose
        warnings.simplefilter("ignore", SingularMatrixWarning)
        return sm.OLS(y, np.column_stack([Z, columns])).fit().compare_f_test(sm.OLS(y, Z).fit())


# ----------------------------------------------------------------------------
# the scale sweep: F-tests
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("grouped", [False, True])
def test_f_tests_are_the_same_at_every_scale(dtype, grouped):
    y, X, Z = sweep_problem()
    groups = np.array([0, 0, 1, 1, 2, 2]) if grouped else None
    reference = nested_f_tests(y, X, Z, groups=groups)
    assert np.all(np.isfinite(reference.fvalue))
    for scale in SCALES:
        Xs = (X * scale).astype(dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow, no degenerate-test warning
            result = nested_f_tests(y, Xs, Z, groups=groups)
        assert_tests_close(result, reference.fvalue, tol=SWEEP_TOL[dtype])
        np.testing.assert_array_equal(result.df_num, reference.df_num)


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e160, 1e300])
def test_float64_designs_beyond_the_range_of_their_squares(scale):
    y, X, Z = sweep_problem()
    reference = nested_f_tests(y, X, Z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = nested_f_tests(y, X * scale, Z)
    assert_tests_close(result, reference.fvalue, tol=1e-10)


@pytest.mark.parametrize("y_scale", [1e-150, 1e-20, 1e20, 1e150])
def test_f_tests_do_not_depend_on_the_scale_of_y(y_scale):
    y, X, Z = sweep_problem()
    reference = nested_f_tests(y, X, Z)
    result = nested_f_tests(y * y_scale, X, Z)
    assert_tests_close(result, reference.fvalue, tol=1e-10)
    # y * y_scale is rounded (eps per entry): the least-squares residual rounding bound
    np.testing.assert_allclose(result.ssr_restricted, reference.ssr_restricted * y_scale ** 2,
                               rtol=residual_rtol(y, Z))


def test_columns_of_z_are_judged_on_their_own_scale():
    """An intercept next to a regressor of 1e-12 is full rank (cond 1e12)."""
    rng = np.random.default_rng(0)
    Z = np.c_[np.ones(50), 1e-12 * rng.standard_normal(50)]
    X, y = rng.standard_normal((50, 2)), rng.standard_normal(50)
    result = nested_f_tests(y, X, Z)
    expected = [_statsmodels(y, Z, X[:, j])[0] for j in range(2)]
    assert_tests_close(result, expected, tol=1e-8)
    with pytest.raises(ValueError, match="rank deficient"):
        nested_f_tests(y, X, np.c_[Z, 3.0 * Z[:, 1]])
    with pytest.raises(ValueError, match="all-zero column"):
        nested_f_tests(y, X, np.c_[Z, np.zeros(50)])


def test_complex_input_is_refused():
    y, X, Z = sweep_problem()
    for args in ((y + 0j, X, Z), (y, X + 1j, Z), (y, X, Z + 0j)):
        with pytest.raises(TypeError, match="complex"):
            nested_f_tests(*args)
    with pytest.raises(TypeError, match="complex"):
        enet_coordinate_descent(X + 0j, y, 0.1)
    with pytest.raises(ValueError, match="Complex data not supported"):  # scikit-learn's check
        CausalLasso().fit(X.astype(complex), y)


def test_an_exact_fit_warns_instead_of_a_silent_infinite_f():
    y, X, Z = sweep_problem()
    X = X.copy()
    X[:, 0] = y  # y = Z b + x_0 exactly
    with pytest.warns(GrangerPruneWarning, match="fit y exactly"):
        result = nested_f_tests(y, X, Z)
    assert result.fvalue[0] == np.inf and result.pvalue[0] == 0.0
    assert np.all(np.isfinite(result.fvalue[1:]))


# ----------------------------------------------------------------------------
# the scale sweep: the lasso at fixed alpha / alpha_max
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lasso_is_the_same_at_every_scale(dtype, fit_intercept):
    y, X, _ = sweep_problem(d=20)
    X = np.abs(X) ** 2  # non-negative, like (Δθ)²
    tol = 1e-10 if dtype == np.float64 else 1e-7
    a_ref = alpha_max(X.astype(dtype), y, fit_intercept=fit_intercept)
    ref = enet_coordinate_descent(X.astype(dtype), y, 0.05 * a_ref, fit_intercept=fit_intercept,
                                  tol=tol)
    assert np.count_nonzero(ref.w) >= 2
    for scale in SCALES:
        Xs = (X * scale).astype(dtype)
        a_max = alpha_max(Xs, y, fit_intercept=fit_intercept)
        # alpha_max scales with X, to the rounding of X * scale in dtype (eps / 2 per
        # entry) and of the products: the reduction bound, twice
        yc = y - y.mean() if fit_intercept else y
        Xc = X - X.mean(0) if fit_intercept else X
        atol = 2 * np.max(reduction_atol(np.abs(X) + np.abs(Xc), yc, dtype)) / len(y)
        np.testing.assert_allclose(a_max / scale, a_ref, rtol=0, atol=atol)
        result = enet_coordinate_descent(Xs, y, 0.05 * a_max, fit_intercept=fit_intercept, tol=tol)
        assert np.count_nonzero(result.w) == np.count_nonzero(ref.w)
        # the rescaled solution solves the unscaled problem as far as the gap allows
        rescaled = result._replace(w=result.w * scale)
        X_exact = Xs.astype(np.float64) / scale
        gap = duality_gap(X_exact, y, rescaled.w, 0.05 * a_max / scale,
                          fit_intercept=fit_intercept)
        y_norm2 = np.var(y) if fit_intercept else np.mean(y ** 2)
        assert gap <= (tol + (1e-7 if dtype == np.float32 else 1e-12)) * y_norm2
        assert_same_enet_solution(X_exact, y, ref._replace(w=np.asarray(ref.w)),
                                  rescaled._replace(dual_gap=gap), 0.05 * a_ref,
                                  fit_intercept=fit_intercept)


def test_float64_lasso_beyond_the_range_of_its_squares_is_a_clear_error():
    y, X, _ = sweep_problem()
    for scale in (1e160, 1e-160):
        with pytest.raises(ValueError, match="power of two"):
            CausalLasso(alpha=0.1).fit(X * scale, y)


# ----------------------------------------------------------------------------
# rank-aware grouped tests, stored and streaming
# ----------------------------------------------------------------------------


def test_a_group_with_a_zero_column_is_tested_on_its_rank():
    """Issue 12's example: statsmodels gives F = 390.8, p = 2.7e-69 on 2 df."""
    rng = np.random.default_rng(0)
    T = 200
    x0, x1 = rng.standard_normal((2, T))
    y = 2 * x0 + rng.standard_normal(T)
    X = np.c_[x0, x1, np.zeros(T)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrangerPruneWarning)
        result = nested_f_tests(y, X, np.ones((T, 1)), groups=np.array([0, 0, 0]))
    f, p, df = _statsmodels(y, np.ones((T, 1)), X)
    assert result.df_num[0] == df == 2 and result.n_columns[0] == 3
    assert_tests_close(result, [f], [p], tol=1e-8)
    assert "reduced rank (dependent columns): 1" in result.summary()


@pytest.mark.parametrize("dependent", ["sum", "copy", "in_span_of_z"])
def test_groups_with_dependent_columns_match_statsmodels(dependent):
    rng = np.random.default_rng(1)
    T = 150
    Z = np.column_stack([np.ones(T), rng.standard_normal(T)])
    X = rng.standard_normal((T, 12))
    groups = np.repeat(np.arange(4), 3)
    if dependent == "sum":
        X[:, 2] = X[:, 0] - 2.5 * X[:, 1]
    elif dependent == "copy":
        X[:, 5] = 4.0 * X[:, 3]
    else:
        X[:, 8] = Z @ np.array([0.3, -1.2])
    y = X[:, [0, 3, 6, 9]] @ np.array([0.4, -0.3, 0.2, 0.0]) + rng.standard_normal(T)
    result = nested_f_tests(y, X, Z, groups=groups)
    expected = [_statsmodels(y, Z, X[:, groups == g]) for g in range(4)]
    np.testing.assert_array_equal(result.df_num, [e[2] for e in expected])
    assert sorted(result.df_num) == [2, 3, 3, 3]
    assert_tests_close(result, [e[0] for e in expected], [e[1] for e in expected], tol=1e-8)


def geometric_trajectory(n_steps=80, seed=0):
    """Steps of parameter 0 shrink geometrically: its momentum features are proportional
    ((Δθ^{t-1})² = (Δθ^t)² / r², Δθ^t Δθ^{t-1} = (Δθ^t)² / r), a unit of rank 1, as plain
    SGD on a noiseless quadratic gives; the other parameters move at random."""
    rng = np.random.default_rng(seed)
    traj = InMemoryTrajectory({"w": (4,)})
    loss = 2.0
    for t in range(n_steps):
        delta = rng.normal(size=4) * 0.05
        delta[0] = 0.1 * 0.97 ** t
        change = -8.0 * delta[0] ** 2 - 3.0 * delta[1] ** 2 + 1e-4 * rng.normal()
        traj.append(loss, loss + change, {"w": delta})
        loss += change
    return traj


def test_momentum_units_of_rank_one_in_the_stored_and_streaming_paths():
    traj = geometric_trajectory()
    design = granger_design(traj, features="momentum", lags=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrangerPruneWarning)
        stored = granger_f_tests(design)
        stream = StreamingGrangerTests(traj.shapes, features="momentum", lags=1)
        before, after = traj.losses()
        for t in range(traj.n_steps):
            stream.append(before[t], after[t], {"w": traj.deltas("w")[t]})
        streamed = stream.f_tests()
    assert stored.df_num[0] == streamed.df_num[0] == 1
    np.testing.assert_array_equal(stored.df_num[1:], 3)
    np.testing.assert_array_equal(streamed.df_num, stored.df_num)
    # the steps are stored in float32, so unit 0's columns are proportional only to
    # float32 rounding (1e-7 of their norm): statsmodels, which judges rank against the
    # largest singular value at 1e-15, sees 2 directions; on each column's own scale the
    # second is rounding noise, and the test is the one of the first column alone
    expected = [_statsmodels(design.y, design.Z, design.X[:, 3 * u:3 * u + (1 if u == 0 else 3)])
                for u in range(4)]
    np.testing.assert_array_equal(stored.df_num, [e[2] for e in expected])
    assert_tests_close(stored, [e[0] for e in expected], [e[1] for e in expected], tol=1e-8)
    # the streaming docstring's accuracy for multi-column units (Gram solves)
    assert_tests_close(streamed, stored.fvalue, tol=1e-6)


@pytest.mark.parametrize("step_scale", [1e-12, 1e-6, 1e6])
def test_streaming_and_stored_tests_do_not_depend_on_the_step_size(step_scale):
    """Steps of 1e-12 make features of 1e-24 and squared features of 1e-48."""
    traj = geometric_trajectory()
    scaled = InMemoryTrajectory(traj.shapes)
    before, after = traj.losses()
    for t in range(traj.n_steps):
        scaled.append(before[t], after[t], {"w": traj.deltas("w")[t] * step_scale})
    options = dict(features="momentum", lags=1)
    reference = granger_f_tests(granger_design(traj, **options))
    stored = granger_f_tests(granger_design(scaled, **options))
    stream = StreamingGrangerTests(scaled.shapes, **options)
    for t in range(scaled.n_steps):
        stream.append(before[t], after[t], {"w": scaled.deltas("w")[t]})
    streamed = stream.f_tests()
    for result in (stored, streamed):
        np.testing.assert_array_equal(result.df_num, reference.df_num)
        # the float32 steps times step_scale round differently: float32 accuracy
        assert_tests_close(result, reference.fvalue, tol=1e-5)


class _ArrayModule:
    """NumPy under another name: runs the code paths written for CuPy on the CPU."""

    def __getattr__(self, name):
        return getattr(np, name)


def test_blocked_float64_squares_of_the_cupy_path(monkeypatch):
    from granger_prune.lasso import _operator

    rng = np.random.default_rng(0)
    X = (rng.random((300, 70)) * 1e-21).astype(np.float32)  # float32 squares would underflow
    expected = np.einsum("ij,ij->j", X.astype(np.float64), X.astype(np.float64))
    monkeypatch.setattr(_operator, "CONVERTED_BLOCK", 150)  # 2 rows per converted block
    got = _operator.raw_column_sq_sums(X, _ArrayModule())
    np.testing.assert_allclose(got, expected, rtol=300 * np.finfo(np.float64).eps)
    assert np.all(got > 0)
