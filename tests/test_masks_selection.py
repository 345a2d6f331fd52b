import numpy as np
import pandas as pd
import pytest

from granger_prune.exceptions import SupportLimitWarning
from granger_prune.selection.masks import full_masks, intersect, mask_overlap, sparsity, sparsity_table
from granger_prune.criteria import Causal, Magnitude, PruningMethod, Random, RoundInputs, criterion_from_dict
from granger_prune.design import DesignSpec
from granger_prune.selection import Rank, Zero, density_schedule, keep_highest, select_causal
from granger_prune.record.trajectory import InMemoryTrajectory


def test_density_schedule_reaches_the_target_geometrically():
    d = density_schedule(0.875, 3)
    np.testing.assert_allclose(d, [0.5, 0.25, 0.125], rtol=1e-12)
    for bad in (1.0, -0.1, "half", None):
        with pytest.raises(ValueError, match="sparsity"):
            density_schedule(bad, 2)
    with pytest.raises(ValueError, match="n_iter"):
        density_schedule(0.5, 0)


def test_keep_highest_per_layer_and_global():
    scores = {"a": np.array([[5.0, 1.0], [3.0, 2.0]]), "b": np.array([10.0, 9.0, 4.0, 0.1])}
    alive = full_masks({"a": (2, 2), "b": (4,)})
    per_layer = keep_highest(scores, alive, 0.5, "layer")
    np.testing.assert_array_equal(per_layer["a"], [[True, False], [True, False]])
    np.testing.assert_array_equal(per_layer["b"], [True, True, False, False])
    glob = keep_highest(scores, alive, 0.5, "global")
    np.testing.assert_array_equal(glob["a"], [[True, False], [False, False]])
    np.testing.assert_array_equal(glob["b"], [True, True, True, False])
    assert sparsity(glob) == pytest.approx(0.5)


def test_keep_highest_never_revives_pruned_parameters():
    alive = {"a": np.array([False, True, True, True])}
    masks = keep_highest({"a": np.array([100.0, 1.0, 2.0, 3.0])}, alive, 0.5, "layer")
    np.testing.assert_array_equal(masks["a"], [False, False, True, True])
    assert not np.any(masks["a"] & ~alive["a"])


def test_mask_reports():
    m = {"a": np.array([True, False, True, True]), "b": np.array([[False, False], [True, False]])}
    table = sparsity_table(m)
    assert isinstance(table, pd.DataFrame)
    assert table.set_index("tensor").loc["total", "kept"] == 4
    assert table.set_index("tensor").loc["b", "compression"] == pytest.approx(4.0)
    other = {"a": np.ones(4, bool), "b": np.zeros((2, 2), bool)}
    assert mask_overlap(m, other) == pytest.approx(3 / 5)
    assert sparsity(intersect(m, other)) == pytest.approx(5 / 8)


def planted_trajectory(n_steps=200, d=40, causal=(3, 7, 11), seed=0):
    """ΔL = -Σ_{k causal} (Δθ_k)² / η + noise: only the planted parameters matter."""
    rng = np.random.default_rng(seed)
    traj = InMemoryTrajectory({"w": (d,)})
    for _ in range(n_steps):
        delta = rng.normal(size=d) * 0.1
        change = -10.0 * np.sum(delta[list(causal)] ** 2) + 1e-4 * rng.normal()
        traj.append(1.0, 1.0 + change, {"w": delta})
    return traj


def test_rank_rule_keeps_the_planted_causal_parameters():
    traj = planted_trajectory()
    result = select_causal(traj, {"w": np.ones(40, bool)}, rule=Rank(alpha_ratio=0.01),
                           density=3 / 40)
    assert set(np.flatnonzero(result.masks["w"])) == {3, 7, 11}
    diag = result.diagnostics.iloc[0]
    assert diag["kept"] == 3 and diag["kept_by_tiebreak"] == 0
    assert diag["lasso_support"] >= 3
    assert np.all(result.scores["w"][[3, 7, 11]] < 0)


def test_rank_rule_reports_what_the_tie_breaker_chose():
    traj = planted_trajectory()
    result = select_causal(traj, {"w": np.ones(40, bool)}, rule=Rank(alpha_ratio=0.5),
                           density=0.5)
    diag = result.diagnostics.iloc[0]
    assert diag["kept"] == 20
    assert diag["kept_by_tiebreak"] == 20 - diag["lasso_support"] > 0
    coef = result.scores["w"]
    support = np.flatnonzero(coef)
    assert np.all(result.masks["w"][support])  # the lasso's support is kept first
    # the rest are the zero-coefficient parameters with the largest marginal score |x_k^T (y - ybar)|
    before, after = traj.losses()
    y = (after - before) - (after - before).mean()
    marginal = np.abs((traj.deltas("w").astype(np.float64) ** 2).T @ y)
    zeros = np.flatnonzero(coef == 0)
    expected = zeros[np.argsort(-marginal[zeros])[:diag["kept_by_tiebreak"]]]
    np.testing.assert_array_equal(np.sort(np.flatnonzero(result.masks["w"] & (coef == 0))), np.sort(expected))


def test_zero_rule_keeps_the_support_and_warns_when_t_binds():
    traj = planted_trajectory(n_steps=200)
    result = select_causal(traj, {"w": np.ones(40, bool)}, rule=Zero(alpha_ratio=0.2))
    np.testing.assert_array_equal(result.masks["w"], result.scores["w"] != 0)
    rng = np.random.default_rng(1)
    short = InMemoryTrajectory({"w": (60,)})
    for _ in range(8):
        delta = rng.normal(size=60)
        short.append(1.0, 1.0 + rng.normal(), {"w": delta})
    with pytest.warns(SupportLimitWarning, match="T=8"):
        select_causal(short, {"w": np.ones(60, bool)}, rule=Zero(alpha_ratio=1e-4, max_iter=20000))


def test_global_scope_fits_one_problem():
    traj = InMemoryTrajectory({"a": (5,), "b": (5,)})
    rng = np.random.default_rng(0)
    for _ in range(50):
        da, db = rng.normal(size=5), rng.normal(size=5)
        traj.append(1.0, 1.0 - da[0] ** 2 - db[4] ** 2, {"a": da, "b": db})
    alive = full_masks({"a": (5,), "b": (5,)})
    result = select_causal(traj, alive, rule=Rank(alpha_ratio=0.01), density=0.2, scope="global")
    assert len(result.diagnostics) == 1
    assert result.masks["a"][0] and result.masks["b"][4]
    assert sum(m.sum() for m in result.masks.values()) == 2


def test_magnitude_tie_breaker_needs_weights():
    traj = planted_trajectory()
    with pytest.raises(ValueError, match="weights"):
        select_causal(traj, {"w": np.ones(40, bool)}, density=0.5, rule=Rank(tie_breaker="magnitude"))
    weights = {"w": np.linspace(-1, 1, 40)}
    result = select_causal(traj, {"w": np.ones(40, bool)}, density=0.9, weights=weights,
                           rule=Rank(alpha_ratio=0.5, tie_breaker="magnitude"))
    pruned = np.flatnonzero(~result.masks["w"])
    zeros = np.flatnonzero(result.scores["w"] == 0)
    # the 4 pruned are the zero-coefficient parameters of the smallest magnitude
    expected = zeros[np.argsort(np.abs(weights["w"][zeros]))[:4]]
    np.testing.assert_array_equal(np.sort(pruned), np.sort(expected))


def test_pruning_method_validation():
    assert Causal().label == "causal-rank/layer"
    assert Causal(rule=Zero(), scope="global").label == "causal-zero/global"
    assert Magnitude(scope="global").label == "magnitude/global"
    with pytest.raises(ValueError, match="'snip'"):
        criterion_from_dict({"name": "snip"})
    with pytest.raises(ValueError, match="rule"):
        criterion_from_dict({"name": "magnitude", "rule": "zero"})
    with pytest.raises(ValueError, match="alpha_rato"):
        criterion_from_dict({"name": "causal", "rule": {"alpha_rato": 0.1}})
    with pytest.raises(ValueError, match="scope"):
        Random(scope="network")
    with pytest.raises(ValueError, match="tie_breaker"):
        Rank(tie_breaker="ridge")
    with pytest.raises(ValueError, match="alpha_ratio"):
        Rank(alpha_ratio=-1)
    with pytest.raises(ValueError, match="scale"):
        DesignSpec(scale="bogus")
    with pytest.raises(TypeError, match="base of the criteria"):
        PruningMethod()
    # equal options label alike (NumPy scalars, integral floats); different ones never do
    assert Causal(rule=Rank(alpha_ratio=np.float64(0.01))).label == "causal-rank(alpha_ratio=0.01)/layer"
    assert Causal(rule=Rank(alpha_ratio=1)).label == Causal(rule=Rank(alpha_ratio=1.0)).label
    assert Causal(rule=Rank(alpha_ratio=0.1)).label != Causal(rule=Rank(alpha_ratio=0.1 + 1e-17 * 2 ** 4)).label
    with pytest.raises(ValueError, match="a table named 'foo' cannot configure 'design_spec'"):
        DesignSpec.from_dict({"name": "foo"})


def test_magnitude_and_random_methods():
    weights = {"w": np.array([0.1, -3.0, 0.5, 2.0])}
    alive = full_masks({"w": (4,)})
    selection = Magnitude().select(alive, 0.5, RoundInputs(weights))
    np.testing.assert_array_equal(selection.masks["w"], [False, True, False, True])
    assert selection.diagnostics.empty
    np.testing.assert_array_equal(selection.scores["w"], [0.1, 3.0, 0.5, 2.0])
    m1 = Random().select(alive, 0.5, RoundInputs(weights, rng=0)).masks
    m2 = Random().select(alive, 0.5, RoundInputs(weights, rng=0)).masks
    np.testing.assert_array_equal(m1["w"], m2["w"])
    assert m1["w"].sum() == 2


def test_l1_coeff_is_the_papers_penalty():
    """Seeds 000/001 minimise Σ_t r_t² + L1_coeff ||γ||_1: the package's alpha is L1_coeff / (2T)."""
    from granger_prune.design import granger_design

    traj = planted_trajectory()
    alive = {"w": np.ones(40, bool)}
    design = granger_design(traj, ["w"])
    X, y, _ = design.partialled()
    yc, Xc = y - y.mean(), X - X.mean(axis=0)
    c = 0.2 * 2 * np.max(np.abs(Xc.T @ yc))  # 0.2 of the papers' smallest all-zero L1_coeff
    by_l1 = select_causal(traj, alive, rule=Zero(l1_coeff=c, tol=1e-10))
    by_alpha = select_causal(traj, alive, rule=Zero(alpha=c / (2 * design.n_steps), tol=1e-10))
    np.testing.assert_array_equal(by_l1.scores["w"], by_alpha.scores["w"])
    assert by_l1.diagnostics["alpha"].iloc[0] == c / (2 * design.n_steps)
    # the KKT conditions of the papers' objective: 2 |x_j^T r| <= L1_coeff, with equality on the support
    gamma = by_l1.scores["w"]
    r = yc - Xc @ gamma
    grad = 2 * np.abs(Xc.T @ r)
    support = gamma != 0
    assert 3 <= support.sum() < 40
    np.testing.assert_allclose(grad[support], c, rtol=1e-4)
    assert np.all(grad[~support] <= c * (1 + 1e-4))
    assert Causal(rule=Zero(l1_coeff=1e-8)).label == "causal-zero(l1_coeff=1e-08)/layer"
    with pytest.raises(ValueError, match="at most one of alpha and l1_coeff"):
        Zero(l1_coeff=c, alpha=0.1)
    with pytest.raises(ValueError, match="l1_coeff must be a non-negative number"):
        Causal(rule=Rank(l1_coeff=-1.0))
