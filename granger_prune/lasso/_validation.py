"""Argument and input checks of the lasso solvers (torch-free, NumPy or CuPy input)."""

import numbers

import numpy as np

from ._operator import binary_exponent, column_blocks, max_abs, over_columns


def check_real(value, name, *, low=None, low_open=False, high=None):
    """Return ``value`` as a float if it is a finite real in range, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {name}={value!r}")
    value = float(value)
    bad = not np.isfinite(value)
    if low is not None:
        bad = bad or (value <= low if low_open else value < low)
    if high is not None:
        bad = bad or value > high
    if bad:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"<= {high:g}")
        raise ValueError(f"{name} must be a finite number {' and '.join(bounds)}, got {name}={value!r}")
    return value


def check_alpha(alpha):
    return check_real(alpha, "alpha", low=0.0)


def check_l1_ratio(l1_ratio):
    return check_real(l1_ratio, "l1_ratio", low=0.0, low_open=True, high=1.0)


def check_tol(tol):
    return check_real(tol, "tol", low=0.0, low_open=True)


def check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {name}={value!r}")
    return bool(value)


def check_not_complex(value, name):
    """``TypeError`` naming ``name`` when ``value`` (NumPy, CuPy or array-like) is complex.

    NumPy would drop the imaginary part with only a warning.
    """
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype  # no device copy
    if getattr(dtype, "kind", None) == "c" or getattr(dtype, "is_complex", False):  # torch dtypes
        raise TypeError(f"{name} is complex ({name}.dtype={dtype}); the designs and losses "
                        "are real: pass the real part explicitly")


def as_design(X, y, xp):
    """Check ``X`` (2-D, float32 or float64, kept as it is) and ``y`` (1-D, to float64).

    ``X`` is never copied when it is already a floating array of namespace
    ``xp``: trajectory designs are large.  Other dtypes are converted to float64.

    Raises
    ------
    ValueError
        On wrong dimensions, mismatched lengths, empty input, or NaN/infinity in
        ``y`` (``X`` is checked for finiteness by :func:`column_sums`).
    TypeError
        On complex ``X`` or ``y`` (the models are real; dropping the imaginary
        part would be silent).
    """
    check_not_complex(X, "X")
    check_not_complex(y, "y")
    if not (hasattr(X, "dtype") and X.dtype in (xp.float32, xp.float64)):
        X = xp.asarray(X, dtype=xp.float64)
    y = xp.asarray(y, dtype=xp.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got X.shape={X.shape}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D (n_samples,), got y.shape={y.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            "X and y have different numbers of samples (lengths): "
            f"X.shape={X.shape}, y.shape={y.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"X must have at least one sample and one feature, got X.shape={X.shape}")
    if not bool(xp.all(xp.isfinite(y))):
        raise ValueError("y contains NaN or infinity")
    return X, y


def column_sums(X, xp):
    """Column sums of ``X`` in float64, shape (n_features,); raise if ``X`` is not finite.

    One pass over ``X``: a NaN or infinity in a column makes its sum non-finite,
    so finiteness is checked on the sums, without a boolean copy of ``X``.
    """
    sums = over_columns(X, lambda block: xp.sum(block, axis=0, dtype=xp.float64), xp)
    if not bool(xp.all(xp.isfinite(sums))):
        if all(bool(xp.all(xp.isfinite(block))) for _, block in column_blocks(X)):
            raise ValueError("X has column sums beyond the float64 range; rescale X")
        raise ValueError("X contains NaN or infinity")
    return sums


def column_sums_and_exponent(X, xp):
    """:func:`column_sums` and the :func:`~._operator.max_abs_exponent` of ``X`` together:
    both from each block of a blocked ``X``, so one pass over it."""
    parts, largest = [], 0.0
    for _, block in column_blocks(X):
        parts.append(xp.sum(block, axis=0, dtype=xp.float64))
        largest = max(largest, max_abs(block, xp))
    sums = parts[0] if len(parts) == 1 else xp.concatenate(parts)
    if not bool(xp.all(xp.isfinite(sums))):
        column_sums(X, xp)  # raises, saying why
    return sums, binary_exponent(largest)


def as_coef(w, n_features, xp, name="w"):
    w = xp.asarray(w, dtype=xp.float64)
    if w.shape != (n_features,):
        raise ValueError(f"{name} must have shape ({n_features},), got {name}.shape={w.shape}")
    if not bool(xp.all(xp.isfinite(w))):
        raise ValueError(f"{name} contains NaN or infinity")
    return w
