"""The compiled grouped-test kernel against the batched array path CuPy runs."""

import threading

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from granger_prune.stats import ftests
from granger_prune.stats._grouped import compiled_projections

EPS = np.finfo(np.float64).eps


def momentum_groups(T, n_groups, m, rng, dtype):
    """Groups like a momentum unit's features: a positive trend and lags of one series,
    nearly collinear, plus a zero column, a copy and a column in the span of Z."""
    base = np.abs(rng.standard_normal((T + m, n_groups))).cumsum(axis=0) * 1e-6
    X = np.empty((T, n_groups * m))
    for i in range(m):
        X[:, i::m] = base[m - i:m - i + T] * (1.0 + 1e-3 * rng.standard_normal((T, n_groups)))
    X[:, 0] = 0.0  # group 0: one zero column
    X[:, m + 1] = 3.0 * X[:, m]  # group 1: a copy
    X[:, 2 * m] = 2.5  # group 2: in the span of the intercept
    return X.astype(dtype)


def array_path(X, cols, Q, e, raw_sq):
    block = ftests._feature_major(X, cols, np)
    return ftests._orthogonal_projections(block, Q, e, raw_sq, np)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m,k", [(2, 1), (3, 3), (8, 0)])
def test_compiled_kernel_matches_the_array_path(dtype, m, k):
    rng = np.random.default_rng(m + 10 * k)
    T, n_groups = 123, 40  # T not a multiple of the kernel's four partial sums
    X = momentum_groups(T, n_groups, m, rng, dtype)
    Z = np.column_stack([np.ones(T), rng.standard_normal((T, 2))])[:, :k]
    Q = ftests.restricted_basis(Z, np) if k else np.zeros((T, 0))
    y = rng.standard_normal(T)
    e = y - Q @ (Q.T @ y)
    cols = np.arange(n_groups * m).reshape(n_groups, m)
    raw_sq = np.sum(X.astype(np.float64) ** 2, axis=0)[cols]
    explained, rank = compiled_projections(X, cols, Q, e, raw_sq, ftests.DEGENERACY)
    expected, expected_rank = array_path(X, cols, Q, e, raw_sq)
    assert_array_equal(rank, expected_rank)
    assert rank[0] == m - 1 and rank[1] == m - 1 and rank[2] == (m if k == 0 else m - 1)
    # two float64 Gram-Schmidt runs in different summation orders (reorthogonalised, so
    # the basis is orthonormal to O(eps) whatever the groups' condition): each explained
    # part, at most ||e||^2, differs by a sum-of-T-products rounding, T eps ||e||^2
    # (measured: under 0.04 of that bound)
    np.testing.assert_allclose(explained, expected, rtol=0, atol=T * EPS * float(e @ e))


def test_compiled_kernel_gathers_any_column_order():
    rng = np.random.default_rng(3)
    T, d = 60, 30
    X = rng.standard_normal((T, d))
    cols = rng.permutation(d).reshape(10, 3)
    Q = np.ones((T, 1)) / np.sqrt(T)
    e = rng.standard_normal(T)
    e -= e.mean()
    raw_sq = np.sum(X ** 2, axis=0)[cols]
    explained, rank = compiled_projections(X, cols, Q, e, raw_sq, ftests.DEGENERACY)
    for g in range(10):  # the projection of e on M_Z X_g, by least squares
        B = X[:, cols[g]] - X[:, cols[g]].mean(axis=0)
        fitted = B @ np.linalg.lstsq(B, e, rcond=None)[0]
        np.testing.assert_allclose(explained[g], fitted @ fitted, rtol=1e-12)
    assert_array_equal(rank, 3)


def test_concurrent_callers_get_the_same_results():
    rng = np.random.default_rng(4)
    T = 80
    X = rng.standard_normal((T, 300))
    y = rng.standard_normal(T)
    groups = np.repeat(np.arange(100), 3)
    reference = ftests.nested_f_tests(y, X, np.ones((T, 1)), groups=groups)
    results, errors = [], []

    def run():
        try:
            results.append(ftests.nested_f_tests(y, X, np.ones((T, 1)), groups=groups))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4
    for result in results:  # the kernel's sums run in a fixed order
        assert_array_equal(result.fvalue, reference.fvalue)
