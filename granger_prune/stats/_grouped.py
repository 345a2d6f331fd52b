"""Compiled per-group kernels of the tests on the host: one pass over ``X`` for all groups.

For group ``g`` with columns ``X_g`` (``T x m``) each kernel partials ``Z``
out of the columns and orthonormalises the group by classical Gram–Schmidt
with reorthogonalisation where the first pass cancelled ("twice is enough":
Giraud, Langou and Rozložník 2005), dropping a column left with at most
``rtol`` of its raw squared norm (:func:`_partial_out`, :func:`_orthonormalise`).
With ``q_i`` the kept columns and ``a_i = q_i^T e``:

* :func:`grouped_projections` (the F-tests): ``SSR_r - SSR_f = sum_i a_i^2``;
* :func:`hac_wald_statistics` (the HAC tests): the Wald statistic
  ``a^T S^{-1} a`` with ``S`` the Bartlett-kernel long-run covariance of the
  scores ``v_t = q_t u_t`` (``u = e - sum_i a_i q_i`` the unrestricted residuals).

It is the method of the array versions in :mod:`granger_prune.stats.ftests`
and :mod:`granger_prune.stats.hac` (which CuPy runs and the tests compare
with; they always reorthogonalise), fused per group: a tile of groups is
gathered from ``X`` row by row into a float64 buffer that stays in cache, and
the tiles run in parallel threads (numba ``prange``).  Dot products keep four
partial sums, added in a fixed order: the results are deterministic and the
loop is not bound by the latency of one accumulator.
"""

import threading

import numpy as np
from numba import njit, prange

#: Columns gathered into one cache-resident buffer (64 groups of 3: 768 KB at T = 500).
TILE_COLUMNS = 192
#: numba's default threading layer (workqueue) must not be entered by two threads at once.
_KERNEL_LOCK = threading.Lock()


def _host_arguments(cols, Q, e, raw_sq):
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    return (cols, np.ascontiguousarray(Q.T, dtype=np.float64),
            np.ascontiguousarray(e, dtype=np.float64),
            np.ascontiguousarray(raw_sq, dtype=np.float64), max(1, TILE_COLUMNS // cols.shape[1]))


def compiled_projections(X, cols, Q, e, raw_sq, rtol):
    """:func:`grouped_projections` on host arrays, with the tile size chosen for ``m``.

    ``X`` (T, d) NumPy, float32 or float64; ``cols`` (G, m) host indices; ``Q``
    (T, k) the orthonormal basis of ``Z``; ``e`` (T,); ``raw_sq`` (G, m).
    Returns ``(explained, rank)`` of shape (G,).  Serialised by a lock, so that
    concurrent callers from several threads queue instead of failing.
    """
    cols, QT, e, raw_sq, tile = _host_arguments(cols, Q, e, raw_sq)
    with _KERNEL_LOCK:
        return grouped_projections(X, cols, QT, e, raw_sq, float(rtol), tile)


def compiled_hac(X, cols, Q, e, raw_sq, rtol, maxlags, auto_lags, cap, pivot_rtol):
    """:func:`hac_wald_statistics` on host arrays (arguments as :func:`compiled_projections`).

    ``maxlags`` is the truncation lag, or the pre-bandwidth ``n`` of the
    automatic rule when ``auto_lags`` (whose lags are at most ``cap``).
    ``raw_sq`` None: the kernel sums the columns' squares itself, from the
    columns it gathers (no separate pass over ``X``), and returns them.
    Returns ``(wald, explained, rank, lags, raw_sq)``.
    """
    compute_norms = raw_sq is None
    if compute_norms:
        raw_sq = np.zeros(np.shape(cols))
    cols, QT, e, raw_sq, tile = _host_arguments(cols, Q, e, raw_sq)
    with _KERNEL_LOCK:
        out = hac_wald_statistics(X, cols, QT, e, raw_sq, float(rtol), tile, int(maxlags),
                                  bool(auto_lags), int(cap), float(pivot_rtol), compute_norms)
    return (*out, raw_sq)


@njit(cache=True)
def _dot(a, b):
    """``a^T b`` of two float64 vectors, with four partial sums added in a fixed order."""
    n = a.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    stop = n - n % 4
    for t in range(0, stop, 4):
        s0 += a[t] * b[t]
        s1 += a[t + 1] * b[t + 1]
        s2 += a[t + 2] * b[t + 2]
        s3 += a[t + 3] * b[t + 3]
    for t in range(stop, n):
        s0 += a[t] * b[t]
    return (s0 + s1) + (s2 + s3)


@njit(cache=True)
def _lagged_dot(a, b, lag):
    """``sum_t a[t] b[t - lag]`` over ``t = lag ... T-1``."""
    return _dot(a[lag:], b[:a.shape[0] - lag])


@njit(cache=True)
def _gather(X, cols, first, last, buf):
    """``buf[g - first, i, :] = X[:, cols[g, i]]`` for the tile's groups, row by row."""
    m = cols.shape[1]
    for t in range(X.shape[0]):
        for g in range(first, last):
            for i in range(m):
                buf[g - first, i, t] = X[t, cols[g, i]]


@njit(cache=True)
def _project_out(v, V, i, QT, coef):
    """``v -= Q (Q^T v)`` (classical: all coefficients first), then ``v -= V_j (V_j^T v)``
    for the group's earlier rows ``j < i``, one at a time."""
    k, n_samples = QT.shape
    for a in range(k):
        coef[a] = _dot(QT[a], v)
    for a in range(k):
        ca = coef[a]
        qa = QT[a]
        for t in range(n_samples):
            v[t] -= ca * qa[t]
    for j in range(i):
        u = V[j]
        cj = _dot(u, v)
        for t in range(n_samples):
            v[t] -= cj * u[t]


@njit(cache=True)
def _tile_buffers(X, cols, QT, first, last):
    """``(buf, coef, kept)``: the tile's gathered columns (G_tile, m, T) and the scratch
    arrays of :func:`_orthonormalise`."""
    m = cols.shape[1]
    buf = np.empty((last - first, m, X.shape[0]))
    _gather(X, cols, first, last, buf)
    return buf, np.empty(QT.shape[0]), np.empty(m, dtype=np.bool_)


@njit(cache=True)
def _partial_out(V, i, QT, raw_sq, coef):
    """Project ``Z`` and the group's earlier rows out of row ``i`` of ``V`` in place;
    return its squared norm after.

    The row is projected a second time only when the first projection removed
    more than half of its raw squared norm ``raw_sq`` (the Kahan–Parlett
    criterion: otherwise one pass is already orthogonal to working precision).
    """
    v = V[i]
    _project_out(v, V, i, QT, coef)
    norm_sq = _dot(v, v)
    if norm_sq < 0.5 * raw_sq:
        _project_out(v, V, i, QT, coef)
        norm_sq = _dot(v, v)
    return norm_sq


@njit(cache=True)
def _orthonormalise(V, QT, raw_sq, rtol, coef, kept):
    """Partial ``Z`` out of the rows of ``V`` (m, T) and orthonormalise them in place
    (:func:`_partial_out`).  A row left with at most ``rtol * raw_sq[i]`` of
    squared norm is zeroed and ``kept[i] = False``.  Returns the number kept.
    """
    n_samples = QT.shape[1]
    rank = 0
    for i in range(V.shape[0]):
        v = V[i]
        norm_sq = _partial_out(V, i, QT, raw_sq[i], coef)
        kept[i] = norm_sq > rtol * raw_sq[i]
        if kept[i]:
            inverse = 1.0 / np.sqrt(norm_sq)
            for t in range(n_samples):
                v[t] *= inverse
            rank += 1
        else:
            v[:] = 0.0
    return rank


@njit(cache=True, parallel=True)
def grouped_projections(X, cols, QT, e, raw_sq, rtol, tile):
    """``||P_g e||^2`` and the rank of ``M_Z X_g`` for every group ``g``.

    Parameters
    ----------
    X : ndarray of shape (T, d), float32 or float64
        The design (read, never modified).
    cols : int64 ndarray of shape (G, m)
        The columns of each group.
    QT : float64 ndarray of shape (k, T), C-contiguous
        The transposed orthonormal basis of ``Z``.
    e : float64 ndarray of shape (T,)
        Restricted residuals.
    raw_sq : float64 ndarray of shape (G, m)
        Raw squared norms of the groups' columns.
    rtol : float
        Drop a column whose orthogonalised squared norm is at most
        ``rtol * raw_sq``.
    tile : int
        Groups gathered per buffer.

    Returns
    -------
    explained : float64 ndarray of shape (G,)
    rank : int64 ndarray of shape (G,)
    """
    n_groups = cols.shape[0]
    explained = np.zeros(n_groups)
    rank = np.zeros(n_groups, dtype=np.int64)
    for b in prange((n_groups + tile - 1) // tile):  # one call per tile: a small parfor
        _projections_tile(X, cols, QT, e, raw_sq, rtol, b * tile, min((b + 1) * tile, n_groups),
                          explained, rank)
    return explained, rank


@njit(cache=True)
def _projections_tile(X, cols, QT, e, raw_sq, rtol, first, last, explained, rank):
    """The groups ``first ... last-1`` of :func:`grouped_projections`, serially."""
    buf, coef, kept = _tile_buffers(X, cols, QT, first, last)
    m = cols.shape[1]
    for g in range(first, last):
        V = buf[g - first]
        rank[g] = _orthonormalise(V, QT, raw_sq[g], rtol, coef, kept)
        total = 0.0
        for i in range(m):
            if kept[i]:
                total += _dot(e, V[i]) ** 2
        explained[g] = total


@njit(cache=True)
def _lag_from_sums(s0, s1, n_samples, cap):
    """``min(floor(1.1447 (|s1| / s0)^(2/3) T^(1/3)), cap)`` (0 when ``s0 <= 0``)."""
    if not s0 > 0.0:
        return 0
    lags = np.floor(1.1447 * (abs(s1) / s0) ** (2.0 / 3.0) * n_samples ** (1.0 / 3.0))
    return int(min(lags, cap))


@njit(cache=True)
def automatic_lags(h, pre_lags, cap, sigma):
    """Newey and West's (1994) Bartlett lag from the score series ``h`` (T,).

    ``s0 = σ_0 + 2 Σ_{j<=n} σ_j``, ``s1 = 2 Σ_{j<=n} j σ_j`` with ``σ_j = Σ_t
    h_t h_{t-j}`` and ``n = pre_lags``; the lag is ``floor(1.1447 (s1 / s0)^(2/3)
    T^(1/3))``, at most ``cap`` (0 when ``s0 <= 0``).  The autocovariances
    ``σ_0 ... σ_n`` are left in ``sigma`` (length at least ``n + 1``).
    """
    sigma[0] = _dot(h, h)
    s0, s1 = sigma[0], 0.0
    for j in range(1, pre_lags + 1):
        sigma[j] = _lagged_dot(h, h, j)
        s0 += 2.0 * sigma[j]
        s1 += 2.0 * j * sigma[j]
    return _lag_from_sums(s0, s1, h.shape[0], cap)


@njit(cache=True)
def _single_hac(V, e, QT, raw_sq, rtol, coef, maxlags, auto_lags, cap, sigma):
    """``(wald, explained, kept, lag)`` of one column ``x = V[0]`` (``V`` of shape (1, T),
    overwritten).

    The one-column case of :func:`hac_wald_statistics` without normalising:
    with ``x~ = M_Z x``, ``c = x~'e / x~'x~`` and the scores ``v_t = x~_t (e_t - c
    x~_t)``, the Wald statistic is ``(x~'e)^2 / S_v``, and the automatic lag
    reuses the autocovariances ``σ_j`` of ``v`` (``sigma``, length ``cap + 1``).
    """
    x = V[0]
    n_samples = x.shape[0]
    norm_sq = _partial_out(V, 0, QT, raw_sq, coef)
    if not norm_sq > rtol * raw_sq:
        return 0.0, 0.0, False, 0
    xe = _dot(x, e)
    c = xe / norm_sq
    for t in range(n_samples):
        x[t] *= e[t] - c * x[t]
    if auto_lags:
        L, done = automatic_lags(x, maxlags, cap, sigma), maxlags
    else:
        sigma[0] = _dot(x, x)
        L, done = maxlags, 0
    total = sigma[0]
    for lag in range(1, L + 1):
        if lag > done:
            sigma[lag] = _lagged_dot(x, x, lag)
        total += 2.0 * (1.0 - lag / (L + 1.0)) * sigma[lag]
    wald = xe * xe / total if total > 0.0 else 0.0
    return wald, xe * c, True, L


@njit(cache=True, parallel=True)
def hac_wald_statistics(X, cols, QT, e, raw_sq, rtol, tile, maxlags, auto_lags, cap, pivot_rtol,
                        compute_norms):
    """HAC Wald statistic ``a^T S^{-1} a`` (uncorrected), rank and lag for every group.

    Arguments as :func:`grouped_projections`, and ``maxlags`` (the Bartlett
    truncation lag ``L``, weights ``1 - l / (L + 1)``; the pre-bandwidth of
    :func:`automatic_lags` when ``auto_lags``, whose lag is at most ``cap``).
    ``S = Σ_t v_t v_t^T + Σ_{l=1}^L w_l (Γ_l + Γ_l^T)``, ``Γ_l = Σ_t v_t
    v_{t-l}^T``, over the kept columns, solved on the pivots of ``S`` above
    ``pivot_rtol`` of their diagonal entry.  With ``compute_norms`` the kernel
    first writes each gathered column's sum of squares into ``raw_sq`` (-1 for a
    non-zero column whose squares all underflow).

    Returns
    -------
    wald : float64 ndarray of shape (G,)
    explained : float64 ndarray of shape (G,)
        ``SSR_r - SSR_f = sum_i a_i^2``.
    rank : int64 ndarray of shape (G,)
    lags : int64 ndarray of shape (G,)
    """
    n_groups = cols.shape[0]
    wald = np.zeros(n_groups)
    explained = np.zeros(n_groups)
    rank = np.zeros(n_groups, dtype=np.int64)
    lags_used = np.zeros(n_groups, dtype=np.int64)
    for b in prange((n_groups + tile - 1) // tile):  # one call per tile: a small parfor
        _hac_tile(X, cols, QT, e, raw_sq, rtol, maxlags, auto_lags, cap, pivot_rtol, compute_norms,
                  b * tile,
                  min((b + 1) * tile, n_groups), wald, explained, rank, lags_used)
    return wald, explained, rank, lags_used


@njit(cache=True)
def _hac_tile(X, cols, QT, e, raw_sq, rtol, maxlags, auto_lags, cap, pivot_rtol, compute_norms,
              first, last, wald, explained, rank, lags_used):
    """The groups ``first ... last-1`` of :func:`hac_wald_statistics`, serially."""
    buf, coef, kept = _tile_buffers(X, cols, QT, first, last)
    m = cols.shape[1]
    if compute_norms:
        for g in range(first, last):
            for i in range(m):
                column = buf[g - first, i]
                raw_sq[g, i] = _dot(column, column)
                if raw_sq[g, i] == 0.0 and np.any(column != 0.0):
                    raw_sq[g, i] = -1.0  # the squares underflowed: not a zero column
    n_samples = QT.shape[1]
    a = np.empty(m)
    u = np.empty(n_samples)
    h = np.empty(n_samples)
    S = np.empty((m, m))
    sigma = np.empty(max(cap, maxlags) + 1)
    for g in range(first, last):
        V = buf[g - first]
        if compute_norms and np.any(raw_sq[g] < 0.0):
            continue  # underflowed squares: the caller reruns on a rescaled X
        if m == 1:
            w, ex, one, L = _single_hac(V, e, QT, raw_sq[g, 0], rtol, coef, maxlags,
                                        auto_lags, cap, sigma)
            wald[g], explained[g], rank[g], lags_used[g] = w, ex, one, L
            continue
        r = _orthonormalise(V, QT, raw_sq[g], rtol, coef, kept)
        rank[g] = r
        if r == 0:
            continue
        u[:] = e
        for i in range(m):
            a[i] = _dot(e, V[i])
            explained[g] += a[i] * a[i]
            for t in range(n_samples):
                u[t] -= a[i] * V[i, t]
        for i in range(m):  # the scores v_t = q_t u_t, in place of q
            for t in range(n_samples):
                V[i, t] *= u[t]
        L = maxlags
        if auto_lags:
            h[:] = 0.0
            for i in range(m):
                for t in range(n_samples):
                    h[t] += V[i, t]
            L = automatic_lags(h, maxlags, cap, sigma)
        lags_used[g] = L
        for i in range(m):
            for j in range(i + 1):
                s = _dot(V[i], V[j])
                for lag in range(1, L + 1):
                    w = 1.0 - lag / (L + 1.0)
                    s += w * (_lagged_dot(V[i], V[j], lag) + _lagged_dot(V[j], V[i], lag))
                S[i, j] = s
                S[j, i] = s
        for i in range(m):  # dropped columns: a_i = 0, an identity row keeps S invertible
            if not kept[i]:
                for j in range(m):
                    S[i, j] = 0.0
                    S[j, i] = 0.0
                S[i, i] = 1.0
                a[i] = 0.0
        wald[g] = _cholesky_quadratic_form(S, a, m, pivot_rtol)


@njit(cache=True)
def _cholesky_quadratic_form(S, a, m, rtol):
    """``a^T S^+ a`` on the pivots an unpivoted Cholesky factorisation of ``S`` (m, m) keeps.

    A pivot at most ``rtol`` times its diagonal entry drops its column, as
    :func:`granger_prune.stats.ftests.quadratic_forms` does (the array version).
    ``S`` and ``a`` are overwritten.
    """
    total = 0.0
    for j in range(m):
        diagonal = S[j, j]
        d = diagonal
        for p in range(j):
            d -= S[j, p] * S[j, p]
        if not d > rtol * diagonal:
            for i in range(j, m):
                S[i, j] = 0.0
            a[j] = 0.0
            continue
        S[j, j] = np.sqrt(d)
        for i in range(j + 1, m):
            s = S[i, j]
            for p in range(j):
                s -= S[i, p] * S[j, p]
            S[i, j] = s / S[j, j]
        s = a[j]  # forward substitution z = L^{-1} a, row j
        for p in range(j):
            s -= S[j, p] * a[p]
        a[j] = s / S[j, j]
        total += a[j] * a[j]
    return total
