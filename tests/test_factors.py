"""Common factors by randomized SVD of the standardised design, and the factor count."""

import numpy as np
import pytest

from granger_prune.stats import factors as factors_module
from granger_prune.stats.factors import common_factors, standardised_singular_values


def factor_model(T=200, d=3000, r=3, seed=0, noise=1.0):
    """``X = F Λ' + E`` with strong factors on every column, scales spread over 1e-12..1."""
    rng = np.random.default_rng(seed)
    F = rng.standard_normal((T, r))
    loadings = rng.standard_normal((d, r)) * np.array([3.0, 2.0, 1.5][:r])
    X = F @ loadings.T + noise * rng.standard_normal((T, d))
    # raw-scale steps, whose means are of the order of their spread: standardising
    # removes the scale
    return (X + 5.0) * 10.0 ** rng.uniform(-12, 0, d), F


def exact(X):
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    U, s, _ = np.linalg.svd(Xs, full_matrices=False)
    return U, s, float(np.sum(Xs ** 2))


def test_singular_values_and_vectors_match_the_exact_svd():
    X, _ = factor_model()
    U, s, total = standardised_singular_values(X, 5, n_iter=3)
    U_ref, s_ref, total_ref = exact(X)
    np.testing.assert_allclose(total, total_ref, rtol=1e-10)
    np.testing.assert_allclose(s[:3], s_ref[:3], rtol=1e-6)  # well separated: converged
    np.testing.assert_allclose(s[3:], s_ref[3:5], rtol=0.05)  # the noise bulk: approximate
    cosines = np.linalg.svd(U[:, :3].T @ U_ref[:, :3], compute_uv=False)
    assert cosines.min() > 1 - 1e-8
    np.testing.assert_allclose(U.T @ U, np.eye(5), atol=1e-12)
    assert np.abs(U.sum(axis=0)).max() < 1e-10  # orthogonal to the constant


def test_column_blocks_give_the_same_factors(monkeypatch):
    X, _ = factor_model(d=500)
    whole = standardised_singular_values(X, 4)
    monkeypatch.setattr(factors_module, "BLOCK_ENTRIES", 200 * 37)  # blocks of 37 columns
    blocked = standardised_singular_values(X, 4)
    np.testing.assert_allclose(blocked[1], whole[1], rtol=1e-10)
    np.testing.assert_allclose(np.abs(blocked[0].T @ whole[0]), np.eye(4), atol=1e-8)


@pytest.mark.parametrize("rule", ["bai_ng", "eigenvalue_ratio"])
def test_the_rules_find_the_planted_number_of_factors(rule):
    for r in (1, 3):
        X, F = factor_model(r=r, seed=r)
        result = common_factors(X, rule)
        assert result.n_factors == r and result.factors.shape == (X.shape[0], r)
        _, s_ref, total = exact(X)
        np.testing.assert_allclose(result.share, np.sum(s_ref[:r] ** 2) / total, rtol=1e-6)
        # the factors span the planted ones (up to noise)
        coef, *_ = np.linalg.lstsq(np.c_[np.ones(len(F)), result.factors], F, rcond=None)
        fitted = np.c_[np.ones(len(F)), result.factors] @ coef
        assert np.min(1 - ((F - fitted) ** 2).sum(0) / ((F - F.mean(0)) ** 2).sum(0)) > 0.95


def test_no_factor_in_pure_noise_and_given_counts():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((150, 2000))
    assert common_factors(X, "bai_ng").n_factors == 0
    given = common_factors(X, 4)
    assert given.n_factors == 4 and given.criterion.size == 0
    assert common_factors(X, 0).factors.shape == (150, 0)
    X[:, :10] = 3.0  # constant columns are left out
    assert np.isfinite(common_factors(X, 2).share)
    for bad in (-1, "pca", 1.5, True):
        with pytest.raises(ValueError, match="n_factors"):
            common_factors(X, bad)
