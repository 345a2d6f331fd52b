"""The compiled working-set sweep against the same sweep interpreted, and the inner solver's optimum."""

import numpy as np
import pytest

from granger_prune.lasso._inner import gram_cd_sweep, gram_coordinate_descent, working_set_gap


def gram_problem(n=60, k=25, seed=0):
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(n, k)) * 10.0 ** rng.uniform(-3, 0, k)
    B -= B.mean(axis=0)
    yc = B[:, :4] @ np.array([1.0, -2.0, 0.5, 3.0]) * 100 + rng.normal(size=n)
    yc -= yc.mean()
    H = np.ascontiguousarray(B.T @ B / n)
    c = B.T @ yc / n
    return B, yc, H, c


@pytest.mark.parametrize("positive", [False, True])
def test_compiled_sweep_is_the_interpreted_sweep(positive):
    """Same operations in the same order in float64 (no fast-math): the same bits."""
    B, yc, H, c = gram_problem()
    l1, l2 = 0.05 * np.max(np.abs(c)), 0.01
    h = np.diag(H).copy()
    live = np.flatnonzero(h > 0)
    w_a, w_b = np.zeros(len(c)), np.zeros(len(c))
    g_a, g_b = -c.copy(), -c.copy()
    for _ in range(5):
        out_a = gram_cd_sweep(H, h, h + l2, live, w_a, g_a, l1, positive)
        out_b = gram_cd_sweep.py_func(H, h, h + l2, live, w_b, g_b, l1, positive)
        assert out_a == out_b
    np.testing.assert_array_equal(w_a, w_b)
    np.testing.assert_array_equal(g_a, g_b)
    assert np.count_nonzero(w_a) > 0 and (not positive or (w_a >= 0).all())


def test_inner_solver_reaches_its_gap():
    B, yc, H, c = gram_problem(seed=1)
    l1 = 0.01 * np.max(np.abs(c))
    w = np.zeros(len(c))
    epochs = gram_coordinate_descent(H, c, float(yc @ yc), B.shape[0], w, l1, 0.0, False,
                                     tol=1e-12, max_epochs=10_000, anderson_m=5)
    assert epochs < 10_000 and working_set_gap(B, yc, w, l1, 0.0, False) <= 1e-12


@pytest.mark.parametrize("l2, positive", [(0.0, False), (0.05, True)])
def test_gram_gap_is_the_residual_gap(l2, positive):
    """The O(k) gap from H, c and the gradient equals the gap from the residual B w - yc."""
    from granger_prune.lasso._inner import gram_gap

    B, yc, H, c = gram_problem(seed=2)
    l1 = 0.02 * np.max(np.abs(c))
    w = np.random.default_rng(3).normal(size=len(c)) * 0.01
    if positive:
        w = np.abs(w)
    reference = working_set_gap(B, yc, w, l1, l2, positive)
    fast = gram_gap(float(yc @ yc), c, w, H @ w - c, l1, l2, positive, B.shape[0])
    assert fast == pytest.approx(reference, rel=1e-9, abs=1e-13 * float(yc @ yc) / B.shape[0])
