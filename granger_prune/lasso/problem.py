"""A design and target validated and prepared once, for one fit or many."""

from ..backend import get_namespace, to_numpy
from ._dual import dual_norm
from ._operator import ImplicitDesign
from ._validation import as_coef, as_design, check_bool, column_sums


def _check_scale(column_scale, n_features, xp):
    scale = as_coef(column_scale, n_features, xp, name="column_scale")
    if not bool(xp.all(scale > 0)):
        raise ValueError("column_scale must be positive")
    return scale



class Problem:
    """A design and target prepared once for several fits (a path, a support search).

    Holds the validated ``X`` (never copied), the column means, the centred
    target, the column scale and, lazily, the squared column norms and
    ``Xt^T yc / n`` (the correlations at ``w = 0``), each one pass over ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
    fit_intercept : bool
    column_scale : ndarray of shape (n_features,) or None
    """

    def __init__(self, X, y, fit_intercept=True, column_scale=None):
        xp = get_namespace(X, y, column_scale)
        X, y = as_design(X, y, xp)
        self.fit_intercept = check_bool(fit_intercept, "fit_intercept")
        self.xp = xp
        self.n_samples, self.n_features = X.shape
        mean = column_sums(X, xp) / self.n_samples if self.fit_intercept else None
        self.y_mean = float(xp.mean(y)) if self.fit_intercept else 0.0
        self.yc = y - self.y_mean
        self.yc_host = to_numpy(self.yc)
        self.yc_norm2 = float(self.yc @ self.yc)
        self.scale = None if column_scale is None else _check_scale(column_scale, self.n_features, xp)
        self.design = ImplicitDesign(X, mean, self.scale, xp)
        self.design.n_passes = 1  # the column sums (also the finiteness check of X)
        self._sq_norms = None
        self._correlation_at_zero = None

    @property
    def sq_norms(self):
        """``||Xt_j||^2``, shape (n_features,) (one pass, then cached)."""
        if self._sq_norms is None:
            self._sq_norms = self.design.column_sq_norms()
        return self._sq_norms

    @property
    def correlation_at_zero(self):
        """``Xt^T yc / n``, shape (n_features,) (one pass, then cached)."""
        if self._correlation_at_zero is None:
            self._correlation_at_zero = self.design.rmatvec(self.yc) / self.n_samples
        return self._correlation_at_zero

    def alpha_max(self, l1_ratio=1.0, positive=False):
        """Smallest ``alpha`` giving ``w = 0`` (see :func:`~granger_prune.lasso.alpha_max`)."""
        return dual_norm(self.correlation_at_zero, positive, self.xp) / l1_ratio

    def intercept(self, w):
        """The optimal intercept ``mean(y) - mean(X, 0) @ w`` for ``w`` on the scale of ``X``."""
        if not self.fit_intercept:
            return 0.0
        return self.y_mean - float(self.design.mean @ w)
