"""The rank rule's scores and fits (issue 15): loss share, standardised and marginal
scores; lasso, elastic-net and ridge fits; checked against scikit-learn and by hand."""

import numpy as np
import pytest
from sklearn.linear_model import ElasticNet, Lasso
from sklearn.preprocessing import StandardScaler

from granger_prune.criteria import Causal
from granger_prune.design import granger_design, momentum_design
from granger_prune.record.trajectory import InMemoryTrajectory
from granger_prune.selection import Rank, select_causal
from granger_prune.selection.causal_rules import Problem, fit_ridge
from granger_prune.selection.scores import loss_share_scores, unit_scores

TOL = 1e-10  # solver tolerance on the duality gap, relative to ||ỹ||² / T


def trajectory(n_steps=150, d=30, seed=0):
    """ΔL = -Σ_k c_k (Δθ_k)² / η + noise with step sizes spread over a decade per parameter,
    so that |γ|, the standardised |γ| and the loss share rank differently."""
    rng = np.random.default_rng(seed)
    spread = 10.0 ** rng.uniform(-1.5, 0.0, d)
    weight = np.zeros(d)
    weight[:6] = rng.uniform(2.0, 20.0, 6)
    traj = InMemoryTrajectory({"w": (d,)})
    for _ in range(n_steps):
        delta = 0.01 * spread * rng.normal(size=d)
        change = -np.sum(weight * delta**2) + 1e-7 * rng.normal()
        traj.append(1.0, 1.0 + change, {"w": delta})
    return traj


@pytest.fixture(scope="module")
def design():
    return granger_design(trajectory())


def decide(rule, design):
    return rule.decide(design, Problem(["w"], n_keep=10))


def sklearn_lasso(X, y, alpha, l1_ratio=1.0):
    model = (Lasso(alpha=alpha, tol=1e-14, max_iter=200_000) if l1_ratio == 1 else
             ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-14, max_iter=200_000))
    return model.fit(X, y).coef_


def test_loss_share_is_gamma_times_the_mean_feature(design):
    decision = decide(Rank(score="loss_share", alpha_ratio=0.01, tol=TOL), design)
    gamma = decide(Rank(alpha_ratio=0.01, tol=TOL), design).score  # signed γ of the same lasso
    np.testing.assert_allclose(decision.score, np.abs(gamma * design.X.mean(axis=0)),
                               rtol=1e-12, atol=0)
    assert decision.keep.sum() == 10
    # on the layer scale (one factor per problem) the lasso's support and the shares are the same
    layer = granger_design(trajectory(), scale="layer")
    shares = decide(Rank(score="loss_share", alpha_ratio=0.01, tol=TOL), layer).score
    np.testing.assert_allclose(shares, decision.score, rtol=1e-5, atol=1e-6 * decision.score.max())


def test_standardised_score_is_sklearns_lasso_on_standard_scaled_columns(design):
    decision = decide(Rank(score="standardised", alpha_ratio=0.05, tol=TOL), design)
    Xs = StandardScaler().fit_transform(design.X)
    y = design.y
    a_max = np.max(np.abs(Xs.T @ (y - y.mean()))) / len(y)
    assert decision.row["alpha_max"] == pytest.approx(a_max, rel=1e-10)
    reference = np.abs(sklearn_lasso(Xs, y, 0.05 * a_max))
    np.testing.assert_allclose(decision.score, reference, rtol=1e-5, atol=1e-7 * reference.max())
    assert decision.row["lasso_support"] == np.count_nonzero(reference)


def test_elastic_net_fit_matches_sklearn(design):
    rule = Rank(fit="enet", l1_ratio=0.3, alpha_ratio=0.05, tol=TOL)
    decision = decide(rule, design)
    X, y = design.X, design.y
    a = decision.row["alpha"]
    assert a == pytest.approx(0.05 * np.max(np.abs(X.T @ (y - y.mean()))) / (len(y) * 0.3), rel=1e-10)
    reference = sklearn_lasso(X, y, a, l1_ratio=0.3)
    np.testing.assert_allclose(decision.score, reference, rtol=1e-5, atol=1e-7 * np.abs(reference).max())


def test_ridge_ranks_every_unit_and_satisfies_its_normal_equations(design):
    decision = decide(Rank(fit="ridge", alpha_ratio=1e-3), design)
    assert decision.row["kept_by_tiebreak"] == 0 and decision.row["lasso_support"] == design.n_units
    gamma = fit_ridge(design, design.partialled(), 1e-3)[0]
    X = design.X - design.X.mean(axis=0)
    y = design.y - design.y.mean()
    T, alpha = len(y), decision.row["alpha"]
    assert alpha == pytest.approx(1e-3 * np.sum(X**2) / (T * min(T, X.shape[1])), rel=1e-12)
    residual_gradient = X.T @ (y - X @ gamma) / T  # = alpha * gamma at the ridge minimum
    np.testing.assert_allclose(residual_gradient, alpha * gamma, rtol=1e-6,
                               atol=1e-9 * np.abs(alpha * gamma).max())
    np.testing.assert_allclose(decision.score, gamma, rtol=0, atol=0)
    with pytest.raises(ValueError, match="ridge"):
        Rank(fit="ridge", alpha=1e-3)


def test_marginal_score_needs_no_fit_and_is_the_covariance(design):
    decision = decide(Rank(score="marginal"), design)
    y = design.y - design.y.mean()
    np.testing.assert_allclose(decision.score, np.abs(design.X.T @ y) / len(y), rtol=1e-12)
    assert np.isnan(decision.row["alpha"]) and decision.row["kept_by_tiebreak"] == 0
    top = np.argsort(-decision.score)[:10]
    assert set(np.flatnonzero(decision.keep)) == set(top)


def test_a_momentum_units_share_sums_its_three_terms_before_the_absolute_value():
    design = momentum_design(trajectory(), lags=0)
    gamma = np.random.default_rng(3).normal(size=design.n_features)
    means = design.X.mean(axis=0).reshape(design.n_units, 3)
    expected = np.abs(np.sum(gamma.reshape(design.n_units, 3) * means, axis=1))
    np.testing.assert_allclose(loss_share_scores(design, gamma), expected, rtol=1e-13)
    # the norm of the shares would differ: the terms of a unit may cancel
    assert not np.allclose(expected, np.sqrt(np.sum((gamma.reshape(-1, 3) * means) ** 2, axis=1)))
    with pytest.raises(ValueError, match="score"):
        unit_scores(design, gamma, "marginal")


def test_scores_reach_select_causal_and_the_label():
    traj = trajectory()
    result = select_causal(traj, {"w": np.ones(30, bool)}, rule=Rank(score="loss_share", alpha_ratio=0.01),
                           density=0.2)
    assert result.masks["w"].sum() == 6
    assert (result.scores["w"] >= 0).all()
    assert Causal(rule=Rank(score="loss_share", fit="ridge")).label == \
        "causal-rank(score=loss_share, fit=ridge)/layer"
    with pytest.raises(ValueError, match="score"):
        Rank(score="share")
    with pytest.raises(ValueError, match="l1_ratio"):
        Rank(fit="enet", l1_ratio=1.0)


def test_a_filters_share_uses_the_sum_of_its_members_features():
    """With weight-shared groups (filters) a unit's column is the sum of its members' (Δθ)²."""
    traj = trajectory(d=30)
    groups = {"w": np.repeat(np.arange(10), 3)}  # ten "filters" of three weights
    design = granger_design(traj, groups=groups)
    decision = decide(Rank(score="loss_share", alpha_ratio=0.01, tol=TOL), design)
    gamma = decide(Rank(alpha_ratio=0.01, tol=TOL), design).score
    d2 = traj.deltas("w").astype(np.float64) ** 2
    member_sums = d2.reshape(len(d2), 10, 3).sum(axis=2)
    np.testing.assert_allclose(decision.score, np.abs(gamma * member_sums.mean(axis=0)), rtol=1e-12)
