"""Lasso for the Granger design: working-set coordinate descent.

The unrestricted Granger model regresses the per-step loss change ``y`` (shape
``(n_samples,)``) on the squared parameter changes ``X`` (shape
``(n_samples, n_features)``, dense, non-negative, strongly correlated columns,
usually ``n_features >> n_samples``).  Every function here minimises exactly the
objective of :class:`sklearn.linear_model.Lasso`::

    (1 / (2 * n_samples)) * ||y - X w - b||_2^2 + alpha * ||w||_1

where the intercept ``b`` is fitted only when ``fit_intercept=True``.

Design notes
------------
* Fully parallel (Jacobi / shotgun) coordinate updates diverge on correlated
  non-negative columns, so the solver is cyclic coordinate descent restricted to
  a *working set* (celer / skglm style).  Each outer iteration makes a single
  pass ``X.T @ r`` over the full design, which gives the duality gap of the full
  problem, the KKT violations and the next working set.  The inner solver runs
  on the working set's Gram matrix, ``O(|ws|)`` per coordinate update, with
  Anderson extrapolation of the iterates.
* The intercept is handled by implicit centring: a centred copy of ``X`` is
  never built.  The full pass uses ``Xc.T @ r = X.T @ r - x_mean * sum(r)``;
  only the (small) working-set block ``X[:, ws]`` is copied and centred before
  its Gram matrix is formed.  (Centring that ``n_samples x |ws|`` block costs
  the same as the copy and is more accurate than ``X_ws.T @ X_ws - n *
  outer(x_mean, x_mean)``, which cancels digits when a column's mean dominates
  its spread, as it does for non-negative features.)
* Columns that are exactly zero (already pruned parameters) or numerically
  constant when centred get the coefficient 0 and never enter a division.
* The inner solve limits BLAS to one thread (``threadpoolctl``): its many
  ``|ws|``-sized calls run several times slower multi-threaded, far slower
  when another process competes for the cores.
* Everything is computed in float64.  The array namespace is taken from the
  inputs with :func:`granger_prune.backend.get_namespace`, so the full passes
  can run on CuPy later; the small inner solve always runs on the host.  Only
  NumPy is supported and tested today.
* ``alpha`` is on the raw scale of ``X``.  The natural unit is
  :func:`alpha_max`, the smallest ``alpha`` giving ``w = 0``.
"""

import numbers
import warnings
from typing import NamedTuple

import numpy as np
from scipy.linalg.blas import daxpy as _daxpy
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

from .backend import get_namespace, to_numpy
from .exceptions import ConvergenceWarning

__all__ = [
    "CausalLasso",
    "LassoResult",
    "alpha_max",
    "duality_gap",
    "lasso_coordinate_descent",
    "primal_objective",
    "soft_threshold",
]

_EPS = np.finfo(np.float64).eps
_THREADPOOLS = []  # lazily created ThreadpoolController (creating one costs ~1 ms)


def _single_threaded_blas():
    """Context manager limiting the BLAS libraries to one thread.

    The inner solver makes many small BLAS calls (``|ws|``-sized); a
    multi-threaded OpenBLAS runs them several times slower, and far slower
    still when another process competes for the cores.
    """
    if not _THREADPOOLS:
        _THREADPOOLS.append(ThreadpoolController())
    return _THREADPOOLS[0].limit(limits=1, user_api="blas")


# ----------------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------------


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number, got alpha={alpha!r}")
    if not np.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got alpha={alpha!r}")
    return float(alpha)


def _check_tol(tol):
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a real number, got tol={tol!r}")
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be a finite number > 0, got tol={tol!r}")
    return float(tol)


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def _check_max_iter(max_iter):
    return _check_int(max_iter, "max_iter", 1)


def _check_fit_intercept(fit_intercept):
    if not isinstance(fit_intercept, (bool, np.bool_)):
        raise TypeError(
            f"fit_intercept must be a bool, got fit_intercept={fit_intercept!r}"
        )
    return bool(fit_intercept)


def _as_design(X, y, xp):
    """Return ``X`` (2-D) and ``y`` (1-D) as float64 arrays of namespace ``xp``."""
    X = xp.asarray(X, dtype=xp.float64)
    y = xp.asarray(y, dtype=xp.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got X.shape={X.shape}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got y.shape={y.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            "X and y have different numbers of samples: "
            f"X.shape={X.shape}, y.shape={y.shape}"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got X.shape={X.shape}")
    return X, y


def _as_coef(w, n_features, xp, name="w"):
    w = xp.asarray(w, dtype=xp.float64)
    if w.shape != (n_features,):
        raise ValueError(f"{name} must have shape ({n_features},), got {name}.shape={w.shape}")
    return w


def _centring(X, y, fit_intercept, xp):
    """Column means of ``X``, mean of ``y`` and the centred target.

    Returns ``(x_mean, y_mean, yc)`` with ``x_mean`` of shape ``(n_features,)``
    (``None`` when ``fit_intercept`` is False), ``y_mean`` a float and ``yc`` of
    shape ``(n_samples,)``.
    """
    if not fit_intercept:
        return None, 0.0, y
    x_mean = xp.mean(X, axis=0)
    y_mean = float(xp.mean(y))
    return x_mean, y_mean, y - y_mean


def _centred_xt(X, v, x_mean, xp):
    """``Xc.T @ v`` without forming ``Xc = X - x_mean``; shape ``(n_features,)``."""
    out = X.T @ v
    if x_mean is not None:
        out = out - x_mean * float(xp.sum(v))
    return out


def _centred_residual(X, yc, w, x_mean, xp):
    """``r = yc - Xc @ w`` using only the support of ``w``; shape ``(n_samples,)``."""
    supp = xp.nonzero(w)[0]
    if supp.shape[0] == 0:
        return xp.array(yc, copy=True)
    w_s = w[supp]
    if 4 * supp.shape[0] < X.shape[1]:
        fit = X[:, supp] @ w_s
    else:
        fit = X @ w
    if x_mean is not None:
        fit = fit - float(x_mean[supp] @ w_s)
    return yc - fit


def _gap_from_residual(r, yc, dual_norm, l1_norm, alpha, n_samples):
    """Duality gap of the lasso at the rescaled-residual dual point.

    ``dual_norm`` is ``max_j |Xc_j^T r| / n_samples``.  The dual point is
    ``theta = s * r`` with ``s = min(1, alpha / dual_norm)`` and the gap is on the
    scale of the primal objective (divided by ``n_samples``).
    """
    r_norm2 = float(r @ r)
    ry = float(r @ yc)
    primal = 0.5 * r_norm2 / n_samples + alpha * l1_norm
    scale = alpha / dual_norm if dual_norm > alpha else 1.0
    dual = (scale * ry - 0.5 * scale * scale * r_norm2) / n_samples
    return primal - dual


# ----------------------------------------------------------------------------
# the mathematics
# ----------------------------------------------------------------------------


def soft_threshold(x, threshold):
    """Soft-thresholding operator, the proximal operator of ``threshold * |.|``.

    ``soft_threshold(x, t) = sign(x) * max(|x| - t, 0)``.

    Parameters
    ----------
    x : float or ndarray of any shape
        Input values.
    threshold : float or ndarray broadcastable to ``x``
        Non-negative threshold(s).

    Returns
    -------
    float or ndarray of the shape of ``x``
        The thresholded values (exact zeros where ``|x| <= threshold``).
    """
    if np.isscalar(x) and np.isscalar(threshold):
        if x > threshold:
            return float(x - threshold)
        if x < -threshold:
            return float(x + threshold)
        return 0.0
    xp = get_namespace(x, threshold)
    x = xp.asarray(x)
    return xp.sign(x) * xp.maximum(xp.abs(x) - threshold, 0.0)


def alpha_max(X, y, fit_intercept=True):
    """Smallest ``alpha`` for which the lasso solution is ``w = 0``.

    ``alpha_max = ||Xc^T yc||_inf / n_samples`` where ``Xc`` and ``yc`` are ``X``
    and ``y`` centred when ``fit_intercept`` is True (uncentred otherwise).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design matrix.
    y : ndarray of shape (n_samples,)
        Target.
    fit_intercept : bool, default=True
        Whether the lasso fits an intercept (then ``X`` and ``y`` are centred
        implicitly; no centred copy of ``X`` is made).

    Returns
    -------
    float
        ``alpha_max`` on the raw scale of ``X`` and ``y``.
    """
    xp = get_namespace(X, y)
    X, y = _as_design(X, y, xp)
    fit_intercept = _check_fit_intercept(fit_intercept)
    x_mean, _, yc = _centring(X, y, fit_intercept, xp)
    xty = _centred_xt(X, yc, x_mean, xp)
    return float(xp.max(xp.abs(xty))) / X.shape[0]


def primal_objective(X, y, w, alpha, intercept=0.0):
    """Lasso objective ``(1 / (2 * n_samples)) * ||y - X w - b||_2^2 + alpha * ||w||_1``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design matrix.
    y : ndarray of shape (n_samples,)
        Target.
    w : ndarray of shape (n_features,)
        Coefficients.
    alpha : float
        Regularisation strength (>= 0).
    intercept : float, default=0.0
        The intercept ``b``.

    Returns
    -------
    float
        The objective value.
    """
    xp = get_namespace(X, y, w)
    X, y = _as_design(X, y, xp)
    w = _as_coef(w, X.shape[1], xp)
    alpha = _check_alpha(alpha)
    r = y - X @ w - float(intercept)
    return 0.5 * float(r @ r) / X.shape[0] + alpha * float(xp.sum(xp.abs(w)))


def duality_gap(X, y, w, alpha, fit_intercept=True):
    """Duality gap of the lasso at ``w``, on the scale of the objective.

    The primal is ``P(w) = (1 / (2 * n_samples)) * ||yc - Xc w||_2^2 +
    alpha * ||w||_1`` (``Xc``, ``yc`` centred when ``fit_intercept``, which is the
    objective with the intercept at its optimum ``b = mean(y) - mean(X, 0) @ w``).
    The dual point is the rescaled residual ``theta = s * r`` with ``r = yc - Xc
    w`` and ``s = min(1, alpha * n_samples / ||Xc^T r||_inf)``, and the dual
    objective is ``D(theta) = (theta^T yc - ||theta||^2 / 2) / n_samples``.  The
    gap ``P(w) - D(theta)`` is non-negative and zero exactly at a solution; it
    is the quantity scikit-learn's ``Lasso.dual_gap_`` reports.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design matrix.
    y : ndarray of shape (n_samples,)
        Target.
    w : ndarray of shape (n_features,)
        Coefficients.
    alpha : float
        Regularisation strength (>= 0).
    fit_intercept : bool, default=True
        Whether the intercept is fitted (implicit centring).

    Returns
    -------
    float
        The duality gap.
    """
    xp = get_namespace(X, y, w)
    X, y = _as_design(X, y, xp)
    w = _as_coef(w, X.shape[1], xp)
    alpha = _check_alpha(alpha)
    fit_intercept = _check_fit_intercept(fit_intercept)
    n_samples = X.shape[0]
    x_mean, _, yc = _centring(X, y, fit_intercept, xp)
    r = _centred_residual(X, yc, w, x_mean, xp)
    xtr = _centred_xt(X, r, x_mean, xp)
    dual_norm = float(xp.max(xp.abs(xtr))) / n_samples
    l1_norm = float(xp.sum(xp.abs(w)))
    return _gap_from_residual(r, yc, dual_norm, l1_norm, alpha, n_samples)


# ----------------------------------------------------------------------------
# the solver
# ----------------------------------------------------------------------------


class LassoResult(NamedTuple):
    """Result of :func:`lasso_coordinate_descent`.

    Attributes
    ----------
    w : ndarray of shape (n_features,)
        Coefficients (float64, same namespace as the input).
    intercept : float
        Fitted intercept (0.0 when ``fit_intercept=False``).
    dual_gap : float
        Duality gap of the full problem at ``w`` (scale of the objective).
    n_iter : int
        Number of outer (working-set) iterations run.
    """

    w: object
    intercept: float
    dual_gap: float
    n_iter: int


def _inner_objective(H, c, w, alpha):
    """``0.5 w^T H w - c^T w + alpha ||w||_1`` (the working-set objective up to a constant)."""
    return 0.5 * float(w @ (H @ w)) - float(c @ w) + alpha * float(np.abs(w).sum())


def _anderson(snapshots):
    """Anderson extrapolation of the last iterates (rows of ``snapshots``)."""
    W = np.asarray(snapshots)
    U = np.diff(W, axis=0)
    C = U @ U.T
    try:
        z = np.linalg.solve(C, np.ones(C.shape[0]))
    except np.linalg.LinAlgError:
        return None
    s = z.sum()
    if not np.isfinite(s) or s == 0.0:
        return None
    return (z / s) @ W[1:]


def _working_set_cd(Xws, yc, c, H, w, alpha, tol_in, max_epochs, anderson_m, gap_freq):
    """Cyclic coordinate descent on a working set, using its Gram matrix.

    Solves ``min_w (1 / (2 n)) ||yc - Xws w||^2 + alpha ||w||_1`` over the
    working-set coefficients, in place on ``w``.

    Parameters
    ----------
    Xws : ndarray of shape (n_samples, n_ws)
        Centred working-set columns (host NumPy).
    yc : ndarray of shape (n_samples,)
        Centred target (host NumPy).
    c : ndarray of shape (n_ws,)
        ``Xws.T @ yc / n_samples``.
    H : ndarray of shape (n_ws, n_ws)
        ``Xws.T @ Xws / n_samples``; rows and columns of degenerate (zero or
        constant) features are zero.
    w : ndarray of shape (n_ws,)
        Starting point, updated in place.
    alpha, tol_in : float
        Penalty and inner duality-gap tolerance.
    max_epochs, anderson_m, gap_freq : int
        Epoch budget, Anderson memory (0 disables it), gap-check period.

    Returns
    -------
    int
        Number of epochs run.
    """
    n_samples = Xws.shape[0]
    n_ws = w.shape[0]
    hdiag = np.diag(H).tolist()
    rows = list(H)  # row views; H is symmetric and C-contiguous
    grad = np.ascontiguousarray(H @ w - c)
    thresholds = [alpha / h if h > 0.0 else 0.0 for h in hdiag]
    live = [j for j in range(n_ws) if hdiag[j] > 0.0]
    w_list = w.tolist()  # Python floats: the sweep reads and writes scalars
    snapshots = []
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        d_max = 0.0
        w_max = 0.0
        for j in live:
            wj = w_list[j]
            gj = grad.item(j)
            if wj == 0.0 and -alpha <= gj <= alpha:
                continue
            h = hdiag[j]
            z = wj - gj / h
            t = thresholds[j]
            if z > t:
                new = z - t
            elif z < -t:
                new = z + t
            else:
                new = 0.0
            if new != wj:
                delta = new - wj
                w_list[j] = new
                # grad += delta * H[j], in place (positional arguments: the
                # keyword form costs more than the update itself)
                _daxpy(rows[j], grad, n_ws, delta)
                if abs(delta) > d_max:
                    d_max = abs(delta)
            if abs(new) > w_max:
                w_max = abs(new)
        w_arr = np.array(w_list)

        if anderson_m > 0:
            snapshots.append(w_arr)
            if len(snapshots) == anderson_m + 1:
                w_acc = _anderson(snapshots)
                snapshots = []
                if w_acc is not None and np.all(np.isfinite(w_acc)):
                    if _inner_objective(H, c, w_acc, alpha) < _inner_objective(H, c, w_arr, alpha):
                        w_arr = w_acc
                        w_list = w_arr.tolist()
                # refresh the gradient (also removes accumulated rounding)
                grad = np.ascontiguousarray(H @ w_arr - c)

        stagnated = d_max <= 4.0 * _EPS * w_max
        if stagnated or epoch % gap_freq == 0:
            r = yc - Xws @ w_arr
            dual_norm = float(np.max(np.abs(Xws.T @ r))) / n_samples
            gap = _gap_from_residual(r, yc, dual_norm, float(np.abs(w_arr).sum()), alpha, n_samples)
            if gap <= tol_in or stagnated:
                break
    w[:] = w_list
    return epoch


def _lasso_cd(
    X,
    y,
    alpha,
    fit_intercept,
    w_init,
    tol,
    max_iter,
    p0,
    max_epochs,
    anderson_m,
):
    """Working-set coordinate descent; returns ``(LassoResult, converged)``."""
    xp = get_namespace(X, y, w_init)
    X, y = _as_design(X, y, xp)
    alpha = _check_alpha(alpha)
    fit_intercept = _check_fit_intercept(fit_intercept)
    tol = _check_tol(tol)
    max_iter = _check_max_iter(max_iter)
    p0 = _check_int(p0, "p0", 1)
    max_epochs = _check_int(max_epochs, "max_epochs", 1)
    anderson_m = _check_int(anderson_m, "anderson_m", 0)
    if not (bool(xp.all(xp.isfinite(X))) and bool(xp.all(xp.isfinite(y)))):
        raise ValueError("X and y must not contain NaN or infinity")

    n_samples, n_features = X.shape
    x_mean, y_mean, yc = _centring(X, y, fit_intercept, xp)
    yc_host = to_numpy(yc)
    tol_abs = tol * float(yc @ yc) / n_samples

    xty = _centred_xt(X, yc, x_mean, xp)
    a_max = float(xp.max(xp.abs(xty))) / n_samples

    def _result(w, gap, n_iter):
        intercept = y_mean - float(x_mean @ w) if fit_intercept else 0.0
        return LassoResult(w, float(intercept), float(gap), int(n_iter))

    if alpha >= a_max:
        # w = 0 satisfies the KKT conditions exactly.
        w = xp.zeros(n_features, dtype=xp.float64)
        gap = _gap_from_residual(yc, yc, a_max, 0.0, alpha, n_samples)
        return _result(w, max(gap, 0.0), 0), True

    if w_init is None:
        w = xp.zeros(n_features, dtype=xp.float64)
    else:
        w = xp.array(_as_coef(w_init, n_features, xp, name="w_init"), copy=True)
        if not bool(xp.all(xp.isfinite(w))):
            raise ValueError("w_init must not contain NaN or infinity")

    dead = np.zeros(n_features, dtype=bool)  # zero or constant columns seen so far
    ws_size = 0
    n_iter = 0
    converged = False
    prev_gap = np.inf
    while True:
        r = _centred_residual(X, yc, w, x_mean, xp)
        xtr = _centred_xt(X, r, x_mean, xp)
        abs_grad = to_numpy(xp.abs(xtr)) / n_samples
        abs_grad[dead] = 0.0  # numerically constant columns: rounding noise only
        l1_norm = float(xp.sum(xp.abs(w)))
        gap = _gap_from_residual(r, yc, float(abs_grad.max()), l1_norm, alpha, n_samples)
        if gap <= tol_abs:
            converged = True
            break
        if n_iter >= max_iter:
            break

        # --- working set: the support plus the largest KKT violations -------
        w_host = to_numpy(w)
        support = np.flatnonzero(w_host)
        score = abs_grad - alpha  # violation of |Xc_j^T r| / n <= alpha at w_j = 0
        score[dead] = -np.inf
        score[support] = np.inf
        n_candidates = int(np.count_nonzero(score > 0.0))
        target = max(p0, 2 * support.size, ws_size)
        if gap > 0.5 * prev_gap and n_iter > 0:
            target = max(target, 2 * ws_size)  # slow progress: grow geometrically
        ws_size = min(target, n_features)
        k = min(ws_size, n_candidates)
        if k == 0:
            # w = 0 and no live feature violates |Xc_j^T r| / n <= alpha: optimal
            converged = True
            break
        if k < n_features:
            ws = np.argpartition(-score, k - 1)[:k]
        else:
            ws = np.arange(n_features)
        ws = np.sort(ws[score[ws] > 0.0])
        prev_gap = gap

        # --- Gram matrix of the centred working-set block ---------------------
        ws_x = xp.asarray(ws)
        block = X[:, ws_x]
        max_abs = to_numpy(xp.max(xp.abs(block), axis=0))
        if x_mean is not None:
            block = block - x_mean[ws_x]
        H = to_numpy(block.T @ block) / n_samples
        block = to_numpy(block)
        c = to_numpy(xty[ws_x]) / n_samples
        hdiag = np.diag(H)
        degenerate = hdiag <= (64.0 * _EPS * max_abs) ** 2
        w_ws = np.array(w_host[ws], dtype=np.float64)
        if degenerate.any():
            dead[ws[degenerate]] = True
            H[degenerate, :] = 0.0
            H[:, degenerate] = 0.0
            w_ws[degenerate] = 0.0

        with _single_threaded_blas():
            _working_set_cd(
                block,
                yc_host,
                c,
                H,
                w_ws,
                alpha,
                tol_in=max(0.3 * gap, 0.3 * tol_abs),
                max_epochs=max_epochs,
                anderson_m=anderson_m,
                gap_freq=10,
            )
        w_host[ws] = w_ws
        w = xp.asarray(w_host)
        n_iter += 1

    return _result(w, gap, n_iter), converged


def lasso_coordinate_descent(
    X,
    y,
    alpha,
    *,
    fit_intercept=True,
    w_init=None,
    tol=1e-4,
    max_iter=1000,
    p0=100,
    max_epochs=10_000,
    anderson_m=5,
):
    """Solve the lasso by working-set coordinate descent.

    Minimises::

        (1 / (2 * n_samples)) * ||y - X w - b||_2^2 + alpha * ||w||_1

    with the intercept ``b`` fitted only when ``fit_intercept=True`` (implicit
    centring; no centred copy of ``X`` is made).

    Each outer iteration makes one pass ``X.T @ r`` over the full design, which
    gives the duality gap of the full problem and the KKT violations.  The
    working set is the current support plus the features with the largest
    violations; its size is ``max(p0, 2 * |support|)`` and at least the previous
    size, doubled when the gap did not halve.  Cyclic coordinate descent with
    Anderson extrapolation then runs on the working set's Gram matrix until the
    working-set duality gap falls below ``0.3`` times the current full gap (or
    ``0.3 * tol * ||yc||^2 / n_samples``), or no coordinate moves any more.  The
    solver stops when the full-problem gap is at most ``tol * ||yc||_2^2 /
    n_samples`` (scikit-learn's criterion, ``yc`` centred when
    ``fit_intercept``).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design matrix (converted to float64; never modified).  Exactly-zero and
        constant columns get the coefficient 0.
    y : ndarray of shape (n_samples,)
        Target.
    alpha : float
        Regularisation strength, ``>= 0``, on the raw scale of ``X``.
        ``alpha >= alpha_max(X, y, fit_intercept)`` gives ``w = 0`` exactly.
    fit_intercept : bool, default=True
        Whether to fit the intercept ``b``.
    w_init : ndarray of shape (n_features,), default=None
        Warm start (zeros when None).
    tol : float, default=1e-4
        Relative tolerance on the duality gap (``> 0``).
    max_iter : int, default=1000
        Maximum number of outer (working-set) iterations (``>= 1``).
    p0 : int, default=100
        Initial working-set size.
    max_epochs : int, default=10000
        Maximum number of coordinate-descent epochs per inner solve.
    anderson_m : int, default=5
        Number of iterates used by Anderson extrapolation in the inner solver
        (0 disables it).

    Returns
    -------
    LassoResult
        Named tuple ``(w, intercept, dual_gap, n_iter)``: ``w`` of shape
        ``(n_features,)``, ``intercept`` float, ``dual_gap`` the final
        full-problem duality gap (objective scale), ``n_iter`` the number of
        outer iterations.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` outer iterations did not reach the tolerance.

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite input or out-of-range arguments.
    TypeError
        On arguments of the wrong type.
    """
    result, converged = _lasso_cd(
        X, y, alpha, fit_intercept, w_init, tol, max_iter, p0, max_epochs, anderson_m
    )
    if not converged:
        warnings.warn(
            f"lasso coordinate descent did not converge in max_iter={max_iter} "
            f"iterations: duality gap {result.dual_gap:.3e}; increase max_iter "
            "or tol, or use a larger alpha",
            ConvergenceWarning,
            stacklevel=2,
        )
    return result


# ----------------------------------------------------------------------------
# the estimator
# ----------------------------------------------------------------------------


def _validate(estimator, X, y=None, reset=True):
    kwargs = dict(dtype=np.float64)  # finiteness is checked by default
    if y is None and not reset:
        if _sk_validate_data is not None:
            return _sk_validate_data(estimator, X, reset=False, **kwargs)
        return estimator._validate_data(X, reset=False, **kwargs)  # pragma: no cover
    if _sk_validate_data is not None:
        return _sk_validate_data(estimator, X, y, reset=reset, y_numeric=True, **kwargs)
    return estimator._validate_data(X, y, reset=reset, y_numeric=True, **kwargs)  # pragma: no cover


class CausalLasso(RegressorMixin, BaseEstimator):
    """Lasso for the unrestricted Granger model ``dL^t = sum_k gamma_k (dtheta_k^t)^2``.

    Minimises exactly the objective of :class:`sklearn.linear_model.Lasso`::

        (1 / (2 * n_samples)) * ||y - X w - b||_2^2 + alpha * ||w||_1

    with the intercept ``b`` fitted only when ``fit_intercept=True``, by
    working-set coordinate descent (:func:`lasso_coordinate_descent`).  A
    feature (parameter) is Granger-causal for the loss when its coefficient is
    non-zero; a lasso keeps at most ``n_samples`` non-zero coefficients.

    Parameters
    ----------
    alpha : float, default=1.0
        Regularisation strength, ``>= 0``, on the raw scale of ``X``; express it
        relative to :func:`alpha_max`.
    fit_intercept : bool, default=True
        Whether to fit the intercept ``b`` (implicit centring of ``X`` and ``y``).
    tol : float, default=1e-4
        The fit stops when the duality gap is at most
        ``tol * ||y - mean(y)||_2^2 / n_samples`` (``y`` uncentred when
        ``fit_intercept=False``), as in scikit-learn.
    max_iter : int, default=1000
        Maximum number of outer (working-set) iterations.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Coefficients ``w``.
    intercept_ : float
        Intercept ``b`` (0.0 when ``fit_intercept=False``).
    support_ : ndarray of shape (n_features,), dtype=bool
        Mask of the non-zero coefficients.
    dual_gap_ : float
        Duality gap at the end of the fit (scale of the objective).
    n_iter_ : int
        Number of outer iterations run.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` has string column names.

    Notes
    -----
    Trajectory residuals are serially correlated and the lasso selects on the
    data it is fitted to: do not read p-values off this fit.
    """

    def __init__(self, alpha=1.0, *, fit_intercept=True, tol=1e-4, max_iter=1000):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X, y):
        """Fit the lasso.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Design matrix (dense, finite).
        y : array-like of shape (n_samples,)
            Target (finite).

        Returns
        -------
        self : CausalLasso
            The fitted estimator.
        """
        alpha = _check_alpha(self.alpha)
        fit_intercept = _check_fit_intercept(self.fit_intercept)
        tol = _check_tol(self.tol)
        max_iter = _check_max_iter(self.max_iter)
        X, y = _validate(self, X, y, reset=True)
        result, converged = _lasso_cd(
            X, y, alpha, fit_intercept, None, tol, max_iter, p0=100, max_epochs=10_000,
            anderson_m=5,
        )
        if not converged:
            warnings.warn(
                f"CausalLasso did not converge in max_iter={max_iter} iterations: "
                f"duality gap {result.dual_gap:.3e}; increase max_iter or tol, "
                "or use a larger alpha",
                ConvergenceWarning,
                stacklevel=2,
            )
        self.coef_ = to_numpy(result.w)
        self.intercept_ = float(result.intercept)
        self.support_ = self.coef_ != 0.0
        self.dual_gap_ = float(result.dual_gap)
        self.n_iter_ = int(result.n_iter)
        return self

    def predict(self, X):
        """Predict ``X @ coef_ + intercept_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples,)
            Predictions.
        """
        check_is_fitted(self)
        X = _validate(self, X, reset=False)
        return X @ self.coef_ + self.intercept_
