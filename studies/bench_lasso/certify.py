"""Independent float64 duality gap of the lasso, to certify every solver alike.

Written from the definitions, sharing no code with ``granger_prune.lasso``:
for ``P(w) = ||yc - Xc w||^2 / (2n) + alpha ||w||_1`` with ``Xc``, ``yc``
centred, the residual ``r = yc - Xc w`` rescaled to ``theta = s r``,
``s = min(1, n alpha / ||Xc^T r||_inf)``, is dual feasible and

    gap = P(w) - (s r^T yc - s^2 ||r||^2 / 2) / n.

The certificate is ``gap / (||yc||^2 / n)``, the quantity scikit-learn's ``tol``
bounds.  ``X`` is read in column blocks converted to float64 (NumPy or CuPy), so
a float32 ``X`` is certified in float64 without a float64 copy of it.
"""

import numpy as np

BLOCK_COLUMNS = 1 << 16


def relative_gap(X, y, w, alpha, xp=np):
    """``gap / (||yc||^2 / n)`` of the lasso with an intercept at coefficients ``w``."""
    n, d = X.shape
    y = xp.asarray(y, dtype=xp.float64)
    w = xp.asarray(w, dtype=xp.float64)
    yc = y - y.mean()
    means = xp.empty(d, dtype=xp.float64)
    fit = xp.zeros(n, dtype=xp.float64)
    for start in range(0, d, BLOCK_COLUMNS):
        block = X[:, start:start + BLOCK_COLUMNS].astype(xp.float64)
        means[start:start + BLOCK_COLUMNS] = block.mean(axis=0)
        block -= means[start:start + BLOCK_COLUMNS]
        fit += block @ w[start:start + BLOCK_COLUMNS]
    r = yc - fit
    dual_norm = 0.0
    for start in range(0, d, BLOCK_COLUMNS):
        block = X[:, start:start + BLOCK_COLUMNS].astype(xp.float64)
        block -= means[start:start + BLOCK_COLUMNS]
        dual_norm = max(dual_norm, float(xp.max(xp.abs(block.T @ r))))
    s = min(1.0, n * alpha / dual_norm) if dual_norm > 0 else 1.0
    r2, ry = float(r @ r), float(r @ yc)
    primal = 0.5 * r2 / n + alpha * float(xp.sum(xp.abs(w)))
    dual = (s * ry - 0.5 * s * s * r2) / n
    return (primal - dual) / (float(yc @ yc) / n), primal
