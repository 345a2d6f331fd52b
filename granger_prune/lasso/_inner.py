"""Cyclic coordinate descent on a working set's Gram matrix (host NumPy).

The working-set problem is the elastic net restricted to ``k`` columns::

    min_w  (1 / (2 n)) ||yc - B w||^2 + l1 ||w||_1 + (l2 / 2) ||w||^2   (w >= 0 if positive)

with ``B`` the centred, scaled working-set block of shape ``(n, k)``.  Up to a
constant it is ``w^T H w / 2 - c^T w + l1 ||w||_1 + l2 ||w||^2 / 2`` with
``H = B^T B / n`` and ``c = B^T yc / n``, so a coordinate update costs
``O(k)``, not ``O(n)``:

    z_j   = H_jj w_j - (H w - c)_j
    w_j  <- S(z_j, l1) / (H_jj + l2)            (S the soft threshold;
                                                 max(z_j - l1, 0) if positive)

One epoch (a sweep over the working set) is compiled by numba
(:func:`gram_cd_sweep`, cached on disk after its first compilation, releasing
the GIL so that batched fits run in parallel threads); its ``py_func`` is the
same sweep interpreted, the reference the tests compare it with.  Between
epochs, in Python: Anderson extrapolation of the iterates (Bertrand & Massias
2021), accepted only when it lowers the objective, and the working-set
duality-gap check.
"""

import numpy as np
from numba import njit
from threadpoolctl import ThreadpoolController

from ._dual import dual_norm, dual_scaling, gap_from_residual

_EPS = np.finfo(np.float64).eps
_THREADPOOLS = []  # a ThreadpoolController is made on first use (~1 ms)


def single_threaded_blas():
    """Context manager limiting BLAS to one thread.

    The inner solver makes many ``k``-sized BLAS calls, which run several times
    slower multi-threaded, and far slower when another process competes.
    """
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


def quadratic_objective(Hw, c, w, l1, l2):
    """``w^T H w / 2 - c^T w + l1 ||w||_1 + l2 ||w||^2 / 2`` given the product ``Hw = H w``."""
    return (0.5 * float(w @ Hw) - float(c @ w) + l1 * float(np.abs(w).sum())
            + 0.5 * l2 * float(w @ w))


def anderson_extrapolation(iterates):
    """Anderson extrapolation of the rows of ``iterates`` (m + 1 of them); None if singular."""
    W = np.asarray(iterates)
    U = np.diff(W, axis=0)
    try:
        z = np.linalg.solve(U @ U.T, np.ones(U.shape[0]))
    except np.linalg.LinAlgError:
        return None
    total = z.sum()
    if not np.isfinite(total) or total == 0.0:
        return None
    return (z / total) @ W[1:]


def working_set_gap(B, yc, w, l1, l2, positive):
    """Duality gap of the working-set problem at ``w`` (``B`` the block, ``yc`` the target),
    from the residual itself: the reference of :func:`gram_gap`."""
    n_samples = B.shape[0]
    r = yc - B @ w
    g = B.T @ r / n_samples - l2 * w
    s = dual_scaling(dual_norm(g, positive, np), l1)
    return gap_from_residual(float(r @ r), float(r @ yc), s, float(np.abs(w).sum()),
                             float(w @ w), l1, l2, n_samples)


def gram_gap(yc_sq, c, w, grad, l1, l2, positive, n_samples):
    """The working-set gap at ``w`` from Gram quantities alone, in ``O(k)``.

    With ``grad = H w - c`` and ``yc_sq = ||yc||^2``: ``B^T r / n = -grad``,
    ``||r||^2 / n = yc_sq / n - c^T w + w^T grad`` and ``r^T yc / n = yc_sq / n - c^T w``.
    The expansion of ``||r||^2`` loses about ``eps * yc_sq`` to cancellation, far below
    the tolerances it is compared with (the outer solver certifies with the residual
    of the whole design).
    """
    cw, wg = float(c @ w), float(w @ grad)
    s = dual_scaling(dual_norm(-grad - l2 * w, positive, np), l1)
    r_sq = max(yc_sq - n_samples * (cw - wg), 0.0)
    return gap_from_residual(r_sq, yc_sq - n_samples * cw, s, float(np.abs(w).sum()), float(w @ w),
                             l1, l2, n_samples)


def gram_coordinate_descent(H, c, yc_sq, n_samples, w, l1, l2, positive, tol, max_epochs,
                            anderson_m, gap_every=10):
    """Solve the working-set problem in place on ``w``; return the epochs run.

    Only the Gram quantities enter (host arrays of size ``k^2`` and ``k``): on
    CuPy the solver forms them on the device with one product and the
    ``n x k`` block never leaves it.

    Parameters
    ----------
    H : ndarray of shape (k, k), C-contiguous
        ``B^T B / n_samples``; rows and columns of degenerate features are 0.
    c : ndarray of shape (k,)
        ``B^T yc / n_samples``.
    yc_sq : float
        ``||yc||^2`` of the centred target (for the gap checks).
    n_samples : int
    w : ndarray of shape (k,)
        Starting point (zero on degenerate features), updated in place.
    l1, l2 : float
        The penalties ``alpha * l1_ratio`` and ``alpha * (1 - l1_ratio)``.
    positive : bool
        Constrain ``w >= 0``.
    tol : float
        Stop when the working-set gap is at most ``tol``.
    max_epochs, anderson_m, gap_every : int
        Epoch budget, Anderson memory (0 disables it), gap-check period.
    """
    H = np.ascontiguousarray(H, dtype=np.float64)  # one compiled specialisation
    h_diag = np.ascontiguousarray(np.diag(H))
    denominators = h_diag + l2
    live = np.flatnonzero(h_diag > 0.0)
    grad = np.ascontiguousarray(H @ w - c)  # gradient of the smooth part without l2
    iterates = []
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        d_max, w_max = gram_cd_sweep(H, h_diag, denominators, live, w, grad, float(l1), bool(positive))
        if anderson_m > 0:
            iterates.append(w.copy())
            if len(iterates) == anderson_m + 1:
                w_acc = anderson_extrapolation(iterates)
                iterates = []
                h_acc = None
                if w_acc is not None and np.all(np.isfinite(w_acc)) and not (positive and np.any(w_acc < 0)):
                    h_acc = H @ w_acc  # kept for the new gradient when accepted
                    if quadratic_objective(h_acc, c, w_acc, l1, l2) < quadratic_objective(grad + c, c, w, l1, l2):
                        w[:] = w_acc
                    else:
                        h_acc = None
                grad = np.ascontiguousarray((H @ w if h_acc is None else h_acc) - c)  # also clears drift

        stagnated = d_max <= 4.0 * _EPS * w_max
        if stagnated or epoch % gap_every == 0:
            if stagnated or gram_gap(yc_sq, c, w, grad, l1, l2, positive, n_samples) <= tol:
                break
    return epoch


@njit(cache=True, nogil=True)
def gram_cd_sweep(H, h_diag, denominators, live, w, grad, l1, positive):
    """One cyclic sweep over the coordinates ``live``, updating ``w`` and ``grad = H w - c`` in place.

    Parameters
    ----------
    H : float64 ndarray of shape (k, k), C-contiguous
    h_diag, denominators : float64 ndarray of shape (k,)
        ``diag(H)`` and ``diag(H) + l2``.
    live : int ndarray
        The coordinates with ``H_jj > 0``, in sweep order.
    w, grad : float64 ndarray of shape (k,)
    l1 : float
    positive : bool

    Returns
    -------
    (float, float)
        The largest ``|Δw_j|`` of the sweep and the largest ``|w_j|`` visited.
    """
    k = w.shape[0]
    d_max = 0.0
    w_max = 0.0
    for j in live:
        wj = w[j]
        gj = grad[j]
        if wj == 0.0 and gj >= -l1 and (positive or gj <= l1):
            continue  # stays at zero
        z = h_diag[j] * wj - gj
        if z > l1:
            new = (z - l1) / denominators[j]
        elif z < -l1 and not positive:
            new = (z + l1) / denominators[j]
        else:
            new = 0.0
        if new != wj:
            delta = new - wj
            w[j] = new
            for i in range(k):  # grad += delta * H[j]
                grad[i] += delta * H[j, i]
            if abs(delta) > d_max:
                d_max = abs(delta)
        if abs(new) > w_max:
            w_max = abs(new)
    return d_max, w_max
