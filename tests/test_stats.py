"""Tests of granger_prune.stats: statsmodels as the reference for F-tests and corrections."""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose, assert_array_equal
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.stattools import durbin_watson
from statsmodels.tools.sm_exceptions import SingularMatrixWarning
from statsmodels.tsa.stattools import grangercausalitytests

from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.stats import METHODS, adjust_pvalues, nested_f_tests

from _tolerances import assert_f_close, assert_p_close, assert_tests_close, residual_rtol

#: F error allowed against statsmodels in float64, scaled by max(F, 1).
F_TOL = 1e-8
#: ... and for a float32 design against its float64 copy: the float32 products
#: carry about 1e-7 relative error, amplified by how much of a column Z explains.
F_TOL_FLOAT32 = 1e-5


@pytest.fixture
def problem():
    rng = np.random.default_rng(0)
    T = 90
    X = rng.random((T, 24)) ** 2
    Z = np.column_stack([np.ones(T), rng.standard_normal(T)])
    y = X[:, :3] @ np.array([1.0, 2.0, 3.0]) + Z @ np.array([0.5, 1.0]) + rng.standard_normal(T)
    return y, X, Z


def _statsmodels_f(y, Z, X_g):
    restricted = sm.OLS(y, Z).fit()
    full = sm.OLS(y, np.column_stack([Z, X_g])).fit()
    f, p, df = full.compare_f_test(restricted)
    return f, p, full.ssr, restricted


def test_single_feature_tests_match_compare_f_test(problem):
    y, X, Z = problem
    result = nested_f_tests(y, X, Z)
    for j in range(X.shape[1]):
        f, p, ssr, restricted = _statsmodels_f(y, Z, X[:, j])
        assert_f_close(result.fvalue[j], f, tol=F_TOL)
        assert_p_close(result.pvalue[j], f, 1, result.df_denom[j], tol=F_TOL)
        assert_allclose(result.ssr_full[j], ssr, rtol=residual_rtol(y, np.column_stack([Z, X[:, j]])))
    assert_allclose(result.ssr_restricted, restricted.ssr, rtol=residual_rtol(y, Z))
    assert_allclose(result.durbin_watson, durbin_watson(restricted.resid), rtol=residual_rtol(y, Z))
    assert np.all(result.df_num == 1) and np.all(result.df_denom == X.shape[0] - 3)
    assert set(result.to_frame().columns) == {"fvalue", "pvalue", "df_num", "df_denom",
                                              "n_columns", "ssr_full"}
    assert "Durbin-Watson" in result.summary()


def test_group_tests_match_compare_f_test(problem):
    y, X, Z = problem
    groups = np.repeat(np.arange(8), 3)[np.random.default_rng(1).permutation(24)]
    result = nested_f_tests(y, X, Z, groups=groups)
    assert result.n_tests == 8
    for g in range(8):
        f, p, ssr, _ = _statsmodels_f(y, Z, X[:, groups == g])
        assert_f_close(result.fvalue[g], f, tol=F_TOL)
        assert_p_close(result.pvalue[g], f, 3, result.df_denom[g], tol=F_TOL)
    assert np.all(result.df_num == 3)


def test_unequal_groups_and_no_restricted_regressors(problem):
    y, X, _ = problem
    groups = np.array([0] * 5 + [1] * 2 + list(range(2, 19)))
    result = nested_f_tests(y, X, None, groups=groups)
    for g in (0, 1, 5):
        full = sm.OLS(y, X[:, groups == g]).fit()
        m = int((groups == g).sum())
        f = ((y @ y - full.ssr) / m) / (full.ssr / (len(y) - m))
        assert_f_close(result.fvalue[g], f, tol=F_TOL)
        assert result.df_num[g] == m and result.df_denom[g] == len(y) - m


def test_matches_grangercausalitytests_ssr_ftest():
    rng = np.random.default_rng(3)
    T = 200
    x = rng.standard_normal(T)
    y = np.zeros(T)
    for t in range(1, T):
        y[t] = 0.4 * y[t - 1] + 0.3 * x[t - 1] + rng.standard_normal()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' verbose deprecation
        ref = grangercausalitytests(np.column_stack([y, x]), maxlag=1)
    f_ref, p_ref, df_denom_ref, df_num_ref = ref[1][0]["ssr_ftest"]
    # restricted: intercept + y_{t-1}; tested: x_{t-1}
    Z = np.column_stack([np.ones(T - 1), y[:-1]])
    result = nested_f_tests(y[1:], x[:-1, None], Z)
    assert_tests_close(result, [f_ref], [p_ref], tol=F_TOL)
    assert result.df_denom[0] == df_denom_ref and result.df_num[0] == df_num_ref


def test_float32_design_agrees_with_float64(problem):
    y, X, Z = problem
    X32 = X.astype(np.float32)
    r32 = nested_f_tests(y, X32, Z)
    r64 = nested_f_tests(y, X32.astype(np.float64), Z)
    assert_tests_close(r32, r64.fvalue, tol=F_TOL_FLOAT32)


def test_null_pvalues_are_uniform():
    rng = np.random.default_rng(5)
    T, d = 120, 20_000
    X = rng.random((T, d))
    y = rng.standard_normal(T)
    result = nested_f_tests(y, X, np.ones((T, 1)))
    counts, _ = np.histogram(result.pvalue, bins=10, range=(0, 1))
    assert np.all(np.abs(counts / d - 0.1) < 0.01)


def test_degenerate_features_warn_once_and_give_nan(problem):
    y, X, Z = problem
    X = X.copy()
    X[:, 4] = 0.0
    X[:, 9] = 3.0  # constant: in the span of the intercept
    with pytest.warns(GrangerPruneWarning, match="2 of 24 tests are degenerate") as record:
        result = nested_f_tests(y, X, Z)
    assert len(record) == 1
    assert np.isnan(result.fvalue[[4, 9]]).all() and np.all(result.pvalue[[4, 9]] == 1.0)
    assert np.isfinite(np.delete(result.fvalue, [4, 9])).all()
    # a group keeps its test on the columns that are not degenerate
    groups = np.repeat(np.arange(8), 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrangerPruneWarning)
        grouped = nested_f_tests(y, X, Z, groups=groups)
    assert_array_equal(grouped.df_num, [3, 2, 3, 2, 3, 3, 3, 3])
    assert_array_equal(grouped.n_columns, 3)
    for g in (1, 3):
        with warnings.catch_warnings():  # the reference on a rank-deficient design, on purpose
            warnings.simplefilter("ignore", SingularMatrixWarning)
            f, p, df = sm.OLS(y, np.column_stack([Z, X[:, groups == g]])).fit().compare_f_test(
                sm.OLS(y, Z).fit())
        assert df == 2
        assert_tests_close(_one(grouped, g), [f], [p], tol=F_TOL)
    # only a group of rank 0 is degenerate
    X[:, 10] = 0.0
    X[:, 11] = -1.5
    with pytest.warns(GrangerPruneWarning, match="1 of 8"):
        grouped = nested_f_tests(y, X, Z, groups=groups)
    assert np.isnan(grouped.fvalue[3]) and grouped.pvalue[3] == 1.0 and grouped.df_num[3] == 0


def _one(result, i):
    """The ``i``-th test of a results object, as a results object."""
    from dataclasses import replace
    return replace(result, fvalue=result.fvalue[[i]], pvalue=result.pvalue[[i]],
                   df_num=result.df_num[[i]], df_denom=result.df_denom[[i]],
                   ssr_full=result.ssr_full[[i]], n_columns=result.n_columns[[i]])


def test_bad_input(problem):
    y, X, Z = problem
    with pytest.raises(ValueError, match=r"T=4 steps are too few for 5 regressors"):
        nested_f_tests(y[:4], X[:4], np.eye(4))
    with pytest.raises(ValueError, match=r"T=90 steps are too few for 98 regressors"):
        nested_f_tests(y, np.tile(X, 4), Z, groups=np.zeros(96, dtype=int))
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        nested_f_tests(y, bad, Z)
    y_bad = y.copy()
    y_bad[0] = np.inf
    with pytest.raises(ValueError, match="y contains NaN"):
        nested_f_tests(y_bad, X, Z)
    with pytest.raises(ValueError, match="shape"):
        nested_f_tests(y[:-1], X, Z)
    with pytest.raises(ValueError, match="rank deficient"):
        nested_f_tests(y, X, np.column_stack([Z, Z[:, 0]]))
    with pytest.raises(ValueError, match="groups"):
        nested_f_tests(y, X, Z, groups=np.arange(23))


@pytest.mark.parametrize("method", METHODS)
def test_adjust_pvalues_matches_multipletests(method):
    rng = np.random.default_rng(7)
    p = np.concatenate([rng.uniform(size=2000), rng.uniform(size=100) * 1e-4, [0.02] * 5])
    reject, adjusted = adjust_pvalues(p, 0.05, method)
    ref_reject, ref_adjusted, _, _ = multipletests(p, 0.05, method)
    assert_array_equal(reject, ref_reject)
    assert_allclose(adjusted, ref_adjusted, rtol=1e-12, atol=0)
    assert reject.sum() > 0


@pytest.mark.parametrize("method", METHODS)
def test_adjust_pvalues_decides_at_the_threshold_as_statsmodels_does(method):
    """p-values exactly at a threshold: ``p * m`` rounds above alpha for 0.05 / 11."""
    m = 11
    cases = [np.full(m, 0.05 / m),                          # Bonferroni's and Holm's first threshold
             np.arange(1, m + 1) * 0.05 / m,                # every BH threshold
             np.r_[np.full(m - 1, 1e-6), 0.05],             # Holm's last threshold
             np.linspace(0.001, 0.3, m)]
    for p in cases:
        reject, _ = adjust_pvalues(p, 0.05, method)
        ref_reject = multipletests(p, 0.05, method)[0]
        assert_array_equal(reject, ref_reject)
    assert adjust_pvalues(cases[0], 0.05, "bonferroni")[0].all()  # the case of issue 12


def test_adjust_pvalues_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        adjust_pvalues([0.1, np.nan])
    with pytest.raises(ValueError, match="method"):
        adjust_pvalues([0.1], method="sidak")
    with pytest.raises(ValueError, match="alpha"):
        adjust_pvalues([0.1], alpha=1.5)
    reject, adjusted = adjust_pvalues([])
    assert reject.size == 0 and adjusted.size == 0


def test_float32_tests_on_numpy_and_cupy_equal_float64(xp, problem):
    y, X, Z = problem
    groups = np.arange(X.shape[1]) // 3
    for g in (None, groups):
        host = nested_f_tests(y, X, Z, groups=g)
        device = nested_f_tests(xp.asarray(y), xp.asarray(X.astype(np.float32)), xp.asarray(Z),
                                groups=None if g is None else xp.asarray(g))
        assert isinstance(device.pvalue, np.ndarray)  # results come back to the host
        assert_tests_close(device, host.fvalue, tol=F_TOL_FLOAT32)
