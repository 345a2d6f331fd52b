"""Residual diagnostics reported with every test result (NumPy or CuPy input, host output).

The p-values of the classical F-test assume serially uncorrelated errors.
Both statistics here are computed on the restricted residuals ``e`` of
``y ~ Z``, the model every test shares:

* Durbin–Watson, ``Σ (e_t - e_{t-1})^2 / Σ e_t^2`` (about 2 without
  first-order autocorrelation, near 0 with strong positive autocorrelation);
* Ljung–Box, ``Q = T (T + 2) Σ_{j=1}^{h} ρ_j^2 / (T - j)`` with ``ρ_j`` the
  residual autocorrelations, against ``χ²_h`` (statsmodels' ``acorr_ljungbox``
  without a degrees-of-freedom adjustment).
"""

import numpy as np
from scipy import stats

from ..backend import get_namespace

#: Below this Ljung–Box p-value the residuals are taken to be serially correlated.
LJUNG_BOX_LEVEL = 0.01


def ljung_box_lags(n_samples):
    """The default number of autocorrelations ``h``: ``min(10, T // 5)``, at least 1."""
    return max(1, min(10, n_samples // 5))


def durbin_watson(e):
    """Durbin–Watson statistic of the residuals ``e`` (T,)."""
    xp = get_namespace(e)
    return float(xp.sum(xp.diff(e) ** 2) / float(e @ e))


def ljung_box(e, lags=None):
    """``(Q, p)``: the Ljung–Box statistic of ``e`` (T,) over ``lags`` autocorrelations.

    ``e`` is centred first (as statsmodels does); ``lags`` defaults to
    :func:`ljung_box_lags`.
    """
    xp = get_namespace(e)
    n_samples = e.shape[0]
    lags = ljung_box_lags(n_samples) if lags is None else int(lags)
    if not 1 <= lags < n_samples:
        raise ValueError(f"lags must lie in [1, T) with T={n_samples}, got {lags}")
    centred = e - xp.mean(e)
    denominator = float(centred @ centred)
    if denominator == 0.0:
        return 0.0, 1.0
    rho = np.array([float(centred[j:] @ centred[:n_samples - j]) for j in range(1, lags + 1)])
    rho /= denominator
    q = n_samples * (n_samples + 2) * float(np.sum(rho ** 2 / (n_samples - np.arange(1, lags + 1))))
    return q, float(stats.chi2.sf(q, lags))
