"""A design and target validated and prepared once, for one fit or many."""

from ..backend import get_namespace
from ._dual import dual_norm
from ._operator import ImplicitDesign, is_blocked, max_abs_exponent
from ._validation import as_coef, as_design, check_bool, column_sums_and_exponent


def _check_scale(column_scale, n_features, xp):
    scale = as_coef(column_scale, n_features, xp, name="column_scale")
    if not bool(xp.all(scale > 0)):
        raise ValueError("column_scale must be positive")
    return scale


#: float64 designs with ``max |X|`` beyond ``2**±FLOAT64_EXPONENT_LIMIT`` are refused:
#: sums of their squares overflow, or underflow into subnormals.
FLOAT64_EXPONENT_LIMIT = 500


class Problem:
    """A design and target prepared once for several fits (a path, a support search).

    Holds the validated ``X`` (never copied), the column means, the centred
    target, the column scale, the binary exponent of ``max |X|`` (which scales
    float32 products, see :mod:`._operator`) and, lazily, the squared column
    norms and ``Xt^T yc / n`` (the correlations at ``w = 0``), each one pass
    over ``X``.

    Raises
    ------
    ValueError
        Besides the input checks, for a float64 ``X`` whose entries reach
        ``2**500`` (about 1e150) or whose largest entry is below ``2**-500``:
        their squares leave the float64 range.  Multiply ``X`` by a power of
        two first; the lasso is equivariant (``alpha_max`` and ``1 / coef``
        scale with ``X``).

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
        if self.fit_intercept:  # one pass over a blocked X for both
            sums, x_exponent = column_sums_and_exponent(X, xp)
            mean = sums / self.n_samples
        else:
            mean, x_exponent = None, max_abs_exponent(X, xp)
        self.y_mean = float(xp.mean(y)) if self.fit_intercept else 0.0
        self.yc = y - self.y_mean
        self.yc_norm2 = float(self.yc @ self.yc)
        self.scale = None if column_scale is None else _check_scale(column_scale, self.n_features, xp)
        # (an exponent this far from 0 means max |X| > 0: binary_exponent(0) is 0)
        if X.dtype == xp.float64 and abs(x_exponent) > FLOAT64_EXPONENT_LIMIT:
            raise ValueError(
                f"max |X| = 2**{x_exponent}: the squares of entries this "
                f"{'large' if x_exponent > 0 else 'small'} leave the float64 range; multiply X "
                "by a power of two (the lasso is equivariant: alpha_max scales with X and the "
                "coefficients inversely)")
        self.design = ImplicitDesign(X, mean, self.scale, xp, x_exponent)
        # the column sums (also the finiteness check of X) and max |X|: one pass of a blocked X
        self.design.n_passes = 1 if is_blocked(X) and self.fit_intercept else 2
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
