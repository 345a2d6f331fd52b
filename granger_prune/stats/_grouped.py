"""Grouped nested F-tests on the host, compiled: one pass over ``X`` for all groups.

For group ``g`` with columns ``X_g`` (``T x m``), :func:`grouped_projections`
partials ``Z`` out of each column and orthonormalises the group by classical
Gram–Schmidt with reorthogonalisation ("twice is enough": Giraud, Langou and
Rozložník 2005), dropping a column left with at most ``rtol`` of its raw
squared norm; then ``SSR_r - SSR_f = sum_i (q_i^T e)^2`` over the kept
columns ``q_i``.  It is the arithmetic of
:func:`granger_prune.stats.ftests._orthogonal_projections` (the array version,
which CuPy runs and the tests compare with), fused per group: a tile of groups
is gathered from ``X`` row by row into a float64 buffer that stays in cache,
and the tiles run in parallel threads (numba ``prange``).  The dot products
keep four partial sums, so the sums are reassociated in a fixed order (the
results are deterministic) and the loop is not bound by the latency of one
accumulator.
"""

import threading

import numpy as np
from numba import njit, prange

#: Columns gathered into one cache-resident buffer (64 groups of 3: 768 KB at T = 500).
TILE_COLUMNS = 192
#: numba's default threading layer (workqueue) must not be entered by two threads at once.
_KERNEL_LOCK = threading.Lock()


def compiled_projections(X, cols, Q, e, raw_sq, rtol):
    """:func:`grouped_projections` on host arrays, with the tile size chosen for ``m``.

    ``X`` (T, d) NumPy, float32 or float64; ``cols`` (G, m) host indices; ``Q``
    (T, k) the orthonormal basis of ``Z``; ``e`` (T,); ``raw_sq`` (G, m).
    Returns ``(explained, rank)`` of shape (G,).  Serialised by a lock, so that
    concurrent callers from several threads queue instead of failing.
    """
    cols = np.ascontiguousarray(cols, dtype=np.int64)
    tile = max(1, TILE_COLUMNS // cols.shape[1])
    with _KERNEL_LOCK:
        return grouped_projections(X, cols, np.ascontiguousarray(Q.T, dtype=np.float64),
                                   np.ascontiguousarray(e, dtype=np.float64),
                                   np.ascontiguousarray(raw_sq, dtype=np.float64),
                                   float(rtol), tile)


@njit(cache=True, inline="always")
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
    n_groups, m = cols.shape
    k, n_samples = QT.shape
    explained = np.zeros(n_groups)
    rank = np.zeros(n_groups, dtype=np.int64)
    n_tiles = (n_groups + tile - 1) // tile
    for b in prange(n_tiles):
        first = b * tile
        last = min(first + tile, n_groups)
        buf = np.empty((last - first, m, n_samples))
        for t in range(n_samples):  # row by row: each row of X is read once per tile
            for g in range(first, last):
                for i in range(m):
                    buf[g - first, i, t] = X[t, cols[g, i]]
        coef = np.empty(k)
        for g in range(first, last):
            V = buf[g - first]
            for i in range(m):
                v = V[i]
                for _ in range(2):
                    for a in range(k):  # v -= Q (Q^T v), classical: all coefficients first
                        coef[a] = _dot(QT[a], v)
                    for a in range(k):
                        ca = coef[a]
                        qa = QT[a]
                        for t in range(n_samples):
                            v[t] -= ca * qa[t]
                    for j in range(i):  # then the group's earlier columns, one at a time
                        u = V[j]
                        cj = _dot(u, v)
                        for t in range(n_samples):
                            v[t] -= cj * u[t]
                norm_sq = _dot(v, v)
                if norm_sq > rtol * raw_sq[g, i]:
                    inverse = 1.0 / np.sqrt(norm_sq)
                    for t in range(n_samples):
                        v[t] *= inverse
                    explained[g] += _dot(e, v) ** 2
                    rank[g] += 1
                else:
                    v[:] = 0.0
    return explained, rank
