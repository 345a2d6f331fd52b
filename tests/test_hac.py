"""HAC (Newey–West) Wald tests: statsmodels' HAC f_test as the reference."""

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_array_equal

from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.stats import ftests, hac_f_tests, nested_f_tests
from granger_prune.stats._grouped import compiled_hac
from granger_prune.stats.hac import (HAC_PIVOT_RTOL, automatic_lag_cap, hac_wald_arrays,
                                     rule_of_thumb_lags)

from _tolerances import assert_tests_close

#: F error allowed against statsmodels in float64, scaled by max(F, 1) (the issue's bar).
F_TOL = 1e-8


def ar1(rng, shape, phi):
    """An AR(1) process along axis 0 with unit innovations."""
    out = np.zeros(shape)
    state = np.zeros(shape[1:])
    for t in range(shape[0]):
        state = phi * state + rng.standard_normal(shape[1:])
        out[t] = state
    return out


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    T = 200
    Z = np.column_stack([np.ones(T), rng.standard_normal(T)])
    X = ar1(rng, (T, 12), 0.7)
    y = 0.3 * X[:, 0] + Z @ np.array([1.0, 0.5]) + ar1(rng, (T,), 0.6)
    return y, X, Z


def statsmodels_hac(y, Z, X_g, maxlags):
    fit = sm.OLS(y, np.column_stack([Z, X_g])).fit(
        cov_type="HAC", cov_kwds={"maxlags": maxlags, "use_correction": True})
    k, m = Z.shape[1], X_g.shape[1] if X_g.ndim == 2 else 1
    test = fit.f_test(np.eye(k + m)[k:])
    return float(test.fvalue), float(test.pvalue), int(test.df_denom)


@pytest.mark.parametrize("maxlags", [0, 3, 7])
def test_single_feature_hac_tests_match_statsmodels(problem, maxlags):
    y, X, Z = problem
    result = hac_f_tests(y, X, Z, maxlags=maxlags)
    expected = [statsmodels_hac(y, Z, X[:, j], maxlags) for j in range(X.shape[1])]
    assert_tests_close(result, [e[0] for e in expected], [e[1] for e in expected], tol=F_TOL)
    assert_array_equal(result.df_denom, [e[2] for e in expected])
    assert_array_equal(result.lags, maxlags)
    assert result.inference == "hac" and "lags" in result.to_frame().columns
    assert "HAC" in result.summary()


def test_group_hac_tests_match_statsmodels(problem):
    y, X, Z = problem
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])  # unequal sizes, in order
    result = hac_f_tests(y, X, Z, groups=groups, maxlags=4)
    expected = [statsmodels_hac(y, Z, X[:, groups == g], 4) for g in range(5)]
    assert_tests_close(result, [e[0] for e in expected], [e[1] for e in expected], tol=F_TOL)
    assert_array_equal(result.df_num, [3, 2, 4, 1, 2])
    assert_array_equal(result.df_denom, [e[2] for e in expected])


def test_without_correction_the_statistic_is_the_uncorrected_wald(problem):
    y, X, Z = problem
    corrected = hac_f_tests(y, X, Z, maxlags=2)
    plain = hac_f_tests(y, X, Z, maxlags=2, use_correction=False)
    T, K = len(y), Z.shape[1] + 1
    np.testing.assert_allclose(corrected.fvalue, plain.fvalue * (T - K) / T, rtol=1e-14)


def test_automatic_lags_follow_newey_west_1994(problem):
    y, X, Z = problem
    T = len(y)
    result = hac_f_tests(y, X, Z)  # maxlags="nw94"
    n = rule_of_thumb_lags(T)
    assert n == 4 and automatic_lag_cap(T) == 14  # floor(4 * 2 ** (2/9)), floor(sqrt(200))
    for j in range(X.shape[1]):
        # the reference from statsmodels' residuals: h_t = x~_t u_t, x~ = M_Z x
        x_tilde = sm.OLS(X[:, j], Z).fit().resid
        u = sm.OLS(y, np.column_stack([Z, X[:, j]])).fit().resid
        h = x_tilde * u
        sigma = np.array([h[lag:] @ h[:T - lag] for lag in range(n + 1)])
        s0 = sigma[0] + 2 * sigma[1:].sum()
        s1 = 2 * np.arange(1, n + 1) @ sigma[1:]
        lags = min(int(np.floor(1.1447 * (abs(s1) / s0) ** (2 / 3) * T ** (1 / 3))), 14)
        assert result.lags[j] == lags
        f, p, _ = statsmodels_hac(y, Z, X[:, j], lags)
        assert_tests_close(ftests_one(result, j), [f], [p], tol=F_TOL)
    assert len(set(result.lags)) > 1  # chosen per test
    assert_array_equal(hac_f_tests(y, X, Z, maxlags="rule_of_thumb").lags, n)


def ftests_one(result, j):
    from dataclasses import replace
    return replace(result, fvalue=result.fvalue[[j]], pvalue=result.pvalue[[j]],
                   df_num=result.df_num[[j]], df_denom=result.df_denom[[j]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("auto", [False, True])
def test_compiled_kernel_matches_the_array_path(problem, dtype, auto):
    y, X, Z = problem
    X = X.copy()
    X[:, 2] = X[:, 0] - 2.0 * X[:, 1]  # group 0 of rank 2
    X[:, 5] = 0.0  # group 1: one zero column
    prep = ftests.prepare_tests(y, X.astype(dtype), Z)
    cols = np.arange(12).reshape(4, 3)
    args = (prep.Q, prep.e, prep.sq[cols])
    cap = automatic_lag_cap(len(y))
    compiled = compiled_hac(prep.X, cols, *args, ftests.DEGENERACY, 4, auto, cap, HAC_PIVOT_RTOL)
    arrays = hac_wald_arrays(ftests._feature_major(prep.X, cols, np), *args, 4, auto, cap, np)
    assert_array_equal(compiled[2], [2, 2, 3, 3])  # the ranks
    assert_array_equal(compiled[2], arrays[2])
    assert_array_equal(compiled[3], arrays[3])  # the lags
    for got, want in zip(compiled[:2], arrays[:2]):  # float64 arithmetic, other summation orders
        np.testing.assert_allclose(got, want, rtol=1e-10)


def test_a_dependent_column_is_dropped_as_statsmodels_drops_it(problem):
    y, X, Z = problem
    X = X[:, :3].copy()
    X[:, 2] = X[:, 0] + X[:, 1]
    result = hac_f_tests(y, X, Z, groups=np.zeros(3, dtype=int), maxlags=3)
    reference = statsmodels_hac(y, Z, X[:, :2], 3)
    assert result.df_num[0] == 2 and result.n_columns[0] == 3
    assert_tests_close(result, [reference[0]], tol=F_TOL)


def test_degenerate_features_warn_and_give_nan(problem):
    y, X, Z = problem
    X = X.copy()
    X[:, 4] = 0.0
    X[:, 9] = 3.0  # in the span of the intercept
    with pytest.warns(GrangerPruneWarning, match="2 of 12 tests are degenerate"):
        result = hac_f_tests(y, X, Z, maxlags=2)
    assert np.isnan(result.fvalue[[4, 9]]).all() and np.all(result.pvalue[[4, 9]] == 1.0)
    assert np.isfinite(np.delete(result.fvalue, [4, 9])).all()


def test_bad_maxlags(problem):
    y, X, Z = problem
    for bad in (-1, 199, 2.5, True, "andrews"):
        with pytest.raises(ValueError, match="maxlags"):
            hac_f_tests(y, X, Z, maxlags=bad)


def test_hac_tests_hold_their_size_better_than_ols_on_autocorrelated_nulls():
    """Null features and errors both AR(1) with φ = 0.8: the classical F-test's variance
    of x~'u is off by about (1 + φ²) / (1 - φ²) = 4.6, so it rejects about a third of
    true nulls at 5 %; the HAC test estimates that factor (at T = 500 it still over-
    rejects somewhat, as Newey–West tests are known to under strong persistence)."""
    rng = np.random.default_rng(0)
    T = 500
    X = ar1(rng, (T, 2000), 0.8)
    u = ar1(rng, (T,), 0.8)
    Z = np.ones((T, 1))
    ols = np.mean(nested_f_tests(u, X, Z).pvalue < 0.05)
    hac = np.mean(hac_f_tests(u, X, Z).pvalue < 0.05)
    assert ols > 0.25 and hac < 0.13 and hac < ols / 2.5, (ols, hac)


def test_hac_tests_on_numpy_and_cupy_agree(xp, problem):
    y, X, Z = problem
    groups = np.arange(12) // 3
    for g in (None, groups):
        host = hac_f_tests(y, X, Z, groups=g)
        device = hac_f_tests(xp.asarray(y), xp.asarray(X), xp.asarray(Z),
                             groups=None if g is None else xp.asarray(g))
        assert isinstance(device.pvalue, np.ndarray)
        assert_array_equal(device.lags, host.lags)
        assert_tests_close(device, host.fvalue, tol=1e-10)


def test_the_squares_summed_in_the_kernel_fall_back_to_the_checked_pass(problem):
    y, X, Z = problem
    reference = hac_f_tests(y, X, Z, maxlags=3)
    for scale in (1e200, 1e-200):  # squares overflow or underflow in float64: rescaled
        scaled = hac_f_tests(y, X * scale, Z, maxlags=3)
        np.testing.assert_allclose(scaled.fvalue, reference.fvalue, rtol=1e-10)
    bad = X.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hac_f_tests(y, bad, Z)
