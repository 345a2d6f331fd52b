"""The elastic-net objective, its dual and the duality gap.

Every solver of :mod:`granger_prune.lasso` minimises scikit-learn's
:class:`~sklearn.linear_model.ElasticNet` objective (the lasso at
``l1_ratio=1``)::

    P(w, b) = (1 / (2 n)) ||y - X w - b||_2^2
              + alpha * l1_ratio * ||w||_1 + (alpha * (1 - l1_ratio) / 2) ||w||_2^2

with ``n = n_samples``, the intercept ``b`` fitted only when ``fit_intercept``,
and optionally ``w >= 0`` (``positive``).  At the optimal intercept the problem
is the same on the centred ``Xc``, ``yc``; the gap below is that of the centred
problem.  Write ``l1 = alpha * l1_ratio``, ``l2 = alpha * (1 - l1_ratio)`` and
``r = yc - Xc w``.  The elastic net is a lasso on ``[Xc; sqrt(n l2) I]``, whose
rescaled residual is a dual-feasible point ``theta = s r`` with::

    g = Xc^T r / n - l2 w,   s = min(1, l1 / ||g||_inf)     (max(g) when positive)

and the gap is::

    G(w) = ((1 + s^2) ||r||^2 / 2 - s r^T yc) / n + l1 ||w||_1 + l2 (1 + s^2) ||w||^2 / 2

which is on the scale of ``P``, as ``sklearn.linear_model.ElasticNet.dual_gap_``
(scikit-learn >= 1.0) is.
"""

import numpy as np

from ..backend import get_namespace
from ._dual import dual_norm, dual_scaling, gap_from_residual
from ._operator import ImplicitDesign
from ._validation import as_coef, as_design, check_alpha, check_bool, check_l1_ratio
from .problem import Problem


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


def alpha_max(X, y, fit_intercept=True, *, l1_ratio=1.0, positive=False):
    """Smallest ``alpha`` for which the solution is ``w = 0``.

    ``alpha_max = ||Xc^T yc||_inf / (n_samples * l1_ratio)`` (``max(Xc^T yc)``
    when ``positive``), with ``Xc``, ``yc`` centred when ``fit_intercept``; no
    centred copy of ``X`` is made.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design matrix (NumPy or CuPy, float32 or float64).
    y : ndarray of shape (n_samples,)
        Target.
    fit_intercept : bool, default=True
        Whether the model fits an intercept.
    l1_ratio : float in (0, 1], default=1.0
        Elastic-net mixing (1 is the lasso).
    positive : bool, default=False
        Whether the coefficients are constrained to be non-negative.

    Returns
    -------
    float
        ``alpha_max`` on the raw scale of ``X`` and ``y`` (0.0 when no feature
        correlates with ``y`` in the allowed direction).
    """
    l1_ratio = check_l1_ratio(l1_ratio)
    positive = check_bool(positive, "positive")
    return Problem(X, y, fit_intercept).alpha_max(l1_ratio, positive)


def _checked_point(X, y, w, alpha, l1_ratio):
    """Validated ``(xp, X, y, w, alpha, l1_ratio)`` for evaluating at a point ``w``."""
    xp = get_namespace(X, y, w)
    X, y = as_design(X, y, xp)
    return (xp, X, y, as_coef(w, X.shape[1], xp), check_alpha(alpha), check_l1_ratio(l1_ratio))


def primal_objective(X, y, w, alpha, intercept=0.0, *, l1_ratio=1.0):
    """The objective ``P(w, b)`` of the module docstring.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    w : ndarray of shape (n_features,)
    alpha : float
        Regularisation strength (>= 0).
    intercept : float, default=0.0
        The intercept ``b``.
    l1_ratio : float in (0, 1], default=1.0

    Returns
    -------
    float
    """
    xp, X, y, w, alpha, l1_ratio = _checked_point(X, y, w, alpha, l1_ratio)
    r = y - ImplicitDesign(X, None, None, xp).matvec(w) - float(intercept)
    return (0.5 * float(r @ r) / X.shape[0] + alpha * l1_ratio * float(xp.sum(xp.abs(w)))
            + 0.5 * alpha * (1.0 - l1_ratio) * float(w @ w))


def duality_gap(X, y, w, alpha, fit_intercept=True, *, l1_ratio=1.0, positive=False):
    """The duality gap ``G(w)`` of the module docstring, on the scale of ``P``.

    Non-negative, and zero exactly at a solution; the quantity scikit-learn's
    ``dual_gap_`` reports.  One pass over ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    w : ndarray of shape (n_features,)
    alpha : float
    fit_intercept : bool, default=True
        Whether the intercept is fitted (implicit centring).
    l1_ratio : float in (0, 1], default=1.0
    positive : bool, default=False

    Returns
    -------
    float
    """
    xp, X, y, w, alpha, l1_ratio = _checked_point(X, y, w, alpha, l1_ratio)
    positive = check_bool(positive, "positive")
    if positive and bool(xp.any(w < 0)):
        return float("inf")
    problem = Problem(X, y, fit_intercept)
    n_samples = X.shape[0]
    l1, l2 = alpha * l1_ratio, alpha * (1.0 - l1_ratio)
    yc = problem.yc
    r = yc - problem.design.matvec(w)
    g = problem.design.rmatvec(r) / n_samples - l2 * w
    s = dual_scaling(dual_norm(g, positive, xp), l1)
    return gap_from_residual(float(r @ r), float(r @ yc), s, float(xp.sum(xp.abs(w))),
                             float(w @ w), l1, l2, n_samples)
