"""Batched nested F-tests in closed form, on NumPy or CuPy.

For every feature ``j`` (or group ``g`` of ``m`` columns) the test compares

    restricted:    y = Z b + e                 (k regressors)
    unrestricted:  y = Z b + X_g c + e         (k + m regressors)

with ``F = ((SSR_r - SSR_f) / m) / (SSR_f / (T - k - m))`` on ``(m, T - k - m)``
degrees of freedom.  With ``Q`` an orthonormal basis of ``Z`` and ``e = y - Q Q^T y``
the restricted residual, the partialled-out columns are ``X~ = X - Q Q^T X``
and ``SSR_r - SSR_f = e^T X~_g (X~_g^T X~_g)^{-1} X~_g^T e``; since ``Q^T e = 0``,
``X~^T e = X^T e``.  For single features this is
``(x_j^T e)^2 / (||x_j||^2 - ||Q^T x_j||^2)``: the products ``[Q e]^T X`` take one
pass over ``X`` and the column norms another, so a million tests cost two passes
and one vectorised F tail, never a regression per feature.

A feature whose partialled-out column is (numerically) zero — constant with
an intercept, or all zero — has no test: F = NaN and p = 1, counted in one
warning.
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from ..backend import get_namespace, to_numpy
from ..exceptions import GrangerPruneWarning
from ..lasso._operator import raw_column_sq_sums, transpose_product
from ..lasso._validation import as_design, column_sums

#: A partialled-out column whose squared norm is below this fraction of its raw
#: squared norm is numerically in the span of ``Z``: no test.
DEGENERACY = 1e-10
#: ``y`` is in the span of ``Z`` (nothing to test) when ``SSR_r`` is below this
#: fraction of ``||y||^2``.
SPAN_TOLERANCE = 1e-24
#: Columns of grouped tests orthonormalised at a time (small enough to stay in cache).
GROUP_CHUNK = 1024


@dataclass(frozen=True)
class FTestResults:
    """Results of :func:`nested_f_tests`, one entry per feature (or group).

    Attributes
    ----------
    fvalue, pvalue : ndarray of shape (n_tests,)
        F statistics (NaN for degenerate tests) and upper-tail p-values (1 for
        degenerate tests).
    df_num : ndarray of shape (n_tests,), int
        Numerator degrees of freedom ``m`` (the group sizes).
    df_denom : ndarray of shape (n_tests,), int
        ``T - k - m``.
    ssr_restricted : float
        Residual sum of squares of ``y ~ Z`` (shared by all tests).
    ssr_full : ndarray of shape (n_tests,)
        Residual sum of squares of each unrestricted model.
    durbin_watson : float
        Durbin–Watson statistic of the restricted residuals (about 2 when
        they are serially uncorrelated; F p-values assume they are).
    n_samples, n_restricted : int
        ``T`` and ``k``.
    """

    fvalue: np.ndarray
    pvalue: np.ndarray
    df_num: np.ndarray
    df_denom: np.ndarray
    ssr_restricted: float
    ssr_full: np.ndarray
    durbin_watson: float
    n_samples: int
    n_restricted: int

    @property
    def n_tests(self):
        return self.fvalue.shape[0]

    def to_frame(self):
        """One row per test: fvalue, pvalue, df_num, df_denom, ssr_full."""
        return pd.DataFrame(dict(fvalue=self.fvalue, pvalue=self.pvalue, df_num=self.df_num,
                                 df_denom=self.df_denom, ssr_full=self.ssr_full))

    def summary(self):
        """A short text summary (counts at the usual levels, Durbin–Watson)."""
        valid = np.isfinite(self.fvalue)
        lines = [
            f"Nested F-tests: {self.n_tests} tests, T={self.n_samples}, "
            f"{self.n_restricted} restricted regressors",
            f"restricted SSR = {self.ssr_restricted:.6g}, Durbin-Watson = {self.durbin_watson:.3f}",
            f"degenerate (no test): {int((~valid).sum())}",
        ]
        for level in (0.05, 0.01, 0.001):
            lines.append(f"p <= {level:g} (uncorrected): {int((self.pvalue <= level).sum())}")
        return "\n".join(lines)


def f_sf(fvalue, df_num, df_denom):
    """Upper tail ``P(F > f)`` of the F distribution, on NumPy or CuPy by the input.

    ``I_x(df_denom / 2, df_num / 2)`` at ``x = df_denom / (df_denom + df_num f)``
    (the regularised incomplete beta function: SciPy's, or CuPy's on the device).
    """
    xp = get_namespace(fvalue, df_num, df_denom)
    if xp is np:
        betainc = special.betainc
    else:
        from cupyx.scipy.special import betainc
    f = xp.asarray(fvalue, dtype=xp.float64)
    x = df_denom / (df_denom + df_num * f)
    return betainc(df_denom / 2.0, df_num / 2.0, x)


def nested_f_tests(y, X, Z=None, groups=None):
    """F-test of ``y ~ Z`` against ``y ~ Z + X_g`` for every feature or group.

    Parameters
    ----------
    y : ndarray of shape (T,)
        Response (the loss changes).
    X : ndarray of shape (T, d)
        Candidate features (float32 or float64; NumPy or CuPy, not copied).
    Z : ndarray of shape (T, k), optional
        Restricted design; include a column of ones for an intercept.  None
        means no regressors (k = 0).
    groups : ndarray of shape (d,), int, optional
        Group ``0 ... G-1`` of each column; one test per group, on
        ``m_g`` numerator degrees of freedom.  None: one test per column.

    Returns
    -------
    FTestResults
        Indexed by feature (or group).

    Raises
    ------
    ValueError
        When ``T <= k + m`` (too few steps for the regressors; the message
        names T and the number of regressors), on NaN or infinity, on
        mismatched shapes, or on invalid groups.

    Warns
    -----
    GrangerPruneWarning
        Once, counting the degenerate tests (F = NaN, p = 1).
    """
    xp = get_namespace(y, X, Z)
    X, y = as_design(X, y, xp)  # shapes, and y finite
    n_samples = y.shape[0]
    if Z is None:
        Z = xp.zeros((n_samples, 0))
    Z = xp.asarray(Z, dtype=xp.float64)
    if Z.ndim != 2 or Z.shape[0] != n_samples:
        raise ValueError(f"Z must have shape (T, k) with T={n_samples}, got Z.shape={Z.shape}")
    if not bool(xp.all(xp.isfinite(Z))):
        raise ValueError("Z contains NaN or infinity")
    column_sums(X, xp)  # finiteness of X without a boolean copy of it

    Q, R = xp.linalg.qr(Z) if Z.shape[1] else (Z, None)
    if R is not None:
        diag = xp.abs(xp.diag(R))
        if bool(xp.any(diag <= 1e-12 * xp.max(diag))):
            raise ValueError("Z is rank deficient: its columns are linearly dependent")
    k = Z.shape[1]
    e = y - Q @ (Q.T @ y)
    ssr_r = float(e @ e)
    check_rows(n_samples, k, 1)
    if not ssr_r > SPAN_TOLERANCE * float(y @ y):
        raise ValueError("y lies in the span of Z (the restricted model fits it exactly): "
                         "there is nothing to test")
    durbin_watson = float(xp.sum(xp.diff(e) ** 2) / ssr_r) if ssr_r > 0 else float("nan")

    projected = transpose_product(X, xp.concatenate([Q, e[:, None]], axis=1), xp).T  # (k+1, d)
    xte = projected[k]
    qtx = projected[:k]
    sq = raw_column_sq_sums(X, xp)
    partial_sq = sq - xp.sum(qtx * qtx, axis=0)  # ||x~_j||^2

    if groups is None:
        check_rows(n_samples, k, 1)
        explained, degenerate = quadratic_forms(partial_sq[:, None, None], xte[:, None], sq[:, None], xp)
        df_num = xp.ones(X.shape[1], dtype=xp.int64)
    else:
        explained, degenerate, df_num = _group_explained(X, groups, Q, e, sq, n_samples, k, xp)
    return f_test_results(explained, degenerate, df_num, ssr_r, n_samples, k, durbin_watson,
                          stacklevel=2)


def quadratic_forms(gram, b, raw_sq, xp):
    """``b_g^T gram_g^{-1} b_g`` per group, with degenerate groups flagged.

    Parameters
    ----------
    gram : array of shape (G, m, m)
        Gram matrices of the partialled-out columns of each group.
    b : array of shape (G, m)
        ``X~_g^T e``.
    raw_sq : array of shape (G, m)
        Raw squared norms of the columns (the scale the degeneracy test uses).

    Returns
    -------
    explained : ndarray of shape (G,)
        ``SSR_r - SSR_f`` (0 for degenerate groups), in the namespace ``xp``.
    degenerate : ndarray of shape (G,), bool
        Groups whose partialled-out columns are numerically dependent or zero.
    """
    if gram.shape[1] == 1:
        g = gram[:, 0, 0]
        bad = g <= DEGENERACY * raw_sq[:, 0]
        explained = xp.where(bad, 0.0, b[:, 0] ** 2 / xp.where(bad, 1.0, g))
        return explained, bad
    eig = xp.linalg.eigvalsh(gram)
    bad = eig[:, 0] <= DEGENERACY * xp.max(raw_sq, axis=1)
    safe = xp.where(bad[:, None, None], xp.eye(gram.shape[1])[None], gram)
    sol = xp.linalg.solve(safe, b[..., None])[..., 0]
    return xp.where(bad, 0.0, xp.sum(b * sol, axis=1)), bad


def f_test_results(explained, degenerate, df_num, ssr_restricted, n_samples, n_restricted,
                   durbin_watson, stacklevel=2):
    """F statistics and p-values from ``SSR_r - SSR_f`` per test.

    The arithmetic (p-values included) runs where ``explained`` lives (NumPy or
    CuPy); the results are returned on the host.  Warns once
    (:class:`GrangerPruneWarning`) when some tests are degenerate.
    """
    xp = get_namespace(explained)
    degenerate = xp.asarray(degenerate)
    df_num = xp.asarray(df_num)
    df_denom = n_samples - n_restricted - df_num
    ssr_f = xp.maximum(ssr_restricted - explained, 0.0)
    safe_ssr = xp.where(ssr_f > 0, ssr_f, 1.0)
    fvalue = xp.where(ssr_f > 0, (explained / df_num) / (safe_ssr / df_denom), xp.inf)
    fvalue = xp.where(degenerate, xp.nan, fvalue)
    pvalue = xp.where(degenerate, 1.0, f_sf(xp.where(degenerate, 0.0, fvalue), df_num, df_denom))
    n_bad = int(degenerate.sum())
    if n_bad:
        warnings.warn(f"{n_bad} of {fvalue.size} tests are degenerate (a constant or all-zero "
                      "feature, in the span of Z): F = NaN, p = 1", GrangerPruneWarning,
                      stacklevel=stacklevel + 1)
    return FTestResults(fvalue=to_numpy(fvalue), pvalue=to_numpy(pvalue),
                        df_num=to_numpy(df_num), df_denom=to_numpy(df_denom),
                        ssr_restricted=ssr_restricted, ssr_full=to_numpy(ssr_f),
                        durbin_watson=durbin_watson, n_samples=n_samples,
                        n_restricted=n_restricted)


def check_rows(n_samples, k, m):
    """``ValueError`` naming T and the regressors when ``T <= k + m``."""
    if n_samples <= k + m:
        raise ValueError(f"T={n_samples} steps are too few for {k + m} regressors "
                         f"({k} restricted + {m} tested): need T > {k + m}")


def check_groups(groups, n_features):
    """Group sizes of a valid ``groups`` array (host int64, shape (G,))."""
    groups = np.asarray(to_numpy(groups))
    if groups.shape != (n_features,) or not np.issubdtype(groups.dtype, np.integer):
        raise ValueError(f"groups must be an integer array of shape ({n_features},)")
    if groups.size and groups.min() < 0:
        raise ValueError("groups must be numbered 0 ... G-1")
    n_groups = int(groups.max()) + 1 if groups.size else 0
    sizes = np.bincount(groups, minlength=n_groups)
    if np.any(sizes == 0):
        raise ValueError("groups must be numbered 0 ... G-1 with no empty group")
    return groups, sizes.astype(np.int64)


def _group_explained(X, groups, Q, e, sq, n_samples, k, xp):
    """``SSR_r - SSR_f`` per group, degenerate flags and group sizes (host arrays).

    Each group's columns are partialled out of ``Z`` and orthonormalised by
    classical Gram–Schmidt with reorthogonalisation, batched over the groups in
    chunks of :data:`GROUP_CHUNK` columns; then ``SSR_r - SSR_f = ||Q_g^T e||^2``.
    Unlike the normal equations of the group's Gram matrix, whose rounding
    error grows like ``cond(X_g)²``, this keeps its accuracy on nearly
    collinear groups (the momentum features of a parameter often are).
    """
    groups, sizes = check_groups(groups, X.shape[1])
    check_rows(n_samples, k, int(sizes.max()))
    explained = np.zeros(sizes.size)
    degenerate = np.zeros(sizes.size, dtype=bool)
    order = np.argsort(groups, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for m in np.unique(sizes):
        same_size = np.flatnonzero(sizes == m)
        columns = order[starts[same_size][:, None] + np.arange(m)]  # (G_m, m)
        step = max(1, GROUP_CHUNK // m)
        for first in range(0, same_size.size, step):
            members = same_size[first:first + step]
            cols = columns[first:first + step]
            block = _feature_major(X, cols, xp)
            explained[members], degenerate[members] = _orthogonal_projections(
                block, Q, e, sq[xp.asarray(cols)], xp)
    return explained, degenerate, sizes


def _feature_major(X, cols, xp):
    """``X[:, cols]`` as float64 of shape (m, T, G): one contiguous (T, G) slab per group column."""
    n_groups, m = cols.shape
    flat = cols.ravel()
    if np.all(np.diff(flat) == 1):  # the usual layout (unit-major designs): a slice, no gather
        source = X[:, int(flat[0]):int(flat[-1]) + 1]
    else:
        source = xp.take(X, xp.asarray(flat), axis=1)
    block = xp.empty((m, X.shape[0], n_groups))
    for i in range(m):
        block[i] = source[:, i::m]
    return block


def _orthogonal_projections(block, Q, e, raw_sq, xp):
    """``||P_g e||^2`` with ``P_g`` the projection on ``M_Z X_g``, per group.

    Parameters
    ----------
    block : array of shape (m, T, G), float64
        The groups' columns, column ``i`` of every group in ``block[i]``
        (overwritten by the orthonormalised columns).
    Q : array of shape (T, k)
        Orthonormal basis of ``Z``.
    e : array of shape (T,)
        Restricted residuals.
    raw_sq : array of shape (G, m)
        Raw squared column norms; a column whose part orthogonal to ``Z`` and
        to the group's earlier columns is below ``DEGENERACY`` of it makes the
        group degenerate.
    """
    m, _, n_groups = block.shape
    explained = xp.zeros(n_groups)
    bad = xp.zeros(n_groups, dtype=bool)
    scratch = xp.empty_like(block[0])
    for i in range(m):
        v = block[i]
        for _ in range(2):  # "twice is enough" (Giraud, Langou and Rozložník)
            if Q.shape[1]:
                v -= Q @ (Q.T @ v)
            for j in range(i):
                xp.multiply(block[j], xp.einsum("tg,tg->g", block[j], v)[None], out=scratch)
                v -= scratch
        norm_sq = xp.einsum("tg,tg->g", v, v)
        bad |= norm_sq <= DEGENERACY * raw_sq[:, i]
        v /= xp.sqrt(xp.where(bad, 1.0, norm_sq))[None]
        explained += (e @ v) ** 2
    return to_numpy(xp.where(bad, 0.0, explained)), to_numpy(bad)
