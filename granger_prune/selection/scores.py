"""Importance scores of a Granger problem's units, from a fitted coefficient vector.

Under the first-order Taylor model that the vanilla design comes from, every
parameter has the same coefficient ``γ_k = -1/η`` (seed 001 eq. 3): ``|γ_k|``
alone does not say how much of the loss change a parameter carries.  The scores
a rank rule can order units by (``d`` columns, ``T`` rows, ``m`` columns per unit):

* ``"gamma"``: ``|γ_u|`` (``||γ_u||`` for several columns), the fitted
  coefficient on the design's scale; seed 001's rule and the default.
* ``"standardised"``: ``|γ_j| · sd_j`` (``||·||`` over a unit), the coefficient
  of the fit on unit-variance columns (``CausalLasso(standardize="std")``).
* ``"loss_share"``: ``|Σ_{j∈u} γ_j · mean_t X[t, j]|``, the mean loss change the
  fit attributes to the unit (for a vanilla weight ``|γ_k · mean_t (Δθ_k^t)²|``;
  a filter's column is the sum of its members' features, a momentum unit sums
  its three terms before the absolute value).  It does not depend on the
  columns' scale: ``γ_j X[t, j]`` is the same on any scale.
* ``"marginal"``: ``||X̃_uᵀ ỹ|| / T``, the covariance of the unit's features with
  the loss change (``X̃``, ``ỹ`` centred with an intercept, partialled off the
  lagged losses otherwise); no fit.

Each score is an ndarray of shape ``(n_units,)``; larger is more important.

This module works on NumPy arrays (a design's ``X`` may be on the device: what
is computed from it there comes back as NumPy) and never imports torch.
"""

import numpy as np

from ..backend import get_namespace, to_numpy
from ..lasso._operator import over_columns

SCORES = ("gamma", "standardised", "loss_share", "marginal")


def column_covariances(data):
    """``X̃ᵀ ỹ / T`` per column (signed), for ``data = (X, y, fit_intercept)`` of
    ``design.partialled(...)``: ``ỹ`` centred with an intercept, which centres ``X̃ᵀ ỹ`` too."""
    X, y, fit_intercept = data
    if fit_intercept:
        y = y - y.mean()
    return to_numpy(X.T @ get_namespace(X).asarray(y)) / X.shape[0]  # X on the device: there


def marginal_scores(design, data):
    """``||X̃_uᵀ ỹ|| / T`` per unit, for ``data = design.partialled(...)``; shape (n_units,)."""
    return design.unit_norms(column_covariances(data))


def loss_share_scores(design, gamma):
    """``|Σ_{j∈u} γ_j · mean_t X[t, j]|`` per unit; ``gamma`` of shape (d,) on the design's scale."""
    means = to_numpy(over_columns(design.X, lambda block: block.mean(axis=0, dtype=np.float64),
                                  get_namespace(design.X)))  # a lazy or a device X too
    share = np.asarray(gamma, dtype=np.float64) * means
    return np.abs(share.reshape(design.n_units, -1).sum(axis=1))


def unit_scores(design, gamma, score, column_sd=None):
    """The ``score`` of every unit from the per-column coefficients ``gamma``.

    Parameters
    ----------
    design : GrangerDesign
    gamma : ndarray of shape (d,)
        Coefficients on the design's scale (for ``"standardised"``, of the fit on
        unit-variance columns, reported back on the design's scale).
    score : {"gamma", "standardised", "loss_share"}
    column_sd : ndarray of shape (d,), optional
        The columns' standard deviations (``"standardised"`` only).

    Returns
    -------
    ndarray of shape (n_units,)
        Non-negative; exactly zero where every coefficient of the unit is zero.
    """
    gamma = np.asarray(gamma, dtype=np.float64)
    if score == "gamma":
        return design.unit_norms(gamma)
    if score == "standardised":
        if column_sd is None:
            raise ValueError("score='standardised' needs the columns' standard deviations")
        return design.unit_norms(gamma * column_sd)
    if score == "loss_share":
        return loss_share_scores(design, gamma)
    raise ValueError(f"score must be one of {SCORES[:3]} for a fitted gamma, got {score!r}")
