"""Prewhitened nested F-tests: an AR(p) filter of the restricted residuals, then the F-tests.

Serially correlated errors make the F distribution of the classical statistic
wrong.  When the errors follow an AR(p) process ``u_t = Σ_i ρ_i u_{t-i} + ε_t``,
filtering every series by ``(1 - Σ_i ρ_i B^i)`` (``B`` the lag operator) gives a
regression with white errors ``ε`` and the same coefficients (feasible GLS,
Cochrane and Orcutt 1949):

    ỹ_t = y_t - Σ_i ρ_i y_{t-i},   Z̃_t, X̃_t likewise,   t = p ... T-1.

The filter is estimated under the null, on the restricted residuals ``e`` of
``y ~ Z`` (shared by all tests): ``ρ`` by least squares on ``e_t ~ e_{t-1} ...
e_{t-p}`` and ``p`` by an information criterion over ``0 ... max_order``, every
order fitted on the same rows ``t >= max_order`` so the criteria compare:

    BIC(p) = n ln σ²_p + p ln n,    AIC(p) = n ln σ²_p + 2 p,

``n = T - max_order``.  The tests then run on the ``T - p`` filtered rows with
:func:`granger_prune.stats.nested_f_tests`; the order, the coefficients and
the Ljung–Box statistic of the whitened restricted residuals are reported.
``X`` is filtered into one new array of its dtype (float64 arithmetic, then
rounded to the dtype): the memory of one more ``X``.
"""

import math
from dataclasses import replace

import numpy as np

from ..backend import get_namespace, to_numpy
from .ftests import nested_f_tests, prepare_tests

CRITERIA = ("bic", "aic")


def schwert_max_order(n_samples):
    """``floor(12 (T / 100)^(1/4))`` (Schwert 1989), at most ``T // 10``: the default
    largest order considered."""
    return max(0, min(int(math.floor(12.0 * (n_samples / 100.0) ** 0.25)), n_samples // 10))


def select_ar_order(e, max_order=None, criterion="bic"):
    """``(p, rho, table)``: the AR order of ``e`` (T,) minimising the criterion.

    ``rho`` (host, shape (p,)) are the least-squares AR coefficients of order
    ``p`` on the rows ``t >= max_order``; ``table`` (host, shape
    (max_order + 1,)) the criterion of every order.  No intercept (``e`` are
    residuals of a model with one, or the caller's own choice).
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    e = np.asarray(to_numpy(e), dtype=np.float64)
    n_samples = e.shape[0]
    max_order = schwert_max_order(n_samples) if max_order is None else int(max_order)
    if not 0 <= max_order < n_samples // 2:
        raise ValueError(f"max_order must lie in [0, T/2) with T={n_samples}, got {max_order}")
    n = n_samples - max_order
    target = e[max_order:]
    lagged = np.column_stack([e[max_order - i:n_samples - i] for i in range(1, max_order + 1)]) \
        if max_order else np.zeros((n, 0))
    table = np.empty(max_order + 1)
    fits = []
    for p in range(max_order + 1):
        if p:
            rho, *_ = np.linalg.lstsq(lagged[:, :p], target, rcond=None)
            residual = target - lagged[:, :p] @ rho
        else:
            rho, residual = np.zeros(0), target
        sigma2 = float(residual @ residual) / n
        penalty = p * math.log(n) if criterion == "bic" else 2.0 * p
        table[p] = n * math.log(sigma2) + penalty if sigma2 > 0 else -np.inf
        fits.append(rho)
    order = int(np.argmin(table))
    return order, fits[order], table


def ar_filter(A, rho):
    """``A_t - Σ_i ρ_i A_{t-i}`` for ``t = p ... T-1`` along axis 0 (NumPy or CuPy).

    A 1-d ``A`` is one series, a 2-d one a series per column; the result has
    ``A``'s dtype (accumulated in float64 for a float32 ``A``, column block by
    column block, so no float64 copy of a wide ``A`` is made).
    """
    xp = get_namespace(A)
    p = len(rho)
    if p == 0:
        return A
    n_samples = A.shape[0]
    if A.ndim == 1:
        return _filter_block(A, rho, p, n_samples, xp)
    out = xp.empty((n_samples - p,) + A.shape[1:], dtype=A.dtype)
    step = max(1, (1 << 22) // max(n_samples, 1))  # about 32 MB of float64 per block
    for first in range(0, A.shape[1], step):
        out[:, first:first + step] = _filter_block(A[:, first:first + step], rho, p, n_samples, xp)
    return out


def _filter_block(A, rho, p, n_samples, xp):
    block = xp.asarray(A[p:], dtype=xp.float64).copy()
    for i, r in enumerate(rho, start=1):
        block -= float(r) * xp.asarray(A[p - i:n_samples - i], dtype=xp.float64)
    return block.astype(A.dtype, copy=False)


def prewhitened_f_tests(y, X, Z=None, groups=None, *, max_order=None, criterion="bic"):
    """Nested F-tests on AR(p)-filtered data, ``p`` chosen on the restricted residuals.

    Parameters
    ----------
    y, X, Z, groups
        As for :func:`granger_prune.stats.nested_f_tests`.
    max_order : int >= 0, optional
        The largest AR order considered (default :func:`schwert_max_order`).
    criterion : {"bic", "aic"}, default="bic"

    Returns
    -------
    FTestResults
        ``inference="prewhiten"``, ``ar_order`` the chosen ``p``; ``n_samples``
        is ``T - p``, and ``durbin_watson``/``ljung_box`` are those of the
        whitened restricted residuals (what the F distribution assumes white).
    """
    # e (on an exact power-of-two scale of y) is all the filter needs; X is checked and
    # its squares summed once, by the F-tests on the filtered X (NaN and infinity survive
    # the filter)
    prep = prepare_tests(y, X, Z, column_norms=False)
    xp = prep.xp
    order, rho, _ = select_ar_order(prep.e, max_order, criterion)
    y = xp.asarray(y, dtype=xp.float64)
    Z = xp.zeros((y.shape[0], 0)) if Z is None else xp.asarray(Z, dtype=xp.float64)
    result = nested_f_tests(ar_filter(y, rho), ar_filter(X, rho), ar_filter(Z, rho), groups=groups)
    return replace(result, inference="prewhiten", ar_order=order)
