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

Groups are tested on their rank: a column numerically dependent on ``Z`` and
on its group's earlier columns (judged on its own scale) is dropped and the
numerator degrees of freedom are the rank, as statsmodels' pseudo-inverse
does.  A feature or group of rank 0 — constant with an intercept, or all zero —
has no test: F = NaN and p = 1, counted in one warning.
"""

import warnings
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd
from scipy import special

from ..backend import get_namespace, to_numpy
from ..exceptions import GrangerPruneWarning
from ..lasso._operator import (binary_exponent, groups_by_block, is_blocked, max_abs_exponent,
                               raw_column_sq_sums, transpose_product)
from ..lasso._validation import as_design, check_not_complex, column_sums
from ._grouped import compiled_projections
from .diagnostics import durbin_watson, ljung_box

#: A partialled-out column whose squared norm is below this fraction of its raw
#: squared norm is numerically in the span of ``Z`` (and of its group's earlier
#: columns): dropped from its test, judged on the column's own scale.
DEGENERACY = 1e-10
#: The same for the single-feature tests of a float32 ``X``, whose products
#: ``Q^T x`` carry float32 rounding (about 1e-6 of ``||x||^2`` after the
#: cancellation in ``||x||^2 - ||Q^T x||^2``): below 1e-4 the statistic would be
#: rounding noise.  Grouped tests run in float64 and use ``DEGENERACY``.
DEGENERACY_FLOAT32 = 1e-4
#: Columns of ``Z`` are dependent when ``|R_jj|`` of the QR factorisation of the
#: column-equilibrated ``Z`` is below this fraction of the column's norm.
Z_RANK_RTOL = 1e-10
#: An unrestricted model with ``SSR_f <= FIT_RTOL * SSR_r`` fits ``y`` exactly to
#: the working precision (float64 arithmetic; float32 single-feature tests).
FIT_RTOL = 1e-12
FIT_RTOL_FLOAT32 = 1e-5
#: ``y`` is in the span of ``Z`` (nothing to test) when ``SSR_r`` is below this
#: fraction of ``||y||^2``.
SPAN_TOLERANCE = 1e-24
#: Squared column norms below this are too close to float64 underflow for the tests'
#: rank and fit thresholds: a float64 ``X`` whose squares all fall below it is rescaled.
SQUARES_FLOOR = 2.0 ** -960
#: Columns of grouped tests orthonormalised at a time on CuPy: large enough that the
#: kernel launches of one chunk (about 10 per column of a group) are not the cost,
#: small enough for the chunk's float64 copy, (T, GROUP_CHUNK_DEVICE), to stay small.
GROUP_CHUNK_DEVICE = 65536
#: ... and at most this many bytes of that copy (fewer columns for long trajectories).
GROUP_CHUNK_DEVICE_BYTES = 1 << 29


@dataclass(frozen=True)
class FTestResults:
    """Results of :func:`nested_f_tests`, one entry per feature (or group).

    Attributes
    ----------
    fvalue, pvalue : ndarray of shape (n_tests,)
        F statistics (NaN for degenerate tests) and upper-tail p-values (1 for
        degenerate tests).
    df_num : ndarray of shape (n_tests,), int
        Numerator degrees of freedom: the rank of the tested columns once
        ``Z`` is partialled out (the group size ``m`` unless some columns
        are dependent; 0 for degenerate tests).
    df_denom : ndarray of shape (n_tests,), int
        ``T - k - df_num``.
    ssr_restricted : float
        Residual sum of squares of ``y ~ Z`` (shared by all tests).
    ssr_full : ndarray of shape (n_tests,)
        Residual sum of squares of each unrestricted model.
    durbin_watson : float
        Durbin–Watson statistic of the restricted residuals (about 2 when
        they are serially uncorrelated; F p-values assume they are).
    n_samples, n_restricted : int
        ``T`` and ``k``.
    n_columns : ndarray of shape (n_tests,), int
        Columns in each test (the group sizes); ``df_num < n_columns`` marks
        a test run on a reduced rank.
    inference : str
        How the statistics were formed: ``"ols"`` (the classical F-test),
        ``"hac"`` (Wald tests with a Newey–West covariance, in the F form) or
        ``"prewhiten"`` (the F-test on AR(p)-filtered data).
    lags : ndarray of shape (n_tests,), int, or None
        The Bartlett truncation lag of each HAC test (None otherwise).
    ljung_box, ljung_box_pvalue : float
        Ljung–Box statistic of the restricted residuals and its p-value
        (:mod:`granger_prune.stats.diagnostics`; NaN where not computed).
    ar_order : int or None
        The AR order of a prewhitened test (``inference="prewhiten"``).
    n_factors : int
        Common factors added to the restricted model (0: none).
    factor_share : float
        The share of the (column-scaled) steps' variance those factors explain
        (NaN without factors).
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
    n_columns: np.ndarray
    inference: str = "ols"
    lags: Optional[np.ndarray] = None
    ljung_box: float = float("nan")
    ljung_box_pvalue: float = float("nan")
    ar_order: Optional[int] = None
    n_factors: int = 0
    factor_share: float = float("nan")

    @property
    def n_tests(self):
        return self.fvalue.shape[0]

    def to_frame(self):
        """One row per test: fvalue, pvalue, df_num, df_denom, n_columns, ssr_full (and
        lags for HAC tests)."""
        columns = dict(fvalue=self.fvalue, pvalue=self.pvalue, df_num=self.df_num,
                       df_denom=self.df_denom, n_columns=self.n_columns, ssr_full=self.ssr_full)
        if self.lags is not None:
            columns["lags"] = self.lags
        return pd.DataFrame(columns)

    def summary(self):
        """A short text summary (counts at the usual levels, Durbin–Watson)."""
        valid = np.isfinite(self.fvalue)
        title = {"ols": "Nested F-tests", "hac": "HAC (Newey-West) Wald F-tests",
                 "prewhiten": "Prewhitened nested F-tests"}[self.inference]
        lines = [
            f"{title}: {self.n_tests} tests, T={self.n_samples}, "
            f"{self.n_restricted} restricted regressors",
            f"restricted SSR = {self.ssr_restricted:.6g}, Durbin-Watson = {self.durbin_watson:.3f}, "
            f"Ljung-Box p = {self.ljung_box_pvalue:.3g}",
            f"degenerate (no test): {int((~valid).sum())}",
            f"tested on a reduced rank (dependent columns): "
            f"{int(np.sum(valid & (self.df_num < self.n_columns)))}",
        ]
        if self.ar_order is not None:
            lines.append(f"prewhitened by an AR({self.ar_order}) filter of the restricted residuals")
        if self.n_factors:
            lines.append(f"{self.n_factors} common factors in the restricted model, explaining "
                         f"{self.factor_share:.1%} of the scaled steps' variance")
        if self.lags is not None and self.lags.size:
            lines.append(f"Bartlett lags: median {np.median(self.lags):g}, "
                         f"range {self.lags.min()}-{self.lags.max()}")
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

    Every statistic is invariant to the scale of ``y``, of each column of
    ``Z`` and of each column of ``X``, and is computed so that the scale
    cannot break it: ``y`` and the columns of ``Z`` are rescaled by powers of
    two (exactly), squares of ``X`` are summed in float64, float32 products are
    scaled as :mod:`granger_prune.lasso._operator` describes, and a float64
    ``X`` whose squares would leave the float64 range is rescaled (one scaled
    copy).  Results are the same for ``X`` multiplied by any power of ten that
    keeps its entries finite and normal in its dtype (to a few 1e-6 of
    ``max(F, 1)`` in float32 and 1e-12 in float64 on well-conditioned columns;
    the tests sweep 1e-30 to 1e30).

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
        Group ``0 ... G-1`` of each column; one test per group.  None: one
        test per column.

    Returns
    -------
    FTestResults
        Indexed by feature (or group).  A group is tested on the rank its
        columns have once ``Z`` is partialled out (``df_num``; ``n_columns``
        is its size): a column whose part orthogonal to ``Z`` and to the
        group's earlier columns is below ``DEGENERACY`` of its own squared norm
        is dropped, as statsmodels' pseudo-inverse drops a direction.  Only a
        test of rank 0 is degenerate (F = NaN, p = 1).

    Raises
    ------
    ValueError
        When ``T <= k + m`` (too few steps for the regressors; the message
        names T and the number of regressors), on NaN or infinity, on
        mismatched shapes, on invalid groups, when the columns of ``Z`` are
        linearly dependent (judged on each column's own scale) or when ``y``
        lies in the span of ``Z``.
    TypeError
        On complex input.

    Warns
    -----
    GrangerPruneWarning
        Once, counting the degenerate tests (F = NaN, p = 1), and once when a
        model fits ``y`` exactly to the working precision (F = inf, p = 0).

    Notes
    -----
    statsmodels judges rank relative to the largest singular value of the
    whole unrestricted design.  On raw-scale (Δθ)² features (1e-8 to 1e-20)
    next to an intercept of 1, a column that is independent on its own scale
    can fall below that threshold, and statsmodels then tests it on fewer
    degrees of freedom than this function does; on designs of comparable column
    scales the two agree.
    """
    prep = prepare_tests(y, X, Z)
    xp, X, Q, e, sq, k = prep.xp, prep.X, prep.Q, prep.e, prep.sq, prep.n_restricted
    if groups is None:
        projected = transpose_product(X, xp.concatenate([Q, e[:, None]], axis=1), xp,
                                      prep.x_exponent).T  # (k+1, d)
        partial_sq = sq - xp.sum(projected[:k] ** 2, axis=0)  # ||x~_j||^2
        rtol = DEGENERACY if X.dtype == xp.float64 else DEGENERACY_FLOAT32
        explained, rank = quadratic_forms(partial_sq[:, None, None], projected[k][:, None],
                                          sq[:, None], xp, rtol=rtol)
        n_columns = xp.ones(X.shape[1], dtype=xp.int64)
    else:
        explained, rank, n_columns = _group_explained(X, groups, Q, e, sq, prep.n_samples, k, xp)
    return f_test_results(explained, rank, n_columns, prep.ssr_restricted, prep.n_samples, k,
                          prep.durbin_watson, ssr_exponent=2 * prep.y_exponent,
                          fit_rtol=FIT_RTOL if X.dtype == xp.float64 else FIT_RTOL_FLOAT32,
                          stacklevel=2, ljung_box=prep.ljung_box)


class PreparedTests(NamedTuple):
    """What every test of ``y`` against the columns of ``X`` given ``Z`` shares.

    ``y`` is rescaled by ``2**-y_exponent`` (exactly), so ``e`` and
    ``ssr_restricted`` are on that scale; ``X`` may be an exactly rescaled copy
    (see :func:`_safely_scaled`), ``sq`` its float64 squared column norms.
    """

    xp: object
    X: object
    y: object
    Q: object  # (T, k) orthonormal basis of Z
    e: object  # (T,) restricted residuals
    sq: object  # (d,)
    ssr_restricted: float
    durbin_watson: float
    ljung_box: tuple  # (Q, p) of the restricted residuals
    n_samples: int
    n_restricted: int
    x_exponent: int
    y_exponent: int


def prepare_tests(y, X, Z, column_norms=True):
    """Validate ``(y, X, Z)`` and compute the restricted fit (see :func:`nested_f_tests`).

    ``column_norms=False`` skips the pass over ``X`` that sums its squares
    (``sq`` is then None, and ``X`` is neither checked for finiteness nor
    rescaled): for a caller whose kernel sums them while it reads ``X``.
    """
    xp = get_namespace(y, X, Z)
    X, y = as_design(X, y, xp)  # shapes, real dtypes, y finite
    n_samples = y.shape[0]
    if Z is None:
        Z = xp.zeros((n_samples, 0))
    check_not_complex(Z, "Z")
    Z = xp.asarray(Z, dtype=xp.float64)
    if Z.ndim != 2 or Z.shape[0] != n_samples:
        raise ValueError(f"Z must have shape (T, k) with T={n_samples}, got Z.shape={Z.shape}")
    if not bool(xp.all(xp.isfinite(Z))):
        raise ValueError("Z contains NaN or infinity")

    y_exponent = max_abs_exponent(y, xp)
    y = xp.ldexp(y, -y_exponent)  # exact; F is invariant to the scale of y
    Q = restricted_basis(Z, xp)
    k = Z.shape[1]
    e = y - Q @ (Q.T @ y)
    ssr_r = float(e @ e)
    check_rows(n_samples, k, 1)
    if not ssr_r > SPAN_TOLERANCE * float(y @ y):
        raise ValueError("y lies in the span of Z (the restricted model fits it exactly): "
                         "there is nothing to test")
    X, sq, x_exponent = _safely_scaled(X, xp) if column_norms else (X, None, 0)
    return PreparedTests(xp, X, y, Q, e, sq, ssr_r, durbin_watson(e), ljung_box(e), n_samples,
                         k, x_exponent, y_exponent)


def restricted_basis(Z, xp):
    """Orthonormal basis ``Q`` (T, k) of the columns of ``Z``.

    Each column is first divided by the power of two nearest its norm, so the
    QR factorisation sees columns of comparable scale (an intercept next to a
    1e-12 regressor is full rank); the columns are dependent when some
    ``|R_jj|`` is below ``Z_RANK_RTOL`` of its column's norm.
    """
    if Z.shape[1] == 0:
        return Z
    norms = xp.sqrt(xp.sum(Z * Z, axis=0))
    if not bool(xp.all(norms > 0)):
        raise ValueError("Z is rank deficient: it has an all-zero column")
    mantissa, exponent = xp.frexp(norms)  # the scaled columns' norms are the mantissas
    Q, R = xp.linalg.qr(xp.ldexp(Z, -exponent[None, :]))
    if bool(xp.any(xp.abs(xp.diag(R)) <= Z_RANK_RTOL * mantissa)):
        raise ValueError("Z is rank deficient: its columns are linearly dependent")
    return Q


def _safely_scaled(X, xp):
    """``(X, sq, x_exponent)``: squared column norms in float64 and the exponent of ``max |X|``.

    A float64 ``X`` whose squares leave the float64 range (an overflow, or all
    of them below :data:`SQUARES_FLOOR`) is replaced by an exactly rescaled copy.  The
    squares are also the finiteness check of ``X`` (a float32 square cannot
    overflow in float64), so no other pass is needed for it.
    """
    sq = raw_column_sq_sums(X, xp)
    finite = bool(xp.all(xp.isfinite(sq)))
    if not finite:
        column_sums(X, xp)  # raises on NaN or infinity in X, naming it
    top = float(xp.max(sq)) if finite else float("inf")
    if X.dtype == xp.float64 and not (finite and top >= SQUARES_FLOOR):
        exponent = max_abs_exponent(X, xp)
        if exponent and is_blocked(X):
            raise ValueError(f"max |X| = 2**{exponent}: the squares of this blocked float64 design "
                             "leave the float64 range; multiply X by a power of two (F is invariant)")
        if exponent:
            X = xp.ldexp(X, -exponent)
            sq = raw_column_sq_sums(X, xp)
            top = float(xp.max(sq))
    return X, sq, binary_exponent(np.sqrt(top))


def quadratic_forms(gram, b, raw_sq, xp, rtol=None):
    """``b_g^T gram_g^+ b_g`` per group on the columns a sequential rank test keeps.

    Column ``i`` of a group is kept when the squared norm of its part
    orthogonal to the group's earlier kept columns (the pivot of an unpivoted
    Cholesky factorisation of ``gram``) exceeds ``rtol`` times its raw squared
    norm; dropped columns take no part, so a group of dependent columns is
    tested on its rank.

    Parameters
    ----------
    gram : array of shape (G, m, m)
        Gram matrices of the partialled-out columns of each group.
    b : array of shape (G, m)
        ``X~_g^T e``.
    raw_sq : array of shape (G, m)
        Raw squared norms of the columns (the scale the rank test uses).
    rtol : float, default=DEGENERACY

    Returns
    -------
    explained : ndarray of shape (G,)
        ``SSR_r - SSR_f`` (0 for groups of rank 0), in the namespace ``xp``.
    rank : ndarray of shape (G,), int
        The number of columns kept.
    """
    rtol = DEGENERACY if rtol is None else rtol
    n_groups, m = b.shape
    if m == 1:
        g = gram[:, 0, 0]
        keep = g > rtol * raw_sq[:, 0]
        explained = xp.where(keep, b[:, 0] ** 2 / xp.where(keep, g, 1.0), 0.0)
        return explained, keep.astype(xp.int64)
    L = xp.zeros(gram.shape)
    z = xp.zeros((n_groups, m))
    keep = xp.zeros((n_groups, m), dtype=bool)
    for i in range(m):
        for j in range(i):
            s = gram[:, i, j] - xp.sum(L[:, i, :j] * L[:, j, :j], axis=1)
            L[:, i, j] = xp.where(keep[:, j], s / xp.where(keep[:, j], L[:, j, j], 1.0), 0.0)
        pivot = gram[:, i, i] - xp.sum(L[:, i, :i] ** 2, axis=1)
        keep[:, i] = pivot > rtol * raw_sq[:, i]
        L[:, i, i] = xp.sqrt(xp.where(keep[:, i], pivot, 0.0))
        residual = b[:, i] - xp.sum(L[:, i, :i] * z[:, :i], axis=1)
        z[:, i] = xp.where(keep[:, i], residual / xp.where(keep[:, i], L[:, i, i], 1.0), 0.0)
    return xp.sum(z * z, axis=1), xp.sum(keep, axis=1).astype(xp.int64)


def f_test_results(explained, rank, n_columns, ssr_restricted, n_samples, n_restricted,
                   durbin_watson, ssr_exponent=0, fit_rtol=None, stacklevel=2, statistic=None,
                   inference="ols", lags=None, ljung_box=(float("nan"), float("nan"))):
    """F statistics and p-values from ``SSR_r - SSR_f`` per test.

    ``rank`` is each test's numerator degrees of freedom (0: degenerate, F =
    NaN, p = 1).  The sums of squares may be on a scale ``2**-ssr_exponent``
    of the reported ones.  ``statistic`` (shape (n_tests,)), when given, is the
    F statistic itself (a robust Wald statistic over its degrees of freedom)
    and replaces the classical one; ``inference``, ``lags`` and ``ljung_box``
    (``(Q, p)``) go to the results.  The arithmetic (p-values included) runs where
    ``explained`` lives (NumPy or CuPy); the results are returned on the host.
    Warns once (:class:`GrangerPruneWarning`) when some tests are degenerate,
    and once when some unrestricted models fit exactly to the working
    precision (``SSR_f <= fit_rtol * SSR_r``: F = inf, p = 0).
    """
    xp = get_namespace(explained)
    fit_rtol = FIT_RTOL if fit_rtol is None else fit_rtol
    rank = xp.asarray(rank)
    degenerate = rank == 0
    df_num = rank
    df_denom = n_samples - n_restricted - df_num
    ssr_f = xp.maximum(ssr_restricted - explained, 0.0)
    exact = (ssr_f <= fit_rtol * ssr_restricted) & ~degenerate
    safe_ssr = xp.where(exact, 1.0, ssr_f)
    if statistic is None:
        statistic = (explained / xp.maximum(df_num, 1)) / (safe_ssr / df_denom)
    fvalue = xp.where(exact, xp.inf, statistic)
    fvalue = xp.where(degenerate, xp.nan, fvalue)
    pvalue = f_sf(xp.where(degenerate | exact, 0.0, fvalue), xp.maximum(df_num, 1), df_denom)
    pvalue = xp.where(degenerate, 1.0, xp.where(exact, 0.0, pvalue))
    n_bad, n_exact = int(degenerate.sum()), int(exact.sum())
    if n_bad:
        warnings.warn(f"{n_bad} of {fvalue.size} tests are degenerate (constant or all-zero "
                      "features, in the span of Z): F = NaN, p = 1", GrangerPruneWarning,
                      stacklevel=stacklevel + 1)
    if n_exact:
        warnings.warn(f"{n_exact} of {fvalue.size} unrestricted models fit y exactly to the "
                      f"working precision (SSR_full <= {fit_rtol:g} SSR_restricted): F = inf, "
                      "p = 0", GrangerPruneWarning, stacklevel=stacklevel + 1)
    return FTestResults(fvalue=to_numpy(fvalue), pvalue=to_numpy(pvalue),
                        df_num=to_numpy(df_num), df_denom=to_numpy(df_denom),
                        ssr_restricted=float(_unscale(np.float64(ssr_restricted), ssr_exponent)),
                        ssr_full=to_numpy(_unscale(ssr_f, ssr_exponent)),
                        durbin_watson=durbin_watson, n_samples=n_samples,
                        n_restricted=n_restricted, n_columns=to_numpy(xp.asarray(n_columns)),
                        inference=inference, lags=None if lags is None else to_numpy(lags),
                        ljung_box=float(ljung_box[0]), ljung_box_pvalue=float(ljung_box[1]))


def _unscale(values, exponent):
    """``values * 2**exponent`` (infinite where that leaves the float64 range)."""
    xp = get_namespace(values)
    with np.errstate(over="ignore", under="ignore"):
        return xp.ldexp(values, exponent)


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


def columns_by_size(groups, n_features):
    """``(sizes, [(m, members, columns), ...])``: the groups of each size ``m``.

    ``members`` (host, shape (G_m,)) numbers the groups of size ``m`` and
    ``columns`` (host, shape (G_m, m)) their columns in order; ``groups`` None
    makes every column a group of one.
    """
    if groups is None:
        return np.ones(n_features, dtype=np.int64), [
            (1, np.arange(n_features), np.arange(n_features)[:, None])]
    groups, sizes = check_groups(groups, n_features)
    order = np.argsort(groups, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    by_size = []
    for m in np.unique(sizes):
        same_size = np.flatnonzero(sizes == m)
        by_size.append((int(m), same_size, order[starts[same_size][:, None] + np.arange(m)]))
    return sizes, by_size


def _group_explained(X, groups, Q, e, sq, n_samples, k, xp):
    """``SSR_r - SSR_f``, rank and size per group (host arrays).

    Each group's columns are partialled out of ``Z`` and orthonormalised by
    classical Gram–Schmidt with reorthogonalisation; then ``SSR_r - SSR_f =
    ||Q_g^T e||^2``.  On the host one compiled kernel does it group by group in
    cache (:mod:`granger_prune.stats._grouped`); on CuPy the same arithmetic
    runs batched over the groups as array operations, in chunks of
    :data:`GROUP_CHUNK_DEVICE` columns.
    Unlike the normal equations of the group's Gram matrix, whose rounding
    error grows like ``cond(X_g)²``, this keeps its accuracy on nearly
    collinear groups (the momentum features of a parameter often are).  A
    column left with less than ``DEGENERACY`` of its squared norm is dropped:
    the group is tested on its rank.
    """
    sizes, by_size = columns_by_size(groups, X.shape[1])
    check_rows(n_samples, k, int(sizes.max()))
    explained = np.zeros(sizes.size)
    rank = np.zeros(sizes.size, dtype=np.int64)
    for m, same_size, columns in by_size:
        if xp is np:
            for block, part, local in groups_by_block(X, columns):
                explained[same_size[part]], rank[same_size[part]] = compiled_projections(
                    block, local, Q, e, sq[columns[part]], DEGENERACY)
            continue
        for chosen, block in device_group_chunks(X, columns, xp):
            explained[same_size[chosen]], rank[same_size[chosen]] = _orthogonal_projections(
                block, Q, e, sq[xp.asarray(columns[chosen])], xp)
    return explained, rank, sizes


def device_group_chunks(X, columns, xp):
    """The groups ``columns`` (G, m) of ``X`` in chunks for the batched CuPy kernels.

    Yields ``(chosen, block)``: ``chosen`` indexes rows of ``columns`` (at most
    :data:`GROUP_CHUNK_DEVICE` columns' worth, and :data:`GROUP_CHUNK_DEVICE_BYTES`
    of float64), ``block`` their columns as :func:`_feature_major` gives them; a
    blocked ``X`` (streamed to the device) block by block, in one pass.
    """
    width = min(GROUP_CHUNK_DEVICE, GROUP_CHUNK_DEVICE_BYTES // (8 * max(1, X.shape[0])))
    step = max(1, width // columns.shape[1])
    for block, part, local in groups_by_block(X, columns):  # a whole X is one block
        for first in range(0, part.size, step):
            yield part[first:first + step], _feature_major(block, local[first:first + step], xp)


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
    """``||P_g e||^2`` with ``P_g`` the projection on ``M_Z X_g``, and the rank of ``M_Z X_g``.

    Parameters
    ----------
    block : array of shape (m, T, G), float64
        The groups' columns, column ``i`` of every group in ``block[i]``
        (overwritten by the orthonormalised columns, zero where dropped).
    Q : array of shape (T, k)
        Orthonormal basis of ``Z``.
    e : array of shape (T,)
        Restricted residuals.
    raw_sq : array of shape (G, m)
        Raw squared column norms; a column whose part orthogonal to ``Z`` and
        to the group's earlier columns is below ``DEGENERACY`` of it is
        dropped (numerically dependent on its own scale).
    """
    m, _, n_groups = block.shape
    explained = xp.zeros(n_groups)
    rank = xp.zeros(n_groups, dtype=xp.int64)
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
        kept = norm_sq > DEGENERACY * raw_sq[:, i]
        v *= xp.where(kept, 1.0 / xp.sqrt(xp.where(kept, norm_sq, 1.0)), 0.0)[None]
        explained += (e @ v) ** 2
        rank += kept
    return to_numpy(explained), to_numpy(rank)
