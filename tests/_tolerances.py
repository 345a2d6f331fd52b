"""Assertions whose tolerances follow from what the arithmetic guarantees.

Three kinds of comparison recur in the suite:

* **F statistics** computed two ways (another summation order, a Gram solve
  against Gram–Schmidt, float32 against float64).  ``F`` is the square of an
  inner product that cancels when the feature explains nothing, so its
  rounding error is absolute near ``F = 0`` and relative for large ``F``:
  ``|F_a - F_d| <= tol * max(F_d, 1)``.
* **p-values** of such statistics: the p-value must lie in the band that the
  tolerated F error maps to, ``[sf(F_d + δ), sf(F_d - δ)]`` with
  ``δ = tol * max(F_d, 1)`` (plus a few ulps for the incomplete beta function).
  This compares p on the log scale in the tail and absolutely in the bulk,
  without a hand-picked cut-off.
* **Reductions** ``X^T v`` in another order or on another backend: the
  error of a sum of ``n`` products is at most ``γ_n Σ|x_t v_t|`` with
  ``γ_n ≈ n eps``, so the tolerance is ``eps`` times a condition factor, never
  a bare ``rtol`` on a sum that may cancel.

Each helper still fails on a wrong formula: a statistic off by a factor, a
wrong degree of freedom or a wrong column gives errors far above these bounds.
"""

import numpy as np
from scipy import special

#: Rows a float32 product accumulates in float32 before adding in float64
#: (``granger_prune.lasso._operator.ROW_BLOCK``).
FLOAT32_BLOCK = 128
#: Relative F tolerance (of max(F, 1)) between tests of one float32 design whose products
#: are summed in another order (per block of columns, or by another BLAS): the float32
#: reduction constant, ``FLOAT32_BLOCK + 1`` epsilons, times 4 as in :func:`reduction_atol`.
FLOAT32_PRODUCTS_TOL = 4 * (FLOAT32_BLOCK + 1) * float(np.finfo(np.float32).eps)


def _f_sf(f, df_num, df_denom):
    f = np.maximum(f, 0.0)
    return special.betainc(df_denom / 2.0, df_num / 2.0, df_denom / (df_denom + df_num * f))


def assert_f_close(actual, desired, *, tol):
    """``|F_a - F_d| <= tol * max(F_d, 1)``; NaN (no test) must match NaN."""
    actual, desired = np.atleast_1d(np.asarray(actual, float)), np.atleast_1d(np.asarray(desired, float))
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(desired), err_msg="NaN pattern of F")
    ok = ~np.isnan(desired)
    err = np.abs(actual[ok] - desired[ok]) / np.maximum(np.abs(desired[ok]), 1.0)
    worst = int(np.argmax(err)) if err.size else 0
    assert not err.size or err[worst] <= tol, (
        f"F differs by {err[worst]:.3g} * max(F, 1) > tol={tol:g}: "
        f"actual {actual[ok][worst]!r}, desired {desired[ok][worst]!r}")


def assert_p_close(actual, desired_f, df_num, df_denom, *, tol):
    """The p-values lie in the band that ``|ΔF| <= tol * max(F, 1)`` maps to.

    ``desired_f`` is the reference F statistic (NaN: no test, p must be 1).
    """
    actual = np.atleast_1d(np.asarray(actual, float))
    f = np.atleast_1d(np.asarray(desired_f, float))
    df_num = np.broadcast_to(np.asarray(df_num, float), f.shape)
    df_denom = np.broadcast_to(np.asarray(df_denom, float), f.shape)
    nan = np.isnan(f)
    np.testing.assert_array_equal(actual[nan], 1.0, err_msg="p of a degenerate test")
    f, actual, df_num, df_denom = f[~nan], actual[~nan], df_num[~nan], df_denom[~nan]
    delta = tol * np.maximum(f, 1.0)
    slack = 64 * np.finfo(float).eps  # the incomplete beta function's own rounding
    high = _f_sf(f - delta, df_num, df_denom) * (1 + slack)
    low = _f_sf(f + delta, df_num, df_denom) * (1 - slack)
    bad = (actual > high) | (actual < low)
    assert not bad.any(), (
        f"{int(bad.sum())} p-values outside the band of |ΔF| <= {tol:g} max(F, 1): "
        f"p={actual[bad][:3]}, band=[{low[bad][:3]}, {high[bad][:3]}], F={f[bad][:3]}")


def assert_tests_close(result, fvalue, pvalue=None, *, tol):
    """F statistics and p-values of a results object against reference values.

    ``pvalue`` (the reference p) is only used where ``fvalue`` is NaN;
    elsewhere the p-values are checked against the band of the reference F.
    """
    fvalue = np.atleast_1d(np.asarray(fvalue, float))
    assert_f_close(result.fvalue, fvalue, tol=tol)
    assert_p_close(result.pvalue, fvalue, result.df_num, result.df_denom, tol=tol)
    if pvalue is not None:
        ok = ~np.isnan(fvalue)
        # the reference's own p lies in the same band (the df agree)
        assert_p_close(np.atleast_1d(pvalue)[ok], fvalue[ok], np.broadcast_to(result.df_num, fvalue.shape)[ok],
                       np.broadcast_to(result.df_denom, fvalue.shape)[ok], tol=tol)


def reduction_atol(X, v, dtype, *, factor=4.0):
    """Bound on the rounding of ``X^T v`` per column, computed in ``dtype``.

    ``factor * γ * Σ_t |X_tj v_t|`` with ``γ`` the error constant of the sum:
    ``FLOAT32_BLOCK * eps32 + T * eps64`` for a float32 design (blocks of
    float32 products added in float64, ``v`` rounded to float32), ``T *
    eps64`` for float64.  Shape ``(n_features,)``.
    """
    X = np.asarray(X, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    n = X.shape[0]
    gamma = n * np.finfo(np.float64).eps
    if np.dtype(dtype) == np.float32:
        gamma += (FLOAT32_BLOCK + 1) * np.finfo(np.float32).eps
    return factor * gamma * (np.abs(X).T @ np.abs(v))


def residual_rtol(y, Z):
    """Relative rounding of least-squares residual quantities (SSR, Durbin–Watson).

    Two backward-stable least-squares solves differ in their residual by about
    ``eps * cond(Z) * ||y|| / ||e||`` relative to ``||e||``; the factor 1e3
    covers the constants of both solvers and the sums of ``T`` squares.
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if Z.shape[1] == 0:
        return 1e3 * np.finfo(float).eps
    e = y - Z @ np.linalg.lstsq(Z, y, rcond=None)[0]
    return 1e3 * np.finfo(float).eps * np.linalg.cond(Z) * np.linalg.norm(y) / np.linalg.norm(e)


def assert_same_enet_solution(X, y, a, b, alpha, *, l1_ratio=1.0, fit_intercept=True):
    """Two solutions of one elastic net agree as far as their duality gaps allow.

    With ``P`` the objective and ``G`` the reported gaps, both ``P(w) - P* <= G``:
    the objectives differ by at most ``G_a + G_b``, and, since ``P - P* >=
    ||X(w - w*)||^2 / (2n) + (l2 / 2) ||w - w*||^2``, the fitted values by at
    most ``sqrt(2n G_a) + sqrt(2n G_b)`` and, when ``l2 > 0``, the coefficients
    by ``sqrt(2 G_a / l2) + sqrt(2 G_b / l2)`` (each with a margin of 1e-12
    of the objective's scale for the rounding of the gaps themselves).
    """
    from granger_prune.lasso import primal_objective

    n = X.shape[0]
    yc = y - y.mean() if fit_intercept else y
    slack = 1e-12 * float(yc @ yc) / n
    ga, gb = a.dual_gap + slack, b.dual_gap + slack
    pa = primal_objective(X, y, a.w, alpha, a.intercept, l1_ratio=l1_ratio)
    pb = primal_objective(X, y, b.w, alpha, b.intercept, l1_ratio=l1_ratio)
    assert abs(pa - pb) <= ga + gb, (pa, pb, ga, gb)
    fit_a = np.asarray(X, dtype=np.float64) @ a.w + a.intercept
    fit_b = np.asarray(X, dtype=np.float64) @ b.w + b.intercept
    assert np.linalg.norm(fit_a - fit_b) <= np.sqrt(2 * n * ga) + np.sqrt(2 * n * gb)
    l2 = alpha * (1.0 - l1_ratio)
    if l2 > 0:
        bound = np.sqrt(2 * ga / l2) + np.sqrt(2 * gb / l2)
        assert np.linalg.norm(np.asarray(a.w) - np.asarray(b.w)) <= bound
