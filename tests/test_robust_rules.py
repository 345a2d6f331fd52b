"""The significance rule with robust inference and factor adjustment, on trajectories
with a shared step-size factor and with serially correlated noise."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from granger_prune.criteria import Causal
from granger_prune.design.granger import granger_design
from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.record.trajectory import InMemoryTrajectory
from granger_prune.selection import Significance, select_causal
from granger_prune.stats import adjust_pvalues, granger_f_tests, granger_tests

CAUSAL = (3, 7, 11)


def shared_factor_trajectory(n_steps=300, d=200, seed=0, phi=0.0, noise_sd=0.02):
    """Steps ``δ_tj = s_t z_tj`` with a shared, strongly varying step size ``s_t``; ΔL depends
    on the planted parameters' steps and on ``s_t²`` (the common part), with AR(φ) noise."""
    rng = np.random.default_rng(seed)
    traj = InMemoryTrajectory({"w": (d,)})
    loss, noise = 2.0, 0.0
    for t in range(n_steps):
        s = 0.1 * (1.0 + 0.3 * np.cos(2 * np.pi * t / 50)) * np.exp(0.1 * rng.normal())
        delta = s * rng.normal(size=d)
        noise = phi * noise + noise_sd * rng.normal()
        change = -10.0 * np.sum(delta[list(CAUSAL)] ** 2) - 20.0 * s ** 2 + noise
        grad_norm = s * np.sqrt(d) * np.exp(0.1 * rng.normal())
        traj.append(loss, loss + change, {"w": delta}, step_sizes=s, grad_norm=grad_norm)
        loss += change
    return traj


def kept(traj, rule):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        result = select_causal(traj, {"w": np.ones(traj.shapes["w"][0], bool)}, rule=rule)
    return set(np.flatnonzero(result.masks["w"])), result.diagnostics.iloc[0]


def test_design_summaries_are_the_recorded_ones():
    traj = shared_factor_trajectory(n_steps=40, d=12)
    design = granger_design(traj)
    deltas = traj.deltas("w").astype(np.float64)
    np.testing.assert_allclose(design.summaries["mean_sq_step"], np.mean(deltas ** 2, axis=1),
                               rtol=1e-12)
    assert_array_equal(design.summaries["learning_rate"], traj.step_sizes("w"))
    assert_array_equal(design.summaries["grad_norm"], traj.grad_norms())
    plain = InMemoryTrajectory({"w": (3,)})
    for _ in range(5):
        plain.append(1.0, 0.9, {"w": np.ones(3)})
    assert set(granger_design(plain).summaries) == {"mean_sq_step"}  # nothing else recorded


def test_a_shared_factor_makes_every_marginal_test_significant_and_factors_fix_most():
    """The marginal null is false for every parameter (each step carries s_t); given the
    factor the non-causal ones are null.  What is left (a few of 197) comes from the
    factor's estimation error and the heteroskedasticity s_t brings, which the HAC
    covariance also absorbs."""
    traj = shared_factor_trajectory()
    marginal, _ = kept(traj, Significance())
    assert set(CAUSAL) <= marginal and len(marginal) > 100
    for options in (dict(factors="bai_ng"), dict(factors="summaries"), dict(factors=1),
                    dict(factors="bai_ng", inference="hac")):
        selected, row = kept(traj, Significance(**options))
        assert set(CAUSAL) <= selected and len(selected - set(CAUSAL)) <= 10, (options, selected)
        assert row["n_factors"] >= 1 and 0 < row["factor_share"] < 1


def test_the_rule_equals_the_tests_by_hand():
    traj = shared_factor_trajectory(phi=0.8, noise_sd=0.3)
    design = granger_design(traj)
    for options in (dict(inference="hac"), dict(inference="prewhiten", factors="bai_ng"),
                    dict(inference="hac", factors="summaries", maxlags=3)):
        selected, row = kept(traj, Significance(**options))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GrangerPruneWarning)
            tests = granger_f_tests(design, **options)
        reject, _ = adjust_pvalues(tests.pvalue, alpha=0.05)
        assert selected == set(np.flatnonzero(reject))
        assert row["n_factors"] == tests.n_factors
        assert np.isfinite(row["ljung_box_pvalue"])
        if options["inference"] == "hac":
            assert row["hac_lags"] == np.median(tests.lags)
        else:
            assert row["ar_order"] == tests.ar_order >= 1


def test_one_warning_when_the_diagnostics_are_bad():
    traj = shared_factor_trajectory(phi=0.9, noise_sd=0.3)
    design = granger_design(traj)
    with pytest.warns(GrangerPruneWarning, match="serially correlated") as record:
        granger_f_tests(design, factors="summaries")
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", GrangerPruneWarning)
        granger_f_tests(design, factors="summaries", warn=False)
        result = granger_f_tests(design, factors="summaries", inference="prewhiten")
    assert result.ar_order >= 1


def test_options_are_checked_and_read_from_a_config():
    for bad in (dict(inference="gls"), dict(factors="pca"), dict(factors=-1), dict(maxlags=-1),
                dict(maxlags="auto"), dict(max_ar_order=-2)):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Significance(**bad)
    method = Causal.from_dict({"rule": {"name": "significance", "inference": "hac",
                                        "factors": "bai_ng"}})
    assert method.rule == Significance(inference="hac", factors="bai_ng")
    assert method.label == "causal-significance(inference=hac, factors=bai_ng)/layer"
    with pytest.raises(ValueError, match="summaries"):
        granger_tests(np.ones(5) + np.arange(5), np.eye(5)[:, :2], factors="summaries")


def independent_trajectory(n_steps=300, d=60, seed=0):
    rng = np.random.default_rng(seed)
    traj = InMemoryTrajectory({"w": (d,)})
    loss = 2.0
    for _ in range(n_steps):
        delta = rng.normal(size=d) * 0.1
        change = -10.0 * np.sum(delta[list(CAUSAL)] ** 2) + 0.05 * rng.normal()
        traj.append(loss, loss + change, {"w": delta})
        loss += 0.01 * rng.normal()
    return traj


def test_the_stability_rule_keeps_the_planted_units_with_its_bound():
    from granger_prune.design import DesignSpec
    from granger_prune.selection import Stability
    from granger_prune.selection.stability import selection_size

    traj = independent_trajectory()
    rule = Stability(n_pairs=10)
    selected, row = kept(traj, rule)
    assert selected == set(CAUSAL)
    assert row["stability_q"] == selection_size(60, 0.75, 1.0)
    assert row["expected_false_bound"] <= 1.0 and row["kept_units"] == 3
    # momentum units: a unit is kept when any of its three columns is
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        result = select_causal(traj, {"w": np.ones(60, bool)}, rule=rule,
                               design=DesignSpec(features="momentum", lags=1))
    assert set(CAUSAL) <= set(np.flatnonzero(result.masks["w"]))
    assert result.diagnostics.iloc[0]["n_features"] == 180
    method = Causal.from_dict({"rule": {"name": "stability", "threshold": 0.9, "n_pairs": 20}})
    assert method.rule == Stability(threshold=0.9, n_pairs=20) and not method.targets_sparsity
    assert method.label == "causal-stability(threshold=0.9, n_pairs=20)/layer"
    for bad in (dict(threshold=0.5), dict(max_false=0), dict(n_pairs=0), dict(block_length=0),
                dict(standardize="yes")):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Stability(**bad)


def test_the_scale_adjustment_weights_the_rows_by_the_common_step_scale():
    from granger_prune.stats import nested_f_tests
    from granger_prune.stats.step_scale import common_scale, scale_weights

    traj = shared_factor_trajectory()
    design = granger_design(traj)
    m = common_scale(design.X)
    np.testing.assert_allclose(m, np.mean(design.X / design.X.mean(axis=0), axis=1), rtol=1e-12)
    s = scale_weights(design.y, design.Z, m)
    by_hand = nested_f_tests(design.y / s, design.X / s[:, None],
                             np.column_stack([design.Z, m]) / s[:, None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GrangerPruneWarning)
        result = granger_f_tests(design, factors="scale")
    np.testing.assert_allclose(result.fvalue, by_hand.fvalue, rtol=1e-12)
    assert result.n_factors == 1 and 0 < result.factor_share < 1
    selected, row = kept(traj, Significance(factors="scale"))
    assert set(CAUSAL) <= selected and len(selected - set(CAUSAL)) <= 10
    with pytest.raises(ValueError, match="common step scale"):
        common_scale(np.zeros((5, 3)))
