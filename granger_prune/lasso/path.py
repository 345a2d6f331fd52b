"""Regularisation paths and the ``alpha`` that gives a support of ``k`` features.

:func:`lasso_path` solves the elastic net on a decreasing geometric grid from
``alpha_max``, warm-starting each fit from the previous solution.  The
sequential strong rule (Tibshirani et al. 2012) guesses the new active set,
``|g_j(alpha_prev)| >= l1_ratio * (2 alpha - alpha_prev)``, and seeds the first
working set with it; the solver's full pass then checks the KKT conditions on
every feature and adds the violators, so the rule never costs correctness.

:func:`alpha_for_support` walks down such a grid until the support reaches
``k`` and bisects (in ``log alpha``) the last step.  A lasso on ``T`` samples
keeps at most ``T`` non-zero coefficients, so ``k > T`` is an error.
"""

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse

from ..backend import to_numpy
from ..exceptions import GrangerPruneWarning, SupportLimitWarning
from ._validation import check_bool, check_int, check_l1_ratio, check_real
from .problem import Problem
from .solver import LassoResult, WorkingSetCD, _check_solver, _warn_not_converged, _solve_enet


@dataclass(frozen=True)
class LassoPath:
    """Solutions along a regularisation path (results of :func:`lasso_path`).

    Attributes
    ----------
    alphas : ndarray of shape (n_alphas,)
        Decreasing penalties.
    coefs : scipy.sparse.csc_array of shape (n_features, n_alphas)
        Coefficients (sparse: trajectory designs have up to 10^7 columns).
    intercepts, dual_gaps : ndarray of shape (n_alphas,)
    n_iters, n_passes, n_support : ndarray of shape (n_alphas,), int
        Outer iterations, passes over ``X`` and non-zero coefficients per fit.
    alpha_max : float
        The smallest ``alpha`` giving ``w = 0``.
    l1_ratio : float
    """

    alphas: np.ndarray
    coefs: object
    intercepts: np.ndarray
    dual_gaps: np.ndarray
    n_iters: np.ndarray
    n_passes: np.ndarray
    n_support: np.ndarray
    alpha_max: float
    l1_ratio: float

    def coef(self, i):
        """Dense coefficients of the ``i``-th fit, shape (n_features,)."""
        return self.coefs[:, [i]].toarray().ravel()

    def to_frame(self):
        """One row per fit: alpha, alpha_ratio, n_support, dual_gap, n_iter, n_passes."""
        return pd.DataFrame(dict(
            alpha=self.alphas, alpha_ratio=self.alphas / self.alpha_max if self.alpha_max else np.nan,
            n_support=self.n_support, dual_gap=self.dual_gaps, n_iter=self.n_iters,
            n_passes=self.n_passes))


def alpha_grid(alpha_max, n_alphas=100, eps=1e-3):
    """``n_alphas`` geometric values from ``alpha_max`` down to ``eps * alpha_max``."""
    n_alphas = check_int(n_alphas, "n_alphas", 1)
    eps = check_real(eps, "eps", low=0.0, low_open=True, high=1.0)
    return alpha_max * np.geomspace(1.0, eps, n_alphas)


def _strong_set(g, alpha, alpha_prev, l1_ratio, positive, xp):
    """Host indices of the features the sequential strong rule keeps."""
    violation = g if positive else xp.abs(g)
    return np.flatnonzero(to_numpy(violation >= l1_ratio * (2.0 * alpha - alpha_prev)))


def lasso_path(X, y, *, l1_ratio=1.0, n_alphas=100, eps=1e-3, alphas=None, fit_intercept=True,
               positive=False, tol=1e-4, max_iter=1000, column_scale=None, solver=WorkingSetCD(),
               max_support=None):
    """Elastic-net solutions on a decreasing grid of ``alpha``, warm-started.

    Minimises the objective of :func:`~granger_prune.lasso.enet_coordinate_descent`
    for every ``alpha``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        NumPy or CuPy, float32 or float64.
    y : ndarray of shape (n_samples,)
    l1_ratio : float in (0, 1], default=1.0
    n_alphas : int, default=100
        Grid size when ``alphas`` is None.
    eps : float in (0, 1], default=1e-3
        The grid runs from ``alpha_max`` to ``eps * alpha_max``.
    alphas : array-like, optional
        Explicit penalties (sorted decreasing here).
    fit_intercept, positive, tol, max_iter, column_scale
        As in :func:`~granger_prune.lasso.enet_coordinate_descent`.
    solver : WorkingSetCD, default=WorkingSetCD()
        The solver settings; with ``strong_rule`` (default) each fit's first
        working set is seeded with the strong-rule set.
    max_support : int >= 1, optional
        Stop after the first fit with at least this many non-zero
        coefficients (glmnet's ``dfmax``): the path then holds fewer
        ``alphas`` than asked for.

    Returns
    -------
    LassoPath

    Warns
    -----
    ConvergenceWarning
        For each fit that did not reach ``tol``.
    """
    l1_ratio = check_l1_ratio(l1_ratio)
    positive = check_bool(positive, "positive")
    if max_support is not None:
        check_int(max_support, "max_support", 1)
    strong_rule = _check_solver(solver).strong_rule
    problem = Problem(X, y, fit_intercept, column_scale)
    a_max = problem.alpha_max(l1_ratio, positive)
    if alphas is None:
        alphas = alpha_grid(a_max, n_alphas, eps)
    else:
        alphas = np.sort(np.asarray(alphas, dtype=np.float64).ravel())[::-1]
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or alphas[-1] < 0:
            raise ValueError("alphas must be a non-empty array of finite numbers >= 0")
    xp = problem.xp
    results, w, g, alpha_prev = [], None, None, None
    for alpha in alphas:
        strong = None
        if strong_rule and g is not None:
            strong = _strong_set(g, alpha, alpha_prev, l1_ratio, positive, xp)
        result, converged, g = _solve_enet(
            None, None, float(alpha), l1_ratio=l1_ratio, positive=positive, w_init=w, tol=tol,
            max_iter=max_iter, solver=solver, initial_working_set=strong, problem=problem)
        if not converged:
            _warn_not_converged(result, max_iter, f"lasso_path at alpha={alpha:.4g}", stacklevel=2)
        results.append(result)
        w, alpha_prev = result.w, alpha
        if max_support is not None and int(xp.count_nonzero(w)) >= max_support:
            alphas = alphas[:len(results)]
            break
    return _as_path(results, alphas, a_max, l1_ratio, problem.n_features)


def _as_path(results, alphas, a_max, l1_ratio, n_features):
    columns = []
    for result in results:
        w = to_numpy(result.w)
        index = np.flatnonzero(w)
        columns.append((index, w[index]))
    indptr = np.concatenate([[0], np.cumsum([index.size for index, _ in columns])])
    coefs = scipy.sparse.csc_array(
        (np.concatenate([v for _, v in columns]) if columns else np.empty(0),
         np.concatenate([i for i, _ in columns]) if columns else np.empty(0, dtype=np.int64),
         indptr), shape=(n_features, len(results)))
    return LassoPath(
        alphas=np.asarray(alphas, dtype=np.float64), coefs=coefs,
        intercepts=np.array([r.intercept for r in results]),
        dual_gaps=np.array([r.dual_gap for r in results]),
        n_iters=np.array([r.n_iter for r in results]),
        n_passes=np.array([r.n_passes for r in results]),
        n_support=np.diff(indptr), alpha_max=float(a_max), l1_ratio=l1_ratio)


class SupportSearch(NamedTuple):
    """Result of :func:`alpha_for_support`.

    Attributes
    ----------
    alpha : float
        The penalty found.
    n_support : int
        Non-zero coefficients at ``alpha``.
    result : LassoResult
        The fit at ``alpha``.
    n_fits : int
        Fits made by the search.
    """

    alpha: float
    n_support: int
    result: LassoResult
    n_fits: int


@dataclass(frozen=True)
class GridBisection:
    """How :func:`alpha_for_support` searches: down a geometric grid, then by bisection.

    Parameters
    ----------
    grid_ratio : float in (0, 1), default=0.7
        The walk's grid is ``alpha_max * grid_ratio^i``.
    min_ratio : float in (0, 1), default=1e-6
        The walk stops at ``min_ratio * alpha_max``.
    max_bisections : int >= 0, default=40
        Bisections of ``log alpha`` between the last two grid points.
    """

    grid_ratio: float = 0.7
    min_ratio: float = 1e-6
    max_bisections: int = 40

    def __post_init__(self):
        check_real(self.grid_ratio, "grid_ratio", low=0.0, low_open=True, high=1.0)
        check_real(self.min_ratio, "min_ratio", low=0.0, low_open=True, high=1.0)
        check_int(self.max_bisections, "max_bisections", 0)


def alpha_for_support(X, y, k, *, l1_ratio=1.0, fit_intercept=True, positive=False, tol=1e-6,
                      max_iter=1000, column_scale=None, search=GridBisection()):
    """The ``alpha`` whose solution has exactly ``k`` non-zero coefficients.

    Walks down the grid ``alpha_max * grid_ratio^i`` (warm starts) until the
    support reaches ``k``, then bisects ``log alpha`` between the last two
    grid points.  The support of the lasso is not always monotone in
    ``alpha`` and can jump by several features at once; when no ``alpha`` gives
    exactly ``k``, the smallest support above ``k`` is returned with a warning.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    k : int
        Target support size, ``1 <= k <= min(n_samples, n_features)``.
    l1_ratio, fit_intercept, positive, tol, max_iter, column_scale
        As in :func:`~granger_prune.lasso.enet_coordinate_descent` (a tight
        ``tol`` keeps spurious tiny coefficients out of the count).
    search : GridBisection, default=GridBisection()
        The grid and the bisections.

    Returns
    -------
    SupportSearch
        ``(alpha, n_support, result, n_fits)``.

    Raises
    ------
    ValueError
        When ``k > n_samples`` (a lasso on T samples keeps at most T
        coefficients; the message names T) or ``k > n_features``.

    Warns
    -----
    SupportLimitWarning
        When the support stops short of ``k`` down to ``min_ratio * alpha_max``.
    GrangerPruneWarning
        When no ``alpha`` gives exactly ``k``.
    """
    problem = Problem(X, y, fit_intercept, column_scale)
    k = check_int(k, "k", 1)
    n_samples, n_features = problem.n_samples, problem.n_features
    if k > n_samples:
        raise ValueError(
            f"k={k} exceeds the number of samples T={n_samples}: a lasso on T samples keeps at "
            "most T non-zero coefficients; record more steps or ask for fewer features")
    if k > n_features:
        raise ValueError(f"k={k} exceeds the number of features n_features={n_features}")
    if not isinstance(search, GridBisection):
        raise TypeError(f"search must be a GridBisection, got {search!r}")
    grid_ratio, min_ratio, max_bisections = search.grid_ratio, search.min_ratio, search.max_bisections
    l1_ratio = check_l1_ratio(l1_ratio)
    n_fits = 0

    def fit(alpha, w_init):
        nonlocal n_fits
        n_fits += 1
        result, converged, _ = _solve_enet(
            None, None, alpha, l1_ratio=l1_ratio, positive=positive, w_init=w_init, tol=tol,
            max_iter=max_iter, problem=problem)
        if not converged:
            _warn_not_converged(result, max_iter, f"alpha_for_support at alpha={alpha:.4g}", 4)
        return result, int(problem.xp.count_nonzero(result.w))

    a_max = problem.alpha_max(l1_ratio, positive)
    if a_max == 0:  # no feature correlates with y in the allowed direction
        result, size = fit(0.0, None)
        warnings.warn(f"alpha_max is 0: every alpha gives an empty support, not k={k}; "
                      f"T={n_samples}", SupportLimitWarning, stacklevel=2)
        return SupportSearch(0.0, size, result, n_fits)
    high, high_fit = a_max, None  # support < k at high
    alpha, low, low_fit = a_max, None, None
    while alpha > min_ratio * a_max:
        alpha *= grid_ratio
        result, size = fit(alpha, None if high_fit is None else high_fit[0].w)
        if size >= k:
            low, low_fit = alpha, (result, size)
            break
        high, high_fit = alpha, (result, size)
    if low is None:
        result, size = high_fit
        warnings.warn(
            f"the support stops at {size} < k={k} down to alpha={high:.3g} "
            f"({min_ratio:g} * alpha_max); T={n_samples}", SupportLimitWarning, stacklevel=2)
        return SupportSearch(high, size, result, n_fits)
    for _ in range(max_bisections):
        if low_fit[1] == k or high / low < 1.0 + 1e-9:
            break
        mid = float(np.sqrt(high * low))
        result, size = fit(mid, low_fit[0].w)
        if size >= k:
            low, low_fit = mid, (result, size)
        else:
            high, high_fit = mid, (result, size)
    result, size = low_fit
    if size != k:
        warnings.warn(f"no alpha gives exactly k={k} non-zero coefficients: the support jumps "
                      f"to {size} at alpha={low:.6g}", GrangerPruneWarning, stacklevel=2)
    return SupportSearch(low, size, result, n_fits)
