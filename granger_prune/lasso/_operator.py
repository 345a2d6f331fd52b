"""The centred, scaled design ``Xt = (X - 1 mean^T) diag(1 / scale)``, never formed.

Trajectory designs are large (up to 10^4 x 10^7), so the solvers never build a
centred or scaled copy of ``X``.  :class:`ImplicitDesign` applies ``Xt`` and
``Xt^T`` through ``X`` itself:

    Xt^T v = (X^T v - mean * sum(v)) / scale
    Xt w   = X (w / scale) - mean^T (w / scale)

``X`` may be float32 or float64, NumPy or CuPy.  Products with a float32 ``X``
accumulate at most ``ROW_BLOCK`` rows in float32 (one BLAS call per block) and
add the blocks in float64, so the rounding error does not grow with ``T``.
"""

import numpy as np

#: Rows accumulated in float32 before the partial sums are added in float64.
ROW_BLOCK = 128


class ImplicitDesign:
    """``Xt = (X - 1 mean^T) / scale`` as an operator.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
        Raw design (NumPy or CuPy); never copied or modified.
    mean : ndarray of shape (n_features,), float64, or None
        Column means to subtract (None: no centring).
    scale : ndarray of shape (n_features,), float64, or None
        Positive column divisors (None: no scaling).
    xp : module
        ``numpy`` or ``cupy``, the namespace of ``X``.
    """

    def __init__(self, X, mean, scale, xp):
        self.X, self.mean, self.scale, self.xp = X, mean, scale, xp
        self.n_passes = 0  # full passes over X made through this operator

    @property
    def shape(self):
        return self.X.shape

    def raw_rmatvec(self, v):
        """``X^T v`` in float64; ``v`` of shape (n_samples,), result (n_features,)."""
        self.n_passes += 1
        return transpose_product(self.X, v, self.xp)

    def rmatvec(self, v):
        """``Xt^T v``, float64 of shape (n_features,): the one full pass over ``X``."""
        out = self.raw_rmatvec(v)
        if self.mean is not None:
            out -= self.mean * float(self.xp.sum(v))
        if self.scale is not None:
            out /= self.scale
        return out

    def matvec(self, w):
        """``Xt w`` of shape (n_samples,) from the non-zero entries of ``w`` only."""
        xp = self.xp
        support = xp.nonzero(w)[0]
        if support.shape[0] == 0:
            return xp.zeros(self.X.shape[0], dtype=xp.float64)
        w_s = w[support]
        if self.scale is not None:
            w_s = w_s / self.scale[support]
        fit = take_columns(self.X, support, xp).astype(xp.float64, copy=False) @ w_s
        if self.mean is not None:
            fit -= float(self.mean[support] @ w_s)
        return fit

    def columns(self, index):
        """``Xt[:, index]`` as a float64 array of shape (n_samples, len(index)).

        Also returns ``max |X[:, index]| / scale`` per column (shape
        ``(len(index),)``), the magnitude against which a centred column is
        judged numerically constant.
        """
        xp = self.xp
        block = take_columns(self.X, index, xp).astype(xp.float64, copy=False)
        magnitude = xp.max(xp.abs(block), axis=0)
        if self.mean is not None:
            block -= self.mean[index]
        if self.scale is not None:
            block /= self.scale[index]
            magnitude /= self.scale[index]
        return block, magnitude

    def column_sq_norms(self):
        """An upper bound on ``||Xt_j||^2`` for every column, float64 of shape (n_features,).

        ``sum_t x_tj^2 - n mean_j^2`` in one pass (``einsum``, no temporary
        the size of ``X``), plus a margin for the rounding of that difference
        (``1e-5`` relative for float32, ``1e-12`` for float64), so the bound is
        safe for screening.  Exactly zero for all-zero columns.
        """
        xp = self.xp
        sq_sums = self.raw_column_sq_sums()
        out = sq_sums
        if self.mean is not None:
            margin = 1e-5 if self.X.dtype == xp.float32 else 1e-12
            out = xp.maximum(sq_sums - self.X.shape[0] * self.mean * self.mean, 0.0) + margin * sq_sums
        if self.scale is not None:
            out = out / (self.scale * self.scale)
        return out

    def raw_column_sq_sums(self):
        """``sum_t X[t, j]^2`` in float64, shape (n_features,), in one pass."""
        self.n_passes += 1
        return raw_column_sq_sums(self.X, self.xp)

    def take(self, index):
        """A new design on the columns ``index`` (copies ``X[:, index]``)."""
        xp = self.xp
        X = take_columns(self.X, index, xp)
        mean = None if self.mean is None else self.mean[index]
        scale = None if self.scale is None else self.scale[index]
        return ImplicitDesign(X, mean, scale, xp)


def take_columns(X, index, xp):
    """``X[:, index]`` as a new array, by the gather that suits the memory layout.

    ``take`` along axis 1 is several times faster than fancy indexing on a
    C-ordered ``X`` and far slower on a Fortran-ordered one.
    """
    if X.flags.f_contiguous and not X.flags.c_contiguous:
        return X[:, index]
    return xp.take(X, index, axis=1)


def transpose_product(X, V, xp):
    """``X^T V`` in float64 for ``V`` of shape (n_samples,) or (n_samples, k), one pass.

    With a float32 ``X``, ``V`` is rounded to float32 and each block of
    ``ROW_BLOCK`` rows is one BLAS call accumulating in float32; the blocks are
    added in float64.
    """
    if X.dtype == xp.float64:
        return X.T @ xp.asarray(V, dtype=xp.float64)
    V32 = xp.asarray(V, dtype=xp.float32)
    out = xp.zeros((X.shape[1],) + V32.shape[1:], dtype=xp.float64)
    for start in range(0, X.shape[0], ROW_BLOCK):
        stop = start + ROW_BLOCK
        out += X[start:stop].T @ V32[start:stop]
    return out


def raw_column_sq_sums(X, xp):
    """``sum_t X[t, j]^2`` in float64, shape (n_features,), in one pass.

    ``einsum`` makes no temporary the size of ``X``; a float32 ``X`` is
    accumulated in float32 over at most ``ROW_BLOCK`` rows at a time.
    """
    if X.dtype == xp.float64:
        return xp.einsum("ij,ij->j", X, X)
    out = xp.zeros(X.shape[1], dtype=xp.float64)
    for start in range(0, X.shape[0], ROW_BLOCK):
        block = X[start:start + ROW_BLOCK]
        out += xp.einsum("ij,ij->j", block, block)
    return out


def as_numpy_index(index):
    """A sorted host ``int64`` index array (from NumPy or CuPy)."""
    if hasattr(index, "get"):
        index = index.get()
    return np.sort(np.asarray(index, dtype=np.int64))
