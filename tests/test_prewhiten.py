"""Prewhitened F-tests and the residual diagnostics: statsmodels as the reference."""

import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.tsa.ar_model import AutoReg, ar_select_order

from granger_prune.stats import nested_f_tests, prewhitened_f_tests
from granger_prune.stats.diagnostics import durbin_watson, ljung_box
from granger_prune.stats.prewhiten import ar_filter, schwert_max_order, select_ar_order

from _tolerances import assert_tests_close


def ar_series(rng, T, coefficients, shape=()):
    out = np.zeros((T,) + shape)
    for t in range(T):
        out[t] = rng.standard_normal(shape)
        for i, c in enumerate(coefficients, start=1):
            if t >= i:
                out[t] += c * out[t - i]
    return out


@pytest.mark.parametrize("criterion", ["bic", "aic"])
def test_ar_order_and_coefficients_match_statsmodels(criterion):
    rng = np.random.default_rng(0)
    for coefficients in ([0.5, -0.3], [0.8], []):
        e = ar_series(rng, 300, coefficients)
        order, rho, table = select_ar_order(e, 8, criterion)
        reference = ar_select_order(e, 8, ic=criterion, trend="n")
        assert order == len(reference.ar_lags or [])
        assert table.shape == (9,) and np.argmin(table) == order
        if order:
            fit = AutoReg(e, lags=order, trend="n", hold_back=8).fit()
            np.testing.assert_allclose(rho, fit.params, rtol=1e-10)
    assert schwert_max_order(500) == 17 and schwert_max_order(30) == 3


def test_the_filter_and_the_tests_on_filtered_data_match_statsmodels():
    rng = np.random.default_rng(1)
    T = 250
    X = ar_series(rng, T, [0.7], (6,))
    Z = np.column_stack([np.ones(T), rng.standard_normal(T)])
    y = 0.4 * X[:, 0] + Z @ np.array([1.0, 0.3]) + ar_series(rng, T, [0.6])
    result = prewhitened_f_tests(y, X, Z, max_order=6)
    e = sm.OLS(y, Z).fit().resid
    order, rho, _ = select_ar_order(e, 6)
    assert result.ar_order == order == 1 and result.inference == "prewhiten"
    assert result.n_samples == T - order
    filtered = [np.asarray(a)[order:] - rho[0] * np.asarray(a)[:-order] for a in (y, X, Z)]
    np.testing.assert_allclose(ar_filter(X, rho), filtered[1], rtol=0, atol=1e-15 * np.abs(X).max())
    expected = []
    for j in range(X.shape[1]):
        restricted = sm.OLS(filtered[0], filtered[2]).fit()
        full = sm.OLS(filtered[0], np.column_stack([filtered[2], filtered[1][:, j]])).fit()
        expected.append(full.compare_f_test(restricted)[0])
    assert_tests_close(result, expected, tol=1e-8)
    assert result.ljung_box_pvalue > 0.01  # the whitened residuals are white
    assert "AR(1)" in result.summary()


def test_order_zero_is_the_plain_f_test():
    rng = np.random.default_rng(2)
    T = 120
    X = rng.standard_normal((T, 5))
    y = rng.standard_normal(T)
    Z = np.ones((T, 1))
    white = prewhitened_f_tests(y, X, Z, max_order=0)
    plain = nested_f_tests(y, X, Z)
    assert white.ar_order == 0
    np.testing.assert_array_equal(white.fvalue, plain.fvalue)


def test_prewhitened_tests_hold_their_size_on_autocorrelated_nulls():
    """AR(1) nulls and errors (φ = 0.8), where the classical test rejects about a third."""
    rng = np.random.default_rng(0)
    T = 500
    X = ar_series(rng, T, [0.8], (2000,))
    u = ar_series(rng, T, [0.8])
    result = prewhitened_f_tests(u, X, np.ones((T, 1)))
    assert result.ar_order == 1
    assert 0.03 < np.mean(result.pvalue < 0.05) < 0.07


def test_diagnostics_match_statsmodels():
    rng = np.random.default_rng(3)
    e = ar_series(rng, 300, [0.4])
    q, p = ljung_box(e, 10)
    reference = acorr_ljungbox(e, lags=[10])
    np.testing.assert_allclose([q, p], [reference["lb_stat"].iloc[0], reference["lb_pvalue"].iloc[0]],
                               rtol=1e-10)
    np.testing.assert_allclose(durbin_watson(e), sm.stats.durbin_watson(e), rtol=1e-12)
    result = nested_f_tests(e, rng.standard_normal((300, 3)), np.ones((300, 1)))
    reference = acorr_ljungbox(e - e.mean(), lags=[10])
    np.testing.assert_allclose(result.ljung_box, reference["lb_stat"].iloc[0], rtol=1e-8)
    assert result.ljung_box_pvalue < 1e-6  # AR(1) residuals are flagged
    with pytest.raises(ValueError, match="lags"):
        ljung_box(e, 300)
