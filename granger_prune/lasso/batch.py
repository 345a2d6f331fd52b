"""Independent problems that share the target: one Granger lasso per layer.

The per-layer problems of a trajectory share ``y = ΔL`` and nothing else.
:func:`fit_shared_target` validates and centres ``y`` once, prepares each
layer's design (one pass for its column sums) and fits the problems, in
parallel threads when ``n_jobs > 1``: the passes over ``X`` release the GIL
(BLAS on the host, kernels on the GPU, each thread on its own CUDA stream).
"""

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext

import numpy as np

from ..backend import get_namespace
from ._inner import single_threaded_blas
from ._validation import check_int, check_real
from .problem import Problem
from .solver import _warn_not_converged, _solve_enet


@contextmanager
def _own_stream(xp, X):
    """For CuPy, ``X``'s device made current and a fresh non-blocking stream on it (a
    worker thread starts on device 0, wrong for a design on cuda:N); else nothing."""
    if xp.__name__ != "cupy":
        yield
        return
    device = getattr(X, "device", None)  # a CuPy array's; a wrapped design may have none
    with (device if isinstance(device, xp.cuda.Device) else nullcontext()), \
            xp.cuda.Stream(non_blocking=True):
        yield


def fit_shared_target(designs, y, *, alpha=None, alpha_ratio=None, l1_ratio=1.0,
                      fit_intercept=True, positive=False, tol=1e-4, max_iter=1000, n_jobs=1):
    """Fit one elastic net per design, all against the same target ``y``.

    Each problem minimises the objective of
    :func:`~granger_prune.lasso.enet_coordinate_descent` with its own ``X``.

    Parameters
    ----------
    designs : sequence of ndarray, each of shape (n_samples, d_l)
        One design per layer (NumPy or CuPy, float32 or float64).
    y : ndarray of shape (n_samples,)
        The shared target.
    alpha : float or sequence of float, optional
        Penalty of every problem, or one per problem.
    alpha_ratio : float, optional
        ``alpha = alpha_ratio * alpha_max`` of each problem (exactly one of
        ``alpha`` and ``alpha_ratio`` must be given).
    l1_ratio, fit_intercept, positive, tol, max_iter
        As in :func:`~granger_prune.lasso.enet_coordinate_descent`.
    n_jobs : int, default=1
        Threads; with more than one, host BLAS runs single-threaded in each.
        ``n_jobs=1`` gives, bit for bit, what
        :func:`~granger_prune.lasso.enet_coordinate_descent` gives on each
        design (the same calls in the same thread); with threads the BLAS
        calls sum in another order, so the results agree with those to the
        solver's tolerance (the duality gaps), not bit for bit.

    Returns
    -------
    list of (LassoResult, float)
        Per design: the result and its ``alpha_max``.
    """
    designs = list(designs)
    if not designs:
        raise ValueError("designs is empty")
    if (alpha is None) == (alpha_ratio is None):
        raise ValueError("give exactly one of alpha and alpha_ratio")
    n_jobs = check_int(n_jobs, "n_jobs", 1)
    if alpha is not None:
        alphas = ([float(alpha)] * len(designs) if np.ndim(alpha) == 0
                  else [float(a) for a in np.asarray(alpha, dtype=np.float64).ravel()])
        if len(alphas) != len(designs):
            raise ValueError(f"alpha has {len(alphas)} values for {len(designs)} designs")
    else:
        alpha_ratio = check_real(alpha_ratio, "alpha_ratio", low=0.0)
        alphas = [None] * len(designs)
    xp = get_namespace(y, *designs)
    y = xp.asarray(y, dtype=xp.float64)
    problems = [Problem(X, y, fit_intercept) for X in designs]

    def fit(i):
        with _own_stream(xp, designs[i]):
            problem = problems[i]
            a_max = problem.alpha_max(l1_ratio, positive)
            a = alphas[i] if alphas[i] is not None else alpha_ratio * a_max
            result, converged, _ = _solve_enet(None, None, a, l1_ratio=l1_ratio, positive=positive,
                                              tol=tol, max_iter=max_iter, problem=problem)
        if not converged:
            _warn_not_converged(result, max_iter, f"the fit of design {i}", stacklevel=3)
        return result, a_max

    if n_jobs == 1 or len(designs) == 1:
        return [fit(i) for i in range(len(designs))]
    with single_threaded_blas(), ThreadPoolExecutor(min(n_jobs, len(designs))) as pool:
        return list(pool.map(fit, range(len(designs))))
