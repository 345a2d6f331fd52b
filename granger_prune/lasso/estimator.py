"""scikit-learn estimator for the Granger lasso / elastic net."""

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    _sk_validate_data = None

from ..backend import from_torch, get_namespace, is_torch_tensor, to_numpy
from ._operator import is_blocked, raw_column_sq_sums
from ._validation import (as_design, check_alpha, check_bool, check_int, check_l1_ratio,
                          check_tol, column_sums)
from .solver import _warn_not_converged, _solve_enet

_FLOATS = (np.float64, np.float32)  # float32 designs are fitted without a float64 copy


def _validate(estimator, X, y=None, reset=True):
    kwargs = dict(dtype=_FLOATS)  # finiteness is checked by default
    x_only = y is None and not reset  # predict; fit with y=None must fail on y
    if _sk_validate_data is None:  # pragma: no cover - older scikit-learn
        if x_only:
            return estimator._validate_data(X, reset=reset, **kwargs)
        return estimator._validate_data(X, y, reset=reset, y_numeric=True, **kwargs)
    if x_only:
        return _sk_validate_data(estimator, X, reset=reset, **kwargs)
    return _sk_validate_data(estimator, X, y, reset=reset, y_numeric=True, **kwargs)


def unit_rms_scale(X, xp):
    """Column RMS ``sqrt(mean_t X[t, j]^2)`` (1 for all-zero columns), shape (n_features,)."""
    scale = xp.sqrt(raw_column_sq_sums(X, xp) / X.shape[0])
    scale[scale == 0] = 1.0
    return scale


def unit_sd_scale(X, xp):
    """Column standard deviation ``sqrt(mean_t (X[t, j] - mean_j)^2)`` (1 for constant
    columns), shape (n_features,), in float64 without a centred copy of ``X``.

    From ``mean(X^2) - mean^2``: relative error about ``eps * (mean / sd)^2``,
    negligible unless a column's spread is below ``1e-6`` of its mean."""
    n = X.shape[0]
    mean = column_sums(X, xp) / n  # a blocked X too
    var = xp.maximum(raw_column_sq_sums(X, xp) / n - mean * mean, 0.0)
    scale = xp.sqrt(var)
    scale[scale <= 1e-7 * xp.abs(mean)] = 1.0  # constant up to the cancellation's error (and zero)
    return scale


#: ``standardize``'s column scales by name (``True`` is ``"rms"``).
STANDARDIZE = {"rms": unit_rms_scale, "std": unit_sd_scale}


def check_standardize(value):
    """``standardize`` as a name of :data:`STANDARDIZE`, or None for False."""
    if isinstance(value, str):
        if value not in STANDARDIZE:
            raise ValueError(f"standardize must be True, False or one of {tuple(STANDARDIZE)}, got {value!r}")
        return value
    check_bool(value, "standardize")
    return "rms" if value else None


class CausalLasso(RegressorMixin, BaseEstimator):
    """Lasso / elastic net for the unrestricted Granger model ``ΔL^t = c + Σ_k γ_k (Δθ_k^t)²``.

    Minimises scikit-learn's :class:`~sklearn.linear_model.ElasticNet` objective
    (:class:`~sklearn.linear_model.Lasso` at ``l1_ratio=1``)::

        (1 / (2 n)) ||y - X w - b||_2^2 + alpha l1_ratio ||w||_1
            + (alpha (1 - l1_ratio) / 2) ||w||_2^2

    by working-set coordinate descent with gap-safe screening
    (:func:`~granger_prune.lasso.enet_coordinate_descent`).  A parameter is
    Granger-causal for the loss when its coefficient is non-zero; a lasso keeps
    at most ``n_samples`` of them.

    ``X`` may be a NumPy array, a CuPy array (fitted on the GPU) or a torch
    tensor (CUDA tensors reach CuPy through DLPack without a copy); float32
    designs are fitted without a float64 copy.

    Parameters
    ----------
    alpha : float, default=1.0
        Regularisation strength ``>= 0``; express it relative to
        :func:`~granger_prune.lasso.alpha_max`.
    l1_ratio : float in (0, 1], default=1.0
        Elastic-net mixing; 1 is the lasso.
    fit_intercept : bool, default=True
        Fit the intercept ``b`` (implicit centring; no centred copy of ``X``).
    standardize : bool or {"rms", "std"}, default=False
        Penalise the coefficients of the unit-RMS columns ``X[:, j] / rms_j``
        (``True`` or ``"rms"``, ``rms_j = sqrt(mean_t X[t, j]^2)``), or of the
        unit-variance columns ``X[:, j] / sd_j`` (``"std"``, scikit-learn's
        ``StandardScaler``), without a scaled copy of ``X``; ``coef_`` is
        reported on the original scale.  This changes the method for
        trajectory designs (each parameter's step size is discarded).
    positive : bool, default=False
        Constrain the coefficients to be non-negative.
    warm_start : bool, default=False
        Start from the previous ``coef_`` when refitting on the same features.
    tol : float, default=1e-4
        Stop when the duality gap is at most ``tol * ||y - mean(y)||^2 / n``
        (``y`` uncentred without an intercept), as scikit-learn does.
    max_iter : int, default=1000
        Maximum outer iterations (each one pass over ``X``).

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Coefficients ``w`` (NumPy, on the scale of ``X``), in the dtype of
        ``X`` as scikit-learn keeps it (the solver works in float64: a
        float32 ``coef_`` is its rounding).
    intercept_ : float
        Intercept ``b`` (0.0 when ``fit_intercept=False``).
    support_ : ndarray of shape (n_features,), dtype=bool
        Mask of the non-zero coefficients (of the float64 solution).
    dual_gap_ : float
        Duality gap at the end of the fit (scale of the objective; of the
        standardized problem when ``standardize``).
    n_iter_ : int
        Outer iterations run.
    n_passes_ : int
        Full passes over ``X``.
    n_screened_ : int
        Features removed by gap-safe screening.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Feature names, when ``X`` has string column names.

    Notes
    -----
    Trajectory residuals are serially correlated and the lasso selects on the
    data it is fitted to: do not read p-values off this fit.
    """

    def __init__(self, alpha=1.0, *, l1_ratio=1.0, fit_intercept=True, standardize=False,
                 positive=False, warm_start=False, tol=1e-4, max_iter=1000):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.standardize = standardize
        self.positive = positive
        self.warm_start = warm_start
        self.tol = tol
        self.max_iter = max_iter

    def _check_params(self):
        check_alpha(self.alpha)
        check_l1_ratio(self.l1_ratio)
        check_tol(self.tol)
        check_int(self.max_iter, "max_iter", 1)
        for name in ("fit_intercept", "positive", "warm_start"):
            check_bool(getattr(self, name), name)
        check_standardize(self.standardize)

    def fit(self, X, y):
        """Fit the model.

        Parameters
        ----------
        X : array-like, CuPy array or torch tensor of shape (n_samples, n_features)
            Design (dense, finite), or the ``X`` of a lazy design
            (:class:`~granger_prune.design.lazy.LazyFeatures`, read a block of
            columns at a time).
        y : array-like of shape (n_samples,)
            Target (finite), in the namespace of ``X``.

        Returns
        -------
        self : CausalLasso
        """
        self._check_params()
        if is_torch_tensor(X):
            X = from_torch(X)
        if is_torch_tensor(y):
            y = from_torch(y)
        xp = get_namespace(X, y)
        if xp is np and not is_blocked(X):
            X, y = _validate(self, X, y, reset=True)
        else:  # CuPy, or columns computed when read: scikit-learn's validation would copy X
            X, y = as_design(X, y, xp)
            self.n_features_in_ = X.shape[1]
        standardize = check_standardize(self.standardize)
        scale = STANDARDIZE[standardize](X, xp) if standardize else None
        w_init = None
        if self.warm_start and getattr(self, "coef_", None) is not None \
                and self.coef_.shape == (X.shape[1],):
            w_init = xp.asarray(self.coef_)
        result, converged, _ = _solve_enet(
            X, y, self.alpha, l1_ratio=self.l1_ratio, fit_intercept=self.fit_intercept,
            positive=self.positive, w_init=w_init, tol=self.tol, max_iter=self.max_iter,
            column_scale=scale)
        if not converged:
            _warn_not_converged(result, self.max_iter, "CausalLasso", stacklevel=2)
        coef = to_numpy(result.w)
        self.support_ = coef != 0.0
        self.coef_ = coef.astype(X.dtype, copy=False)  # scikit-learn keeps float32 as float32
        self.intercept_ = float(result.intercept)
        self.dual_gap_ = float(result.dual_gap)
        self.n_iter_ = int(result.n_iter)
        self.n_passes_ = int(result.n_passes)
        self.n_screened_ = int(result.n_screened)
        return self

    def predict(self, X):
        """Predict ``X @ coef_ + intercept_``.

        Parameters
        ----------
        X : array-like, CuPy array or torch tensor of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
            In the namespace of ``X`` (NumPy for a CPU tensor, CuPy for a CUDA one).
        """
        check_is_fitted(self)
        if is_torch_tensor(X):
            X = from_torch(X)
        if is_blocked(X):  # a lazy or streamed design: block by block, no copy
            coef = self.coef_.astype(np.float64)
            return sum(block @ get_namespace(block).asarray(coef[start:start + block.shape[1]])
                       for start, block in X.column_blocks()) + self.intercept_
        xp = get_namespace(X)
        if xp is np:
            X = _validate(self, X, reset=False)
        return X @ xp.asarray(self.coef_) + self.intercept_
