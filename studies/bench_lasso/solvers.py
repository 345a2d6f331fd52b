"""The competitors, each as ``fit(X, y, alpha, tol) -> (coef, info)`` on the same problem.

All minimise ``||y - X w - b||^2 / (2n) + alpha ||w||_1`` with an intercept.
A competitor that is not installed is reported as missing, not skipped silently.
"""

import numpy as np


def sklearn_lasso(X, y, alpha, tol):
    from sklearn.linear_model import Lasso

    model = Lasso(alpha=alpha, tol=tol, max_iter=100_000, fit_intercept=True).fit(X, y)
    return model.coef_, dict(passes=int(model.n_iter_))


def celer_lasso(X, y, alpha, tol):
    from celer import Lasso

    model = Lasso(alpha=alpha, tol=tol, fit_intercept=True, max_iter=1000).fit(X, y)
    return model.coef_, dict(passes=None)


def skglm_lasso(X, y, alpha, tol):
    from skglm import Lasso

    model = Lasso(alpha=alpha, tol=tol, fit_intercept=True, max_iter=1000).fit(X, y)
    return model.coef_, dict(passes=None)


def granger_prune_lasso(X, y, alpha, tol):
    from granger_prune.backend import to_numpy
    from granger_prune.lasso import lasso_coordinate_descent

    result = lasso_coordinate_descent(X, y, alpha, tol=tol)
    return to_numpy(result.w), dict(passes=int(result.n_passes), n_iter=int(result.n_iter),
                                    n_screened=int(result.n_screened))


def granger_prune_lasso_gpu(X, y, alpha, tol):
    """Ours on CuPy arrays; includes the final device synchronisation."""
    import cupy

    coef, info = granger_prune_lasso(X, y, alpha, tol)
    cupy.cuda.Device().synchronize()
    return coef, info


CPU_SOLVERS = {
    "scikit-learn": (sklearn_lasso, "sklearn"),
    "skglm": (skglm_lasso, "skglm"),
    "celer": (celer_lasso, "celer"),
    "granger_prune[numpy]": (granger_prune_lasso, "granger_prune"),
}
GPU_SOLVERS = {
    "granger_prune[cupy]": (granger_prune_lasso_gpu, "cupy"),
}


def installed(module):
    """Whether ``module`` can be imported."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def as_float64(coef):
    return np.asarray(coef, dtype=np.float64)
