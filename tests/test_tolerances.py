"""The tolerance helpers of tests/_tolerances.py accept rounding and reject real errors."""

import numpy as np
import pytest
from scipy import stats

from _tolerances import assert_f_close, assert_p_close, reduction_atol


def test_f_tolerance_is_absolute_near_zero_and_relative_above_one():
    assert_f_close([3.2e-6, 250.0], [3.2e-6 + 3e-14, 250.0 * (1 + 5e-9)], tol=1e-8)
    with pytest.raises(AssertionError):
        assert_f_close([250.0], [250.0 * (1 + 1e-6)], tol=1e-8)
    with pytest.raises(AssertionError):
        assert_f_close([0.5], [0.5 + 1e-7], tol=1e-8)
    with pytest.raises(AssertionError, match="NaN"):
        assert_f_close([np.nan, 1.0], [1.0, 1.0], tol=1e-8)


def test_p_band_follows_the_f_tolerance_and_catches_wrong_degrees_of_freedom():
    f = np.array([0.01, 1.3, 40.0, 400.0])
    p = stats.f.sf(f, 3, 50)
    assert_p_close(p, f, 3, 50, tol=1e-10)
    assert_p_close(stats.f.sf(f * (1 + 1e-9), 3, 50), f, 3, 50, tol=1e-8)
    with pytest.raises(AssertionError):
        assert_p_close(stats.f.sf(f, 2, 50), f, 3, 50, tol=1e-8)  # wrong df_num
    with pytest.raises(AssertionError):
        assert_p_close(p * (1 + 1e-6), f, 3, 50, tol=1e-10)
    assert_p_close([1.0], [np.nan], 1, 50, tol=1e-8)  # no test: p = 1
    with pytest.raises(AssertionError):
        assert_p_close([0.3], [np.nan], 1, 50, tol=1e-8)


def test_reduction_bound_covers_float32_rounding_and_not_more():
    rng = np.random.default_rng(0)
    X, v = rng.random((1000, 50)), rng.standard_normal(1000)
    exact = X.T @ v
    X32 = X.astype(np.float32)
    blocked = sum(X32[s:s + 128].T @ v[s:s + 128].astype(np.float32) for s in range(0, 1000, 128))
    bound = reduction_atol(X, v, np.float32)
    assert np.all(np.abs(blocked - exact) <= bound)
    assert np.all(bound < 1e-3 * np.abs(X).T @ np.abs(v))  # far tighter than a wrong result
