"""One entry point for the tests: the inference and the factor adjustment as options.

:func:`granger_tests` runs the tests of ``y ~ Z`` against ``y ~ Z + X_g`` for
every feature or group with

* ``inference="ols"``: the classical F-test (:func:`~granger_prune.stats.nested_f_tests`),
  exact for independent Gaussian errors;
* ``inference="hac"``: Newey–West Wald tests (:func:`~granger_prune.stats.hac_f_tests`),
  valid under serial correlation of unknown form, asymptotically;
* ``inference="prewhiten"``: the F-test after an AR(p) filter
  (:func:`~granger_prune.stats.prewhitened_f_tests`), valid when the errors are
  autoregressive.

and, with ``factors``, the common variation of the steps added to the
restricted model first, so that the null tested is the conditional one: *the
unit's step explains nothing of ``ΔL`` beyond what the common factors explain*
(:mod:`granger_prune.stats.factors`).  ``factors`` is a factor-count rule
(``"bai_ng"``, ``"eigenvalue_ratio"``) or count for principal components of the
design, ``"summaries"`` for named trajectory summaries given as columns, or
``"scale"`` for a multiplicative common factor.

``"scale"``.  A learning-rate schedule or a varying gradient norm multiplies
every step, ``x_tk = f_t² w_tk``, so it enters the features as a factor, not
as a sum, and the errors of the regression grow with it.  Then adding ``f``
to the restricted model removes its mean effect but leaves every test's
errors heteroskedastic in step with its feature, and the tests still reject
nulls far too often (``studies/lasso_vs_ftest``).  ``"scale"`` estimates the
common step scale ``m_t = mean_k |x_tk| / mean_t |x_tk|``, adds it to the
restricted model, and weights the rows by the restricted errors' standard
deviation ``k √(r + (m_t / m̄)²)``, fitted by Gaussian maximum likelihood and
iterated (feasible GLS; :mod:`granger_prune.stats.step_scale`): every test
then runs on ``(y / s, X / s, [Z, m] / s)``, one weighted copy of ``X``.

:func:`warn_if_untrustworthy` issues the one warning the diagnostics call for.
"""

import warnings
from dataclasses import replace

import numpy as np

from ..backend import get_namespace
from ..exceptions import GrangerPruneWarning
from .diagnostics import LJUNG_BOX_LEVEL
from .factors import FACTOR_RULES, common_factors, explained_share
from .ftests import nested_f_tests
from .hac import automatic_lag_cap, hac_f_tests
from .prewhiten import prewhitened_f_tests
from .step_scale import common_scale, scale_weights

INFERENCES = ("ols", "hac", "prewhiten")
#: A summary whose centred part off the earlier summaries is below this fraction of its
#: norm adds nothing to the restricted model: dropped.
CONSTANT_RTOL = 1e-10


def check_factors(factors):
    """``factors`` if it is None, a rule of :data:`FACTOR_RULES`, ``"summaries"``,
    ``"scale"`` or a count."""
    if factors is None or factors in ("summaries", "scale") or factors in FACTOR_RULES:
        return factors
    if isinstance(factors, (int, np.integer)) and not isinstance(factors, bool) and factors >= 0:
        return int(factors)
    raise ValueError(f"factors must be None, 'summaries', 'scale', one of {FACTOR_RULES} or a "
                     f"non-negative integer, got {factors!r}")


def granger_tests(y, X, Z=None, groups=None, *, inference="ols", factors=None, source=None,
                  summaries=None, maxlags="nw94", max_ar_order=None, ar_criterion="bic",
                  max_factors=8):
    """The tests of every feature or group, with a chosen inference and factor adjustment.

    Parameters
    ----------
    y, X, Z, groups
        As for :func:`granger_prune.stats.nested_f_tests`.
    inference : {"ols", "hac", "prewhiten"}
    factors : None, "bai_ng", "eigenvalue_ratio", int, "summaries" or "scale"
        What joins ``Z`` first, and with ``"scale"`` how the rows are weighted
        (see the module docstring).
    source : array of shape (T, D), optional
        The design the factors are extracted from (default ``X``): all the
        problem's steps, when ``X`` holds only the tested ones.
    summaries : array of shape (T, s), optional
        The summaries of ``factors="summaries"`` (constant ones, and those in the
        span of the earlier ones, are dropped).
    maxlags
        Of the HAC tests (:func:`~granger_prune.stats.hac_f_tests`).
    max_ar_order, ar_criterion
        Of the prewhitening (:func:`~granger_prune.stats.prewhitened_f_tests`).
    max_factors : int
        The largest count a factor rule considers.

    Returns
    -------
    FTestResults
        With ``n_factors`` and ``factor_share`` (the share of the
        column-standardised steps' variance the added regressors explain).
    """
    if inference not in INFERENCES:
        raise ValueError(f"inference must be one of {INFERENCES}, got {inference!r}")
    factors = check_factors(factors)
    xp = get_namespace(y, X, Z)
    n_samples = X.shape[0]
    if Z is None:
        Z = xp.zeros((n_samples, 0))
    n_added, share = 0, float("nan")
    Z = xp.asarray(Z, dtype=xp.float64)
    if factors == "scale":
        source = X if source is None else source
        m = common_scale(source)
        share = explained_share(source, m[:, None])
        y = xp.asarray(y, dtype=xp.float64)
        s = scale_weights(y, Z, m)
        Z = xp.concatenate([Z, m[:, None]], axis=1) / s[:, None]
        y, X = y / s, X / s[:, None].astype(X.dtype)
        n_added, factors = 1, None
    if factors is not None:
        source = X if source is None else source
        if factors == "summaries":
            if summaries is None:
                raise ValueError("factors='summaries' needs the summaries (T, s)")
            added = independent_columns(
                xp.asarray(summaries, dtype=xp.float64).reshape(n_samples, -1), xp)
            share = explained_share(source, added)
        else:
            found = common_factors(source, factors, max_factors=max_factors)
            added, share = found.factors, found.share
        n_added = added.shape[1]
        Z = xp.concatenate([Z, added], axis=1)
    if inference == "ols":
        result = nested_f_tests(y, X, Z, groups=groups)
    elif inference == "hac":
        result = hac_f_tests(y, X, Z, groups=groups, maxlags=maxlags)
    else:
        result = prewhitened_f_tests(y, X, Z, groups=groups, max_order=max_ar_order,
                                     criterion=ar_criterion)
    return replace(result, n_factors=n_added, factor_share=share)


def independent_columns(S, xp):
    """The columns of ``S`` (T, s) that are neither constant nor in the span of the earlier
    ones (with a constant), judged after centring on each column's own scale."""
    centred = S - xp.mean(S, axis=0)
    keep, basis = [], xp.zeros((S.shape[0], 0))
    for j in range(S.shape[1]):
        v = centred[:, j]
        scale = float(xp.sqrt(S[:, j] @ S[:, j]))
        for _ in range(2):
            v = v - basis @ (basis.T @ v)
        norm = float(xp.sqrt(v @ v))
        if norm > CONSTANT_RTOL * scale:
            keep.append(j)
            basis = xp.concatenate([basis, (v / norm)[:, None]], axis=1)
    return S[:, keep]


def warn_if_untrustworthy(result, stacklevel=2):
    """One :class:`~granger_prune.exceptions.GrangerPruneWarning` when the diagnostics say
    the p-values cannot be trusted; returns the reason (or None).

    * ``"ols"``: the restricted residuals are serially correlated (Ljung–Box
      p below :data:`~granger_prune.stats.diagnostics.LJUNG_BOX_LEVEL`).
    * ``"prewhiten"``: the same, after the filter (the AR order is too low).
    * ``"hac"``: half the tests or more chose the largest lag the automatic rule
      allows (the correlation outlasts the bandwidth).
    """
    reason = None
    if result.inference in ("ols", "prewhiten") and result.ljung_box_pvalue < LJUNG_BOX_LEVEL:
        what = "restricted residuals" if result.inference == "ols" else "prewhitened residuals"
        reason = (f"the {what} are serially correlated (Ljung-Box p = "
                  f"{result.ljung_box_pvalue:.2g}, Durbin-Watson = {result.durbin_watson:.2f}): "
                  f"the {result.inference} F-test p-values are not to be trusted; "
                  + ("use inference='hac' or 'prewhiten'" if result.inference == "ols"
                     else "raise max_ar_order or use inference='hac'"))
    elif (result.inference == "hac" and result.lags is not None and result.lags.size
          and np.ptp(result.lags) > 0):  # the automatic rule (a given lag is the same for all)
        cap = automatic_lag_cap(result.n_samples)
        if np.mean(result.lags >= cap) >= 0.5:
            reason = (f"{np.mean(result.lags >= cap):.0%} of the HAC tests chose the largest "
                      f"automatic lag ({cap}): the serial correlation outlasts the bandwidth")
    if reason:
        warnings.warn(reason, GrangerPruneWarning, stacklevel=stacklevel + 1)
    return reason
