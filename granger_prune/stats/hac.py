"""Autocorrelation-robust (HAC) Wald tests, batched over features or groups, on NumPy or CuPy.

For every feature ``j`` (or group ``g`` of ``m`` columns) the unrestricted
regression ``y = Z b + X_g c + u`` is fitted by OLS and ``c = 0`` is tested
with the Newey–West covariance of the coefficients,

    V = (X'X)^{-1} S (X'X)^{-1} * T / (T - K),
    S = Σ_t x_t u_t u_t x_t' + Σ_{l=1}^{L} (1 - l / (L + 1)) (Γ_l + Γ_l'),
    Γ_l = Σ_{t>l} x_t u_t u_{t-l} x_{t-l}',

(``K = k + rank`` regressors; ``T / (T - K)`` is statsmodels'
``use_correction``), in the F form ``F = c' V_cc^{-1} c / rank`` on
``(rank, T - K)`` degrees of freedom: statsmodels'
``OLS(y, [Z, X_g]).fit(cov_type="HAC", cov_kwds={"maxlags": L,
"use_correction": True}).f_test(R)`` with ``R`` selecting ``c``.

By Frisch–Waugh–Lovell only the tested block is needed: with ``q_1 .. q_r``
an orthonormal basis of ``M_Z X_g`` (the Gram–Schmidt of the F-tests, with
its rank decisions), ``a = Q_g' e`` and ``u = e - Q_g a``, the statistic is
``a' S_q^{-1} a (T - K) / T / r`` with ``S_q`` the long-run covariance above
of the scores ``v_t = q_t u_t``; the Wald statistic does not depend on the
basis.  The scores are serially correlated when the steps and the loss
changes are, which is what makes the classical F-test's size wrong on SGD
trajectories; the HAC covariance estimates that correlation instead of
assuming it away.

Bandwidth (``maxlags``): an integer ``L`` for every test, ``"nw94"`` (the
default) for Newey and West's (1994) automatic Bartlett bandwidth chosen per
test from its own scores (pre-bandwidth ``n = floor(4 (T/100)^(2/9))``,
``L = floor(1.1447 (s1/s0)^(2/3) T^(1/3))`` with ``s0 = σ_0 + 2 Σ_{j<=n} σ_j``,
``s1 = 2 Σ_{j<=n} j σ_j`` the autocovariance sums of ``h_t = Σ_i v_ti``), at
most ``max(n, floor(sqrt(T)))`` (:func:`automatic_lag_cap`), or
``"rule_of_thumb"`` for ``L = n`` itself.  The lags chosen are reported per test.
The cap matters where ``s0`` nearly vanishes (scores with strong negative
autocorrelation), where the rule's ratio explodes (lags near ``T`` were seen
on 1 in 1e4 simulated columns); ``L^2 / T -> 0`` is the rate under which
Andrews (1991) shows the kernel estimator consistent.
"""

import math

import numpy as np

from ..backend import get_namespace, to_numpy
from ..lasso._operator import groups_by_block
from ._grouped import compiled_hac
from .ftests import (DEGENERACY, FIT_RTOL, SQUARES_FLOOR, _orthogonal_projections, check_rows,
                     columns_by_size, device_group_chunks, f_test_results, prepare_tests,
                     quadratic_forms)

#: A pivot of the score covariance ``S_q`` at most this fraction of its diagonal entry
#: drops its direction from the Wald statistic (``S_q`` is positive semi-definite).
HAC_PIVOT_RTOL = 1e-12
BANDWIDTHS = ("nw94", "rule_of_thumb")


def rule_of_thumb_lags(n_samples):
    """``floor(4 (T / 100)^(2/9))``, Newey and West's (1994) pre-bandwidth for Bartlett."""
    return int(math.floor(4.0 * (n_samples / 100.0) ** (2.0 / 9.0)))


def automatic_lag_cap(n_samples):
    """The largest lag ``"nw94"`` chooses: ``max(n, floor(sqrt(T)))``, below ``T - 1``."""
    return min(max(rule_of_thumb_lags(n_samples), math.isqrt(n_samples)), n_samples - 2)


def hac_f_tests(y, X, Z=None, groups=None, *, maxlags="nw94", use_correction=True):
    """HAC (Newey–West) Wald tests of ``c = 0`` in ``y ~ Z + X_g c`` for every feature or group.

    Parameters
    ----------
    y, X, Z, groups
        As for :func:`granger_prune.stats.nested_f_tests` (NumPy or CuPy; ``X``
        float32 or float64, never copied on the host).
    maxlags : int >= 0, "nw94" or "rule_of_thumb", default="nw94"
        The Bartlett truncation lag ``L`` of every test, or the rule choosing
        it (see the module docstring); the lags used are ``results.lags``.
    use_correction : bool, default=True
        Multiply the covariance by ``T / (T - K)`` (statsmodels' small-sample
        correction).

    Returns
    -------
    FTestResults
        ``inference="hac"``; ``fvalue`` is the Wald statistic over its
        degrees of freedom, ``pvalue`` its upper F tail on ``(df_num,
        df_denom)``, ``ssr_full`` the OLS residual sums of squares, ``lags``
        the truncation lag of each test.  Rank decisions and degenerate tests
        are those of :func:`~granger_prune.stats.nested_f_tests`.

    Raises
    ------
    ValueError
        As :func:`~granger_prune.stats.nested_f_tests`, and for a ``maxlags``
        that is not a non-negative integer below ``T - 1`` or a named rule.
    """
    # On the host the kernel sums the squares of the columns it reads, so X is read
    # once; when a sum is not finite (NaN or infinity in X) or its squares underflow,
    # the tests run again with the F-tests' pass over X, which checks and rescales it.
    in_kernel = get_namespace(y, X, Z) is np
    result = _hac_tests(y, X, Z, groups, maxlags, use_correction, in_kernel)
    if result is None:
        result = _hac_tests(y, X, Z, groups, maxlags, use_correction, False)
    return result


def _hac_tests(y, X, Z, groups, maxlags, use_correction, squares_in_kernel):
    """:func:`hac_f_tests`; None when the kernel's sums of squares are out of range."""
    prep = prepare_tests(y, X, Z, column_norms=not squares_in_kernel)
    xp, n_samples, k = prep.xp, prep.n_samples, prep.n_restricted
    maxlags, auto = _check_maxlags(maxlags, n_samples)
    cap = automatic_lag_cap(n_samples)
    sizes, by_size = columns_by_size(groups, prep.X.shape[1])
    check_rows(n_samples, k, int(sizes.max()) if sizes.size else 1)
    wald = np.zeros(sizes.size)
    explained = np.zeros(sizes.size)
    rank = np.zeros(sizes.size, dtype=np.int64)
    lags = np.zeros(sizes.size, dtype=np.int64)
    for m, members, columns in by_size:
        if xp is np:
            for block, part, local in groups_by_block(prep.X, columns):
                raw_sq = None if squares_in_kernel else prep.sq[columns[part]]
                *out, raw_sq = compiled_hac(block, local, prep.Q, prep.e, raw_sq, DEGENERACY,
                                            maxlags, auto, cap, HAC_PIVOT_RTOL)
                if squares_in_kernel and not _squares_in_range(raw_sq):
                    return None
                chosen = members[part]
                wald[chosen], explained[chosen], rank[chosen], lags[chosen] = out
            continue
        for chosen, block in device_group_chunks(prep.X, columns, xp):
            out = hac_wald_arrays(block, prep.Q, prep.e, prep.sq[xp.asarray(columns[chosen])],
                                  maxlags, auto, cap, xp)
            part = members[chosen]
            wald[part], explained[part], rank[part], lags[part] = out
    df_denom = n_samples - k - rank
    correction = df_denom / n_samples if use_correction else np.ones(sizes.size)
    statistic = wald * correction / np.maximum(rank, 1)
    return f_test_results(explained, rank, sizes, prep.ssr_restricted, n_samples, k,
                          prep.durbin_watson, ssr_exponent=2 * prep.y_exponent,
                          fit_rtol=FIT_RTOL, stacklevel=3, statistic=statistic,
                          inference="hac", lags=lags, ljung_box=prep.ljung_box)


def _squares_in_range(raw_sq):
    """Whether every column's sum of squares is finite and, unless zero, at least
    :data:`~granger_prune.stats.ftests.SQUARES_FLOOR` (the kernel marks a non-zero column
    whose squares underflow with -1)."""
    return bool(np.all(np.isfinite(raw_sq)) and np.all((raw_sq == 0) | (raw_sq >= SQUARES_FLOOR)))


def check_bandwidth(maxlags):
    """``maxlags`` if it is a rule of :data:`BANDWIDTHS` or a non-negative integer, else a
    ``ValueError`` naming it (the check that needs no ``T``)."""
    if isinstance(maxlags, str):
        ok = maxlags in BANDWIDTHS
    else:
        ok = isinstance(maxlags, (int, np.integer)) and not isinstance(maxlags, bool) and maxlags >= 0
    if not ok:
        raise ValueError(f"maxlags must be a non-negative integer or one of {BANDWIDTHS}, "
                         f"got {maxlags!r}")
    return maxlags


def _check_maxlags(maxlags, n_samples):
    """``(lag, automatic)``: the fixed lag, or the pre-bandwidth of the automatic rule."""
    if isinstance(check_bandwidth(maxlags), str):
        return min(rule_of_thumb_lags(n_samples), n_samples - 2), maxlags == "nw94"
    if not maxlags < n_samples - 1:
        raise ValueError(f"maxlags={maxlags} must lie in [0, T - 1) with T={n_samples}")
    return int(maxlags), False


def hac_wald_arrays(block, Q, e, raw_sq, maxlags, auto, cap, xp):
    """The array version of the HAC kernel (CuPy, and the host reference in the tests).

    Parameters
    ----------
    block : array of shape (m, T, G), float64
        The groups' columns (overwritten).
    Q, e, raw_sq
        As for :func:`granger_prune.stats.ftests._orthogonal_projections`.
    maxlags : int
        The lag, or the pre-bandwidth when ``auto`` (whose lags are at most ``cap``).

    Returns
    -------
    (wald, explained, rank, lags), host arrays of shape (G,).
    """
    m, n_samples, n_groups = block.shape
    _, rank = _orthogonal_projections(block, Q, e, raw_sq, xp)  # block is now orthonormal
    a = xp.einsum("itg,t->ig", block, e)
    explained = xp.sum(a * a, axis=0)
    u = e[:, None] - xp.einsum("itg,ig->tg", block, a)
    block *= u[None]  # the scores v_t = q_t u_t
    if auto:
        lags = _automatic_lags(xp.sum(block, axis=0), maxlags, cap, xp)
    else:
        lags = xp.full(n_groups, maxlags, dtype=xp.int64)
    S = xp.einsum("itg,jtg->gij", block, block)
    for lag in range(1, int(lags.max()) + 1 if n_groups else 1):
        weight = xp.maximum(1.0 - lag / (lags + 1.0), 0.0)  # (G,), 0 beyond a group's lag
        gamma = xp.einsum("itg,jtg->gij", block[:, lag:], block[:, :n_samples - lag])
        S += weight[:, None, None] * (gamma + xp.swapaxes(gamma, 1, 2))
    dropped = xp.sum(block * block, axis=1).T == 0  # (G, m): columns the Gram-Schmidt dropped
    S = xp.where(dropped[:, :, None] | dropped[:, None, :], 0.0, S)
    eye = xp.eye(m, dtype=bool)[None]
    S = xp.where(eye & dropped[:, :, None], 1.0, S)
    a = xp.where(dropped.T, 0.0, a)
    diagonal = xp.diagonal(S, axis1=1, axis2=2)
    wald, _ = quadratic_forms(S, a.T, diagonal, xp, rtol=HAC_PIVOT_RTOL)
    return to_numpy(wald), to_numpy(explained), to_numpy(rank), to_numpy(lags)


def _automatic_lags(h, pre_lags, cap, xp):
    """Newey–West (1994) lags per column of the score sums ``h`` (T, G); see the module."""
    n_samples = h.shape[0]
    s0 = xp.sum(h * h, axis=0)
    s1 = xp.zeros_like(s0)
    for j in range(1, pre_lags + 1):
        sigma = xp.sum(h[j:] * h[:n_samples - j], axis=0)
        s0 = s0 + 2.0 * sigma
        s1 = s1 + 2.0 * j * sigma
    positive = s0 > 0
    ratio = xp.abs(s1) / xp.where(positive, s0, 1.0)
    lags = xp.floor(1.1447 * ratio ** (2.0 / 3.0) * n_samples ** (1.0 / 3.0))
    return xp.minimum(xp.where(positive, lags, 0.0), cap).astype(xp.int64)
