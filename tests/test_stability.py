"""Stability selection: complementary block pairs, the base selector and the bound."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from granger_prune.lasso import lasso_path
from granger_prune.selection.stability import (complementary_blocks, first_to_enter,
                                               selection_size, stability_selection)


def planted(seed, T=400, d=300, s=8):
    rng = np.random.default_rng(seed)
    scales = np.exp(rng.standard_normal(d))  # raw-scale columns of spread scales
    X = (rng.standard_normal((T, d)) * scales) ** 2 * 1e-8
    causal = rng.choice(d, s, replace=False)
    y = X[:, causal] @ (-1.0 / (1e-8 * scales[causal] ** 2)) * 0.2 + rng.standard_normal(T)
    return X, y, set(causal.tolist())


def test_complementary_blocks_partition_the_steps_into_contiguous_blocks():
    rng = np.random.default_rng(0)
    a, b = complementary_blocks(103, 10, rng)
    assert_array_equal(np.sort(np.concatenate([a, b])), np.arange(103))
    assert abs(a.size - b.size) <= 13 and not set(a) & set(b)
    for half in (a, b):  # runs of whole blocks
        starts = half[np.r_[True, np.diff(half) != 1]]
        assert np.all(starts % 10 == 0)


def test_the_base_selector_takes_the_first_features_to_enter():
    X, y, _ = planted(0)
    path = lasso_path(X, y, n_alphas=30, max_support=5)
    assert path.n_support[-1] >= 5 and np.all(path.n_support[:-1] < 5)
    chosen = first_to_enter(path, 5)
    entry = [int(np.flatnonzero(path.coefs.toarray()[j])[0]) for j in chosen]
    assert entry == sorted(entry) and len(chosen) == 5
    full = lasso_path(X, y, n_alphas=30)
    assert np.array_equal(full.alphas[:len(path.alphas)], path.alphas)  # the same grid, cut


def test_selection_size_meets_the_bound():
    for d, pi, ev in [(2000, 0.75, 1.0), (300, 0.9, 0.5), (10, 0.6, 0.01)]:
        q = selection_size(d, pi, ev)
        assert q >= 1 and (q * q / ((2 * pi - 1) * d) <= ev or q == 1)
        assert (q + 1) ** 2 / ((2 * pi - 1) * d) > ev


def test_realised_false_selections_stay_within_the_bound():
    false, power = [], []
    for seed in range(6):
        X, y, causal = planted(seed)
        result = stability_selection(X, y, threshold=0.75, max_false=1.0, n_pairs=10, seed=seed)
        assert result.n_selected == selection_size(300, 0.75, 1.0) == 12
        assert result.expected_false_bound <= 1.0 and result.n_subsamples == 20
        chosen = set(np.flatnonzero(result.selected).tolist())
        false.append(len(chosen - causal))
        power.append(len(chosen & causal) / len(causal))
        assert np.all((result.probability >= 0) & (result.probability <= 1))
    assert np.mean(false) <= 1.0 and np.mean(power) > 0.5, (false, power)
    assert "E[false selections] <=" in result.summary()
    assert list(result.to_frame().columns) == ["probability", "selected"]


def test_bad_input():
    X, y, _ = planted(0, T=60, d=20)
    for bad, match in ((dict(threshold=0.5), "threshold"), (dict(max_false=0), "max_false"),
                       (dict(n_selected=0), "n_selected"), (dict(n_pairs=0), "n_pairs"),
                       (dict(block_length=31), "block_length")):
        with pytest.raises(ValueError, match=match):
            stability_selection(X, y, **bad)
    with pytest.raises(ValueError, match="max_support"):
        lasso_path(X, y, max_support=0)
