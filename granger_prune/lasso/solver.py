"""Working-set coordinate descent for the elastic net, on NumPy or CuPy.

One solver design for both backends; the namespace comes from the input
arrays.  Each outer iteration makes exactly one pass over ``X``::

    r = yc - Xt w                      (support columns only)
    g = Xt^T r / n - l2 w              (the full pass)

and from ``g`` alone takes the duality gap of the full problem (the stopping
rule), the gap-safe screening test (Fercoq, Gramfort & Salmon 2015) and the next
working set: the support plus the largest KKT violations ``|g_j| - l1``
(celer / skglm style).  The inner problem is solved on the host by compiled
cyclic coordinate descent on the working set's Gram matrix
(:func:`~granger_prune.lasso._inner.gram_coordinate_descent`).  On CuPy that
is the GPU route too: the Gram matrix ``B^T B`` of the ``n x k`` working-set
block is one product on the device and only its ``k^2`` entries cross to the
host, so no kernel is launched per coordinate, and the passes over ``X`` (the
cost that grows with ``d``) stay on the device.

Screening: feature ``j`` is zero at every solution when::

    s |g_j| + sqrt(2 G / n) * sqrt(||Xt_j||^2 + n l2) < l1       (s g_j when positive)

with ``G`` the current gap and ``s`` the dual scaling (see
:mod:`~granger_prune.lasso.objective`).  Screened features leave the working-set
candidates, and once at most an eighth of the columns survive, ``X`` is compacted to
the survivors so the later passes read less.

Centring (``fit_intercept``) and column scaling (``column_scale``) are implicit
(:class:`~granger_prune.lasso._operator.ImplicitDesign`): no centred or scaled
copy of ``X`` is made.  ``X`` may be float32 (passes accumulate in float64 every
``ROW_BLOCK`` rows) or float64; everything else is float64.  With a float32
``X`` the residual enters each pass rounded to float32, so the computed gap is
accurate to about ``1e-8 * ||yc||^2 / n``: ask for ``tol >= 1e-7`` there.
"""

import warnings
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..backend import to_numpy
from ..exceptions import ConvergenceWarning
from ._dual import dual_norm, dual_scaling, gap_from_residual
from ._inner import gram_coordinate_descent, single_threaded_blas
from ._operator import as_numpy_index
from ._validation import as_coef, check_alpha, check_bool, check_int, check_l1_ratio, check_tol
from .problem import Problem

_EPS = np.finfo(np.float64).eps
_SMALLEST_POSITIVE = float(np.nextafter(0.0, 1.0))
#: Compact ``X`` once screening leaves at most 1/COMPACTION of its columns: the
#: copy costs a few passes, so it must make each later pass much cheaper.
COMPACTION = 8


class LassoResult(NamedTuple):
    """Result of :func:`enet_coordinate_descent` and :func:`lasso_coordinate_descent`.

    Attributes
    ----------
    w : ndarray of shape (n_features,)
        Coefficients on the scale of the input ``X`` (float64, the input's namespace).
    intercept : float
        Fitted intercept (0.0 when ``fit_intercept=False``).
    dual_gap : float
        Duality gap of the full problem at ``w`` (scale of the objective; of
        the scaled problem when ``column_scale`` is given).
    n_iter : int
        Outer (working-set) iterations run.
    n_passes : int
        Full passes over ``X`` made by the call: the iterations' ``X^T r``
        and, when the call prepared them, the column sums, the column norms
        for screening and ``X^T yc``.
    n_screened : int
        Features removed by gap-safe screening.
    """

    w: object
    intercept: float
    dual_gap: float
    n_iter: int
    n_passes: int = 0
    n_screened: int = 0


@dataclass(frozen=True)
class WorkingSetCD:
    """Settings of working-set coordinate descent beyond ``tol`` and ``max_iter``.

    Parameters
    ----------
    p0 : int >= 1, default=100
        Initial working-set size.
    max_epochs : int >= 1, default=10000
        Maximum coordinate-descent epochs per inner solve.
    anderson_m : int >= 0, default=5
        Anderson memory of the inner solver (0 disables extrapolation).
    screening : bool, default=True
        Gap-safe screening (costs one extra pass for the column norms).
    strong_rule : bool, default=True
        Along a path (:func:`~granger_prune.lasso.lasso_path`), seed each fit's
        first working set with the strong-rule set.
    """

    p0: int = 100
    max_epochs: int = 10_000
    anderson_m: int = 5
    screening: bool = True
    strong_rule: bool = True

    def __post_init__(self):
        check_int(self.p0, "p0", 1)
        check_int(self.max_epochs, "max_epochs", 1)
        check_int(self.anderson_m, "anderson_m", 0)
        check_bool(self.screening, "screening")
        check_bool(self.strong_rule, "strong_rule")


def _check_solver(solver):
    if not isinstance(solver, WorkingSetCD):
        raise TypeError(f"solver must be a WorkingSetCD, got {solver!r}")
    return solver


def _next_working_set(score, support_size, ws_size, p0, slow, xp):
    """Indices (host, sorted) of the ``ws_size`` largest positive scores, and the new size."""
    target = max(p0, 2 * support_size, ws_size)
    if slow:
        target = max(target, 2 * ws_size)  # slow progress: grow geometrically
    ws_size = min(target, score.shape[0])
    k = min(ws_size, int(xp.count_nonzero(score > 0)))
    if k == 0:
        return np.empty(0, dtype=np.int64), ws_size
    if k < score.shape[0]:
        index = xp.argpartition(-score, k - 1)[:k]
    else:
        index = xp.arange(score.shape[0])
    index = index[score[index] > 0]
    return as_numpy_index(index), ws_size


def _solve_enet(X, y, alpha, *, l1_ratio=1.0, fit_intercept=True, positive=False, w_init=None,
               tol=1e-4, max_iter=1000, column_scale=None, solver=WorkingSetCD(),
               initial_working_set=None, problem=None):
    """The solver; returns ``(LassoResult, converged, g)``.

    ``g`` (shape ``(n_features,)``, in the input's namespace; zero on dead
    columns and on screened columns dropped by compaction) is
    ``Xt^T r / n - l2 w`` from the last pass, used by the path for
    the strong rule.  ``initial_working_set`` (host indices) joins the first
    working set.  ``problem`` (a :class:`Problem`) replaces ``X``, ``y``,
    ``fit_intercept`` and ``column_scale`` when given.  See
    :func:`enet_coordinate_descent` for the rest.
    """
    passes_before = 0
    if problem is None:
        problem = Problem(X, y, fit_intercept, column_scale)
    else:
        passes_before = problem.design.n_passes
    xp = problem.xp
    alpha, l1_ratio, tol = check_alpha(alpha), check_l1_ratio(l1_ratio), check_tol(tol)
    positive = check_bool(positive, "positive")
    max_iter = check_int(max_iter, "max_iter", 1)
    solver = _check_solver(solver)
    p0, max_epochs, anderson_m, screening = solver.p0, solver.max_epochs, solver.anderson_m, solver.screening

    n_samples, n_features = problem.n_samples, problem.n_features
    design, yc, scale = problem.design, problem.yc, problem.scale
    l1, l2 = alpha * l1_ratio, alpha * (1.0 - l1_ratio)
    tol_abs = tol * problem.yc_norm2 / n_samples

    if w_init is None:
        w = xp.zeros(n_features, dtype=xp.float64)
    else:
        w = xp.array(as_coef(w_init, n_features, xp, name="w_init"), copy=True)
        if positive and bool(xp.any(w < 0)):
            raise ValueError("w_init has negative entries but positive=True")
        if scale is not None:
            w *= scale

    if alpha >= problem.alpha_max(l1_ratio, positive):
        # w = 0 satisfies the KKT conditions exactly (whatever the warm start)
        w = xp.zeros(n_features, dtype=xp.float64)
        result = LassoResult(w, problem.intercept(w), 0.0, 0,
                             problem.design.n_passes - passes_before, 0)
        return result, True, xp.array(problem.correlation_at_zero, copy=True)

    columns = None  # original index of each column of a compacted design
    dead = xp.zeros(n_features, dtype=bool)  # zero or numerically constant columns
    screened = xp.zeros(n_features, dtype=bool)
    n_compacted = 0  # screened features dropped from the design by compaction
    sq_norms = problem.sq_norms if screening else None
    if screening:
        dead |= sq_norms == 0
        w[dead] = 0.0  # an all-zero column never enters a working set to be cleared

    ws_size, n_iter, prev_gap, converged = 0, 0, np.inf, False
    compacted_passes = 0  # passes over compacted copies of X
    extra = None if initial_working_set is None else np.asarray(initial_working_set, dtype=np.int64)
    while True:
        if columns is None and not bool(xp.any(w)):
            r = yc  # w = 0: the correlations are the problem's cached ones
            g = xp.array(problem.correlation_at_zero, copy=True)
        else:
            r = yc - design.matvec(w)
            g = design.rmatvec(r) / n_samples
        if l2 > 0:
            g -= l2 * w
        g[dead] = 0.0
        s = dual_scaling(dual_norm(g, positive, xp), l1)
        gap = gap_from_residual(float(r @ r), float(r @ yc), s, float(xp.sum(xp.abs(w))),
                                float(w @ w), l1, l2, n_samples)
        if gap <= tol_abs:
            converged = True
            break
        if n_iter >= max_iter:
            break

        violation = g if positive else xp.abs(g)
        if screening:
            radius = np.sqrt(2.0 * max(gap, 0.0) / n_samples)
            safe = (s * violation + radius * xp.sqrt(sq_norms + n_samples * l2) < l1) & ~dead
            screened |= safe
            w[screened] = 0.0
            survivors = xp.nonzero(~(screened | dead))[0]
            if survivors.shape[0] <= design.shape[1] // COMPACTION and design.shape[1] > 4 * p0:
                n_compacted += int(xp.count_nonzero(screened))
                if design is not problem.design:
                    compacted_passes += design.n_passes
                design = design.take(survivors)
                columns = survivors if columns is None else columns[survivors]
                w, g, violation, sq_norms = w[survivors], g[survivors], violation[survivors], sq_norms[survivors]
                dead = xp.zeros(survivors.shape[0], dtype=bool)
                screened = xp.zeros(survivors.shape[0], dtype=bool)
                extra = None  # its indices refer to the columns before compaction

        support = w != 0
        score = xp.where(support, xp.inf, violation - l1)
        if extra is not None:  # the strong set of a path joins the first working set
            extra_x = xp.asarray(extra)
            # positive (a candidate) but below every real score, at any scale of X
            score[extra_x] = xp.maximum(score[extra_x], _SMALLEST_POSITIVE)
            extra = None
        score[dead | screened] = -xp.inf
        ws, ws_size = _next_working_set(score, int(xp.count_nonzero(support)), ws_size, p0,
                                        gap > 0.5 * prev_gap and n_iter > 0, xp)
        if ws.size == 0:  # w = 0 and nothing violates |g_j| <= l1: optimal
            converged = True
            break
        prev_gap = gap

        ws_x = xp.asarray(ws)
        block, magnitude = design.columns(ws_x)
        H = to_numpy(block.T @ block) / n_samples  # on CuPy: one product on the device,
        c = to_numpy(block.T @ yc) / n_samples  # k^2 + k numbers to the host
        magnitude = to_numpy(magnitude)
        degenerate = np.diag(H) <= (64.0 * _EPS * magnitude) ** 2
        w_ws = to_numpy(w[ws_x]).astype(np.float64)
        if degenerate.any():
            dead[xp.asarray(ws[degenerate])] = True
            H[degenerate, :] = 0.0
            H[:, degenerate] = 0.0
            w_ws[degenerate] = 0.0
        with single_threaded_blas():
            gram_coordinate_descent(np.ascontiguousarray(H), c, problem.yc_norm2, n_samples,
                                    w_ws, l1, l2, positive, tol=max(0.3 * gap, 0.3 * tol_abs),
                                    max_epochs=max_epochs, anderson_m=anderson_m)
        w[ws_x] = xp.asarray(w_ws)
        n_iter += 1

    if columns is not None:
        w_full = xp.zeros(n_features, dtype=xp.float64)
        w_full[columns] = w
        g_full = xp.zeros(n_features, dtype=xp.float64)
        g_full[columns] = g
        w, g = w_full, g_full
    if scale is not None:
        w = w / scale
    intercept = problem.intercept(w)
    n_screened = n_compacted + int(xp.count_nonzero(screened))
    if design is not problem.design:
        compacted_passes += design.n_passes
    n_passes = problem.design.n_passes - passes_before + compacted_passes
    result = LassoResult(w, float(intercept), float(gap), n_iter, n_passes, n_screened)
    return result, converged, g


def _warn_not_converged(result, max_iter, who, stacklevel):
    warnings.warn(
        f"{who} did not converge in max_iter={max_iter} iterations: duality gap "
        f"{result.dual_gap:.3e}; increase max_iter or tol, or use a larger alpha",
        ConvergenceWarning, stacklevel=stacklevel + 1)


def enet_coordinate_descent(X, y, alpha, *, l1_ratio=1.0, fit_intercept=True, positive=False,
                            w_init=None, tol=1e-4, max_iter=1000, column_scale=None,
                            solver=WorkingSetCD()):
    """Solve the elastic net by working-set coordinate descent.

    Minimises scikit-learn's :class:`~sklearn.linear_model.ElasticNet` objective::

        (1 / (2 n)) ||y - X w - b||_2^2 + alpha l1_ratio ||w||_1
            + (alpha (1 - l1_ratio) / 2) ||w||_2^2

    (``b`` fitted only when ``fit_intercept``; ``w >= 0`` when ``positive``),
    with ``X`` replaced by ``X / column_scale`` when that is given.  Stops when
    the duality gap of the full problem is at most ``tol * ||yc||^2 / n``
    (scikit-learn's rule).  See the module docstring for the algorithm.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Design (NumPy or CuPy; float32 or float64 is used as it is, other dtypes
        are converted to float64; never modified).
    y : ndarray of shape (n_samples,)
        Target (same namespace as ``X``).
    alpha : float
        Regularisation strength ``>= 0``; ``alpha >= alpha_max`` gives ``w = 0``.
    l1_ratio : float in (0, 1], default=1.0
        Elastic-net mixing; 1 is the lasso.
    fit_intercept : bool, default=True
        Fit ``b`` by implicit centring.
    positive : bool, default=False
        Constrain ``w >= 0``.
    w_init : ndarray of shape (n_features,), default=None
        Warm start on the scale of ``X`` (zeros when None).
    tol : float, default=1e-4
        Relative duality-gap tolerance (``> 0``).
    max_iter : int, default=1000
        Maximum outer iterations, each one pass over ``X``.
    column_scale : ndarray of shape (n_features,), default=None
        Positive column divisors: the penalty applies to the coefficients of
        ``X / column_scale`` (``standardize``); ``w`` is returned on the scale
        of ``X``.
    solver : WorkingSetCD, default=WorkingSetCD()
        The working-set and inner-solver settings (initial working-set size,
        inner epochs, Anderson memory, screening).

    Returns
    -------
    LassoResult
        ``(w, intercept, dual_gap, n_iter, n_passes, n_screened)``.

    Warns
    -----
    ConvergenceWarning
        When ``max_iter`` iterations did not reach the tolerance.

    Raises
    ------
    ValueError
        On NaN or infinity in ``X``, ``y`` or ``w_init``, mismatched lengths,
        wrong dimensions or out-of-range arguments (the message names which).
    TypeError
        On arguments of the wrong type.
    """
    result, converged, _ = _solve_enet(
        X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, positive=positive,
        w_init=w_init, tol=tol, max_iter=max_iter, column_scale=column_scale, solver=solver)
    if not converged:
        _warn_not_converged(result, max_iter, "coordinate descent", stacklevel=2)
    return result


def lasso_coordinate_descent(X, y, alpha, *, fit_intercept=True, positive=False, w_init=None,
                             tol=1e-4, max_iter=1000, column_scale=None, solver=WorkingSetCD()):
    """Solve the lasso ``(1 / (2 n)) ||y - X w - b||^2 + alpha ||w||_1``.

    :func:`enet_coordinate_descent` with ``l1_ratio=1``; same parameters,
    result and errors.
    """
    result, converged, _ = _solve_enet(
        X, y, alpha, l1_ratio=1.0, fit_intercept=fit_intercept, positive=positive,
        w_init=w_init, tol=tol, max_iter=max_iter, column_scale=column_scale, solver=solver)
    if not converged:
        _warn_not_converged(result, max_iter, "lasso coordinate descent", stacklevel=2)
    return result
