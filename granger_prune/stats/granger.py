"""Granger F-tests of the units of a :class:`granger_prune.design.GrangerDesign`.

The restricted model is the design's ``Z`` (intercept and lagged losses); the
unrestricted one adds a unit's columns: one column (1 df) for a vanilla
parameter or weight-shared group, its three momentum features (3 df) for the
momentum feature set, tested on their rank when they are linearly dependent
(``df_num`` below 3; see :func:`granger_prune.stats.nested_f_tests`).

The F distribution of the statistics assumes independent Gaussian errors.
Trajectory residuals are serially correlated and a selection made on the same
steps biases the tests, so the p-values are approximate: check the reported
Durbin–Watson statistic (about 2 without first-order autocorrelation) and test
on steps the selection did not see (``rows``).
"""

import numpy as np

from .ftests import nested_f_tests


def granger_f_tests(design, units=None, rows=None):
    """F-test of ``y ~ Z`` against ``y ~ Z + X_u`` for every unit ``u``.

    Parameters
    ----------
    design : GrangerDesign
    units : array-like of int, optional
        The units to test (all by default); the results are in this order.
    rows : array-like of int, optional
        The rows (steps) to test on (all by default).

    Returns
    -------
    FTestResults
        One test per unit, on at most ``design.features_per_unit`` numerator
        degrees of freedom (the rank of the unit's partialled columns).
    """
    m = design.features_per_unit
    X, y, Z = design.X, design.y, design.Z
    if units is not None:
        units = _indices(units, design.n_units, "units")
        X = X[:, (units[:, None] * m + np.arange(m)).ravel()]
    if rows is not None:
        rows = _indices(rows, design.n_steps, "rows")
        X, y, Z = X[rows], y[rows], Z[rows]
    n_units = X.shape[1] // m
    groups = None if m == 1 else np.repeat(np.arange(n_units), m)
    return nested_f_tests(y, X, Z, groups=groups)


def _indices(values, size, name):
    values = np.asarray(values)
    if values.ndim != 1 or not (values.size == 0 or np.issubdtype(values.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-d array of integer indices")
    if values.size and (values.min() < 0 or values.max() >= size):
        raise ValueError(f"{name} must lie in [0, {size}), got values in "
                         f"[{values.min()}, {values.max()}]")
    return values.astype(np.int64)
