"""Intervals over seeds and paired comparisons, against statsmodels' t statistics."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.weightstats import DescrStatsW

from granger_prune.study.intervals import paired_comparison, signflip_pvalue, t_interval
from granger_prune.study.report import phase_shift_table, plot_paired_differences


def test_t_interval_matches_statsmodels():
    values = np.array([0.91, 0.95, 0.93, 0.97, 0.90])
    mean, low, high = t_interval(values, level=0.9)
    reference = DescrStatsW(values)
    assert mean == pytest.approx(reference.mean, rel=1e-15)
    np.testing.assert_allclose((low, high), reference.tconfint_mean(alpha=0.1), rtol=1e-12)
    assert t_interval([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)
    mean, low, high = t_interval([0.7, np.nan])
    assert mean == 0.7 and np.isnan(low) and np.isnan(high)
    with pytest.raises(ValueError, match="level"):
        t_interval(values, level=95)


def test_signflip_pvalue_enumerates_the_sign_patterns():
    assert signflip_pvalue([0.1, 0.2, 0.3, 0.4, 0.5]) == 2 / 32  # only ± all
    assert signflip_pvalue([1.0, -1.0]) == 1.0
    # (3, 1, 1): the sums ±3±1±1 are ±5 (2 patterns), ±3 (4) and ±1 (2); only ±5 reach 5
    assert signflip_pvalue([3.0, 1.0, 1.0]) == 2 / 8
    assert signflip_pvalue([1.0, 1.0, -1.0]) == 1.0  # every |sum| is at least 1

def _results(rng):
    rows = []
    for seed in range(6):
        for target in (0.5, 0.9):
            base = 0.9 - 0.3 * target + 0.01 * rng.standard_normal()
            rows.append(dict(label="magnitude/layer", sparsity_target=target, seed=seed, accuracy=base))
            rows.append(dict(label="causal", sparsity_target=target, seed=seed,
                             accuracy=base - 0.02 * target + 0.005 * rng.standard_normal()))
        rows.append(dict(label="significance", sparsity_target=np.nan, seed=seed, accuracy=0.8))
    frame = pd.DataFrame(rows)
    return frame.assign(sparsity_actual=frame["sparsity_target"].fillna(0.6), loss=1.0)


def test_paired_comparison_pairs_by_seed_and_matches_statsmodels():
    results = _results(np.random.default_rng(0))
    shuffled = results.sample(frac=1.0, random_state=1)
    table = paired_comparison(shuffled, "magnitude/layer")
    assert list(table["label"]) == ["causal", "causal"] and list(table["n_pairs"]) == [6, 6]
    for _, row in table.iterrows():
        pick = results[results["sparsity_target"] == row["sparsity_target"]]
        d = (pick[pick["label"] == "causal"]["accuracy"].to_numpy()
             - pick[pick["label"] == "magnitude/layer"]["accuracy"].to_numpy())
        t, p, _ = DescrStatsW(d).ttest_mean(0.0)
        assert row["mean_difference"] == pytest.approx(d.mean(), abs=1e-15)
        assert (row["t"], row["pvalue"]) == pytest.approx((t, p), rel=1e-10)
        np.testing.assert_allclose((row["ci_low"], row["ci_high"]), DescrStatsW(d).tconfint_mean(), rtol=1e-10)
        assert row["pvalue_signflip"] == signflip_pvalue(d)
    # a seed missing on one side drops that pair only
    table = paired_comparison(results[~((results["label"] == "causal") & (results["seed"] == 0))],
                              "magnitude/layer")
    assert list(table["n_pairs"]) == [5, 5]
    with pytest.raises(ValueError, match="baseline"):
        paired_comparison(results, "taylor/layer")
    figure = plot_paired_differences(paired_comparison(results, "magnitude/layer"))
    assert len(figure.axes[0].get_lines()) >= 2


def test_identical_criteria_have_no_test_statistic():
    results = _results(np.random.default_rng(0))
    twin = results[results["label"] == "magnitude/layer"].assign(label="twin")
    table = paired_comparison(pd.concat([results, twin]), "magnitude/layer")
    twin_rows = table[table["label"] == "twin"]
    assert (twin_rows["mean_difference"] == 0).all() and twin_rows["pvalue"].isna().all()
    assert (twin_rows["pvalue_signflip"] == 1.0).all()


def test_summary_table_intervals_cover_each_group():
    results = _results(np.random.default_rng(2)).assign(val_accuracy=0.5, val_loss=2.0)
    table = phase_shift_table(results)
    row = table.loc[("causal", 0.9)]
    values = results[(results["label"] == "causal") & (results["sparsity_target"] == 0.9)]["accuracy"]
    np.testing.assert_allclose((row["accuracy_ci_low"], row["accuracy_ci_high"]),
                               DescrStatsW(values.to_numpy()).tconfint_mean(), rtol=1e-12)
    assert row["n_seeds"] == 6 and row["val_accuracy_ci_low"] == row["val_accuracy_ci_high"] == 0.5
    assert "val_accuracy_mean" not in phase_shift_table(results.drop(columns=["val_accuracy", "val_loss"]))


def test_markdown_tables_show_each_mean_with_its_interval():
    from granger_prune.study.intervals import paired_comparison as compare
    from granger_prune.study.report import markdown_comparison, markdown_summary

    results = _results(np.random.default_rng(0))
    text = markdown_summary(results)
    lines = text.splitlines()
    assert lines[0] == "| sparsity | magnitude/layer | causal | significance |"
    mean, low, high = t_interval(results[(results["label"] == "causal") & (results["sparsity_target"] == 0.9)]
                                 ["accuracy"])
    assert f"{mean:.4f} [{low:.4f}, {high:.4f}]" in lines[3]  # rows: 0.5, 0.9, none
    assert lines[4].startswith("| none |") and "0.8000" in lines[4]
    table = markdown_comparison(compare(results, "magnitude/layer")).splitlines()
    assert table[0] == "| minus magnitude/layer | 0.5 | 0.9 |" and table[2].startswith("| causal | -0.0")
    with pytest.raises(ValueError, match="val_accuracy"):
        markdown_summary(results, "val_accuracy")
