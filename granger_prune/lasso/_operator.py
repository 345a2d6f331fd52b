"""The centred, scaled design ``Xt = (X - 1 mean^T) diag(1 / scale)``, never formed.

Trajectory designs are large (up to 10^4 x 10^7), so the solvers never build a
centred or scaled copy of ``X``.  :class:`ImplicitDesign` applies ``Xt`` and
``Xt^T`` through ``X`` itself:

    Xt^T v = (X^T v - mean * sum(v)) / scale
    Xt w   = X (w / scale) - mean^T (w / scale)

``X`` may be float32 or float64, NumPy or CuPy, or a design whose columns are
computed when read (:class:`granger_prune.design.lazy.LazyFeatures`): every pass
over such an ``X`` goes through :func:`column_blocks`, and gathers through its
``columns``.  Products with a float32 ``X``
accumulate at most ``ROW_BLOCK`` rows in float32 (one BLAS call per block) and
add the blocks in float64, so the rounding error does not grow with ``T``.

Scale.  Raw (Δθ)² features are 1e-8 to 1e-20 and below, so float32 products
of them with each other leave float32's normal range (about 1.2e-38 to 3.4e38):
squares are accumulated in float64 (exact products of float32 numbers, whatever
their scale), and the other operand of ``X^T V`` is rescaled by a power of two
so that every product is of order one before the float32 BLAS call and the
result is scaled back exactly.  Powers of two commute with rounding, so the
results are the same, bit for bit, as without the rescaling wherever that did
not underflow or overflow.
"""

import math

import numpy as np

#: Rows accumulated in float32 before the partial sums are added in float64.
ROW_BLOCK = 128
#: Entries of a float32 block converted to float64 at a time (256 MB) where
#: there is no casting ``einsum`` (CuPy).
CONVERTED_BLOCK = 2 ** 25


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

    def __init__(self, X, mean, scale, xp, x_exponent=0):
        self.X, self.mean, self.scale, self.xp = X, mean, scale, xp
        self.x_exponent = x_exponent  # binary exponent of max |X| (scales float32 products)
        self.n_passes = 0  # full passes over X made through this operator

    @property
    def shape(self):
        return self.X.shape

    def raw_rmatvec(self, v):
        """``X^T v`` in float64; ``v`` of shape (n_samples,), result (n_features,)."""
        self.n_passes += 1
        return transpose_product(self.X, v, self.xp, self.x_exponent)

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

        Raises
        ------
        ValueError
            When a sum of squares overflows float64 (entries of about 1e154
            and more, only possible in a float64 ``X``).
        """
        xp = self.xp
        sq_sums = self.raw_column_sq_sums()
        if not bool(xp.all(xp.isfinite(sq_sums))):
            raise ValueError("X has sums of squares beyond the float64 range (entries of about "
                             "1e154 or more); multiply X by a power of two (the lasso is "
                             "equivariant: alpha_max and the coefficients scale with it)")
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
        return ImplicitDesign(X, mean, scale, xp, self.x_exponent)


def is_blocked(X):
    """Whether ``X`` is read a block of columns at a time (it has ``column_blocks()``,
    ``block_columns`` and ``columns(index)``)."""
    return hasattr(X, "column_blocks")


def column_blocks(X):
    """``(start, block)`` pairs covering ``X``'s columns: the blocks of a blocked ``X``,
    ``X`` itself otherwise."""
    return X.column_blocks() if is_blocked(X) else iter([(0, X)])


def over_columns(X, per_block, xp):
    """``per_block`` (a function of a 2-D array returning per-column values along axis 0)
    applied to ``X``, block by block for a blocked ``X``, the results joined."""
    parts = [per_block(block) for _, block in column_blocks(X)]
    return parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=0)


def groups_by_block(X, columns):
    """The groups of columns ``columns`` (G, m) by the block of ``X`` holding them.

    Yields ``(block, members, local)``: the groups ``members`` (indices into the
    rows of ``columns``) lie in ``block`` at the columns ``local``.  An unblocked
    ``X`` is one block.  For a blocked ``X`` (one pass over it) every group must
    lie within one block, as the units of a lazy design do.
    """
    columns = np.asarray(columns)
    if not is_blocked(X):
        yield X, np.arange(columns.shape[0]), columns
        return
    low, high = columns.min(axis=1), columns.max(axis=1)
    width = X.block_columns  # blocks start at multiples of it: check before reading any
    spanning = int(np.count_nonzero(low // width != high // width))
    if spanning:
        raise ValueError(f"{spanning} groups of columns span two blocks of X; group the columns "
                         "of one unit only")
    covered = np.zeros(columns.shape[0], dtype=bool)
    for start, block in X.column_blocks():
        members = np.flatnonzero((low >= start) & (high < start + block.shape[1]))
        covered[members] = True
        if members.size:
            yield block, members, columns[members] - start
    if not covered.all():
        raise IndexError(f"{int((~covered).sum())} groups hold columns beyond X's {X.shape[1]}")


def take_columns(X, index, xp):
    """``X[:, index]`` as a new array, by the gather that suits the memory layout.

    ``take`` along axis 1 is several times faster than fancy indexing on a
    C-ordered ``X`` and far slower on a Fortran-ordered one.
    """
    if is_blocked(X):
        return X.columns(index.get() if hasattr(index, "get") else np.asarray(index))  # as given
    if X.flags.f_contiguous and not X.flags.c_contiguous:
        return X[:, index]
    return xp.take(X, index, axis=1)


def binary_exponent(value):
    """``e`` with ``|value| * 2**-e`` in ``[0.5, 1)`` (0 for zero or a non-finite value)."""
    value = float(value)
    if value == 0.0 or not math.isfinite(value):
        return 0
    return math.frexp(value)[1]


def max_abs(block, xp):
    """``max |block|`` as a float (two reductions, no temporary)."""
    return max(abs(float(xp.max(block))), abs(float(xp.min(block))))


def max_abs_exponent(X, xp):
    """:func:`binary_exponent` of ``max |X|``, block by block for a blocked ``X``."""
    return binary_exponent(max(max_abs(block, xp) for _, block in column_blocks(X)))


def transpose_product(X, V, xp, x_exponent=0):
    """``X^T V`` in float64 for ``V`` of shape (n_samples,) or (n_samples, k), one pass.

    With a float32 ``X``, each column of ``V`` is multiplied by the power of two
    that brings it to at most ``2**-x_exponent`` in absolute value
    (``x_exponent`` the binary exponent of ``max |X|``, see
    :func:`max_abs_exponent`), so that every product is at most 1 and far from
    float32's underflow; the scaled ``V`` is rounded to float32, each block of
    ``ROW_BLOCK`` rows is one BLAS call accumulating in float32, the blocks are
    added in float64 and the scale is undone exactly.  A float64 ``X`` goes to
    BLAS as it is.
    """
    if is_blocked(X):
        return over_columns(X, lambda block: transpose_product(block, V, xp, x_exponent), xp)
    if X.dtype == xp.float64:
        return X.T @ xp.asarray(V, dtype=xp.float64)
    V = xp.asarray(V, dtype=xp.float64)
    flat = V.ndim == 1
    V2 = V[:, None] if flat else V
    v_max = xp.max(xp.abs(V2), axis=0) if V2.shape[0] else xp.zeros(V2.shape[1])
    shift = -xp.frexp(v_max)[1] - int(x_exponent)  # frexp(0) has exponent 0
    V32 = xp.ldexp(V2, shift[None, :]).astype(xp.float32)
    out = xp.zeros((X.shape[1], V2.shape[1]), dtype=xp.float64)
    for start in range(0, X.shape[0], ROW_BLOCK):
        stop = start + ROW_BLOCK
        out += X[start:stop].T @ V32[start:stop]
    out = xp.ldexp(out, -shift[None, :])
    return out[:, 0] if flat else out


def raw_column_sq_sums(X, xp):
    """``sum_t X[t, j]^2`` in float64, shape (n_features,), in one pass.

    A float32 ``X`` is squared and summed in float64: the square of a float32
    number is exact in float64 and can neither underflow nor overflow there
    (in float32 it does below about 1e-19 and above 1e19).  NumPy's ``einsum``
    does this without a float64 copy of ``X``; CuPy converts blocks of at most
    ``ROW_BLOCK`` rows and ``CONVERTED_BLOCK`` entries.  A float64 ``X`` goes
    to ``einsum`` as it is.
    """
    if is_blocked(X):
        return over_columns(X, lambda block: raw_column_sq_sums(block, xp), xp)
    if X.dtype == xp.float64:
        return xp.einsum("ij,ij->j", X, X)
    if xp is np:
        return np.einsum("ij,ij->j", X, X, dtype=np.float64)
    rows = max(1, min(ROW_BLOCK, CONVERTED_BLOCK // max(X.shape[1], 1)))
    out = xp.zeros(X.shape[1], dtype=xp.float64)
    for start in range(0, X.shape[0], rows):
        block = X[start:start + rows].astype(xp.float64)
        out += xp.einsum("ij,ij->j", block, block)
    return out


def as_numpy_index(index):
    """A sorted host ``int64`` index array (from NumPy or CuPy)."""
    if hasattr(index, "get"):
        index = index.get()
    return np.sort(np.asarray(index, dtype=np.int64))
