"""Granger F-tests of the units of a :class:`granger_prune.design.GrangerDesign`.

The restricted model is the design's ``Z`` (intercept and lagged losses); the
unrestricted one adds a unit's columns: one column (1 df) for a vanilla
parameter or weight-shared group, its three momentum features (3 df) for the
momentum feature set, tested on their rank when they are linearly dependent
(``df_num`` below 3; see :func:`granger_prune.stats.nested_f_tests`).

The F distribution of the classical statistics assumes independent Gaussian
errors.  Trajectory residuals are serially correlated (``inference="hac"`` or
``"prewhiten"`` account for it), every step carries the common variation of
all steps (``factors`` conditions on it), and a selection made on the same
steps biases the tests (test on steps the selection did not see, ``rows``).
Every result carries the Durbin–Watson and Ljung–Box statistics of the
restricted residuals, and one warning says when they are bad.
"""

import numpy as np

from ..backend import get_namespace, to_numpy
from ..lasso._operator import is_blocked
from ..placement import place, running_on, statistics_device
from .inference import granger_tests, warn_if_untrustworthy


def granger_f_tests(design, units=None, rows=None, *, inference="ols", factors=None,
                    warn=True, device=None, **options):
    """Test ``y ~ Z`` against ``y ~ Z + X_u`` for every unit ``u``.

    Parameters
    ----------
    design : GrangerDesign
    units : array-like of int, optional
        The units to test (all by default); the results are in this order.
    rows : array-like of int, optional
        The rows (steps) to test on (all by default).
    inference : {"ols", "hac", "prewhiten"}
        The classical F-test, Newey–West (HAC) Wald tests or the F-test after
        an AR(p) filter (see :func:`granger_prune.stats.granger_tests`).
    factors : None, "bai_ng", "eigenvalue_ratio", int, "summaries" or "scale"
        The common variation of the steps joins the restricted model first:
        principal components of all the design's units on these rows (a count
        rule or a count), the design's named ``summaries`` (learning rate,
        gradient norm, mean squared step, where recorded), or the common step
        scale with weighted rows (``"scale"``, for a factor that multiplies
        every step).  The null is then conditional: the unit explains nothing
        beyond the common factors.
    warn : bool, default=True
        Warn once when the diagnostics say the p-values cannot be trusted
        (:func:`granger_prune.stats.inference.warn_if_untrustworthy`).
    device : None, "cpu", "cuda" or "cuda:N"
        Where the OLS and HAC tests without factors run: a CUDA device takes
        the tested columns whole when they fit, else streams them
        (:func:`granger_prune.placement.place`; CuPy).  Prewhitened and
        factor-adjusted tests run on the host.
    **options
        ``maxlags``, ``max_ar_order``, ``ar_criterion``, ``max_factors`` of
        :func:`~granger_prune.stats.granger_tests`.

    Returns
    -------
    FTestResults
        One test per unit, on at most ``design.features_per_unit`` numerator
        degrees of freedom (the rank of the unit's partialled columns).
    """
    m = design.features_per_unit
    X, y, Z = design.X, design.y, design.Z
    if is_blocked(X) and (inference == "prewhiten" or factors is not None
                                        or rows is not None):
        raise ValueError("a lazy design (granger_design(..., lazy=True)) is tested with "
                         "inference='ols' or 'hac', on all rows, without factors: a prewhitened, "
                         "factor-adjusted or row-cut X is a new copy of it; build the design in "
                         "memory or to a file (out=) for those")
    on_host = inference == "prewhiten" or factors is not None
    if on_host:
        X = to_numpy(X)  # a design built on the device is copied back for these
    # what the factors are taken from: every unit's steps, and the recorded summaries
    source, summaries = None, None
    if factors is not None:
        source = X
        summaries = (np.column_stack([design.summaries[n] for n in sorted(design.summaries)])
                     if design.summaries else np.zeros((design.n_steps, 0)))
    if units is not None:
        units = _indices(units, design.n_units, "units")
        if not np.array_equal(units, np.arange(design.n_units)):  # all units: no copy of X
            X = X[:, get_namespace(X).asarray((units[:, None] * m + np.arange(m)).ravel())]
    if rows is not None:
        rows = _indices(rows, design.n_steps, "rows")
        X, y, Z = X[get_namespace(X).asarray(rows)], y[rows], Z[rows]
        if factors is not None:
            source, summaries = source[rows], summaries[rows]
    n_units = X.shape[1] // m
    groups = None if m == 1 else np.repeat(np.arange(n_units), m)
    with running_on(None if on_host else statistics_device(device)) as xp:
        X, y, Z = place(X, xp, y, Z, multiple=m)
        result = granger_tests(y, X, Z, groups=groups, inference=inference, factors=factors,
                               source=source, summaries=summaries, **options)
    if warn:
        warn_if_untrustworthy(result, stacklevel=2)
    return result


def _indices(values, size, name):
    values = np.asarray(values)
    if values.ndim != 1 or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-d array of integer indices")
    if values.size and (values.min() < 0 or values.max() >= size):
        raise ValueError(f"{name} must lie in [0, {size}), got values in "
                         f"[{values.min()}, {values.max()}]")
    return values.astype(np.int64)
