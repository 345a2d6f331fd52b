import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from granger_prune import load_dataset, load_pruned_model
from granger_prune.study.cli import main
from granger_prune.training import evaluate
from granger_prune.zoo import build_model
from granger_prune.study.config import StudyConfig, bundled_studies, resolve_study
from granger_prune.study.runner import RESULT_COLUMNS, run_study

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "seeds=[0]", "sparsities=[0.5,0.9]", "model_options.hidden=[16]",
    "schedule.n_pre=1", "schedule.n_iter=2", "schedule.n_prune=1", "schedule.n_post=1",
    "sgd.batch_size=64",
]


def tiny_config():
    return StudyConfig.from_toml(resolve_study("digits_phase_shift")).with_overrides(TINY)


def test_default_study_config_is_valid():
    config = StudyConfig.from_toml(resolve_study("digits_phase_shift"))
    assert sorted(m.label for m in config.methods) == [
        "causal-rank(alpha_ratio=0.01)/layer", "causal-rank(alpha_ratio=0.01, score=loss_share)/layer",
        "causal-rank(alpha_ratio=0.01, score=loss_share, fit=ridge)/layer",
        "causal-rank(alpha_ratio=0.01, score=standardised)/layer",
        "causal-rank(alpha_ratio=0.01, tie_breaker=magnitude)/layer", "causal-rank(score=marginal)/layer",
        "magnitude/global", "magnitude/layer", "random/layer", "taylor/layer"]
    assert len(config.sparsities) >= 5 and len(config.seeds) >= 5 and config.baseline == "magnitude/layer"


@pytest.mark.parametrize("study", ["digits_phase_shift", "structured_filters", "momentum_vs_vanilla"])
def test_study_configs_round_trip_through_their_plain_form(study):
    config = StudyConfig.from_toml(resolve_study(study))
    assert StudyConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_methods_that_differ_only_in_an_option_have_distinct_labels():
    """Issue 13's defect: scale, alpha_ratio or restricted alone used to give one label."""
    from granger_prune import Causal, DesignSpec, Rank

    methods = [Causal(), Causal(design=DesignSpec(scale="column")), Causal(rule=Rank(alpha_ratio=0.01)),
               Causal(design=DesignSpec(restricted="none")), Causal(rule=Rank(alpha_ratio=0.010000001))]
    config = StudyConfig(methods=tuple(methods))
    assert len({m.label for m in config.methods}) == 5
    with pytest.raises(ValueError, match="methods must be criteria"):
        StudyConfig(methods=("causal",))


def test_unknown_config_keys_are_errors():
    with pytest.raises(ValueError, match="n_psot"):
        StudyConfig.from_dict({"schedule": {"n_psot": 3}})
    with pytest.raises(ValueError, match="learning_rate"):
        StudyConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="alpha_rato"):
        StudyConfig.from_dict({"methods": [{"name": "causal", "rule": {"alpha_rato": 1}}]})
    with pytest.raises(ValueError, match="schedule.n_psot"):
        StudyConfig().with_overrides(["schedule.n_psot=1"])
    with pytest.raises(ValueError, match="sparsities"):
        StudyConfig.from_dict({"sparsities": [0.5, 1.0]})
    with pytest.raises(ValueError, match="'mnist'"):
        StudyConfig.from_dict({"dataset": "mnist"})
    with pytest.raises(ValueError, match="hiden"):
        StudyConfig.from_dict({"model_options": {"hiden": [3]}})
    with pytest.raises(ValueError, match="seeds"):
        StudyConfig.from_dict({"seeds": 3})
    with pytest.raises(ValueError, match="tie_breaker"):
        StudyConfig.from_dict({"methods": [{"name": "causal", "rule": {"tie_breaker": "x"}}]})
    with pytest.raises(ValueError, match="'options'"):  # the pre-0.2 layout of a method table
        StudyConfig.from_dict({"methods": [{"name": "causal", "options": {"alpha_ratio": 0.1}}]})
    with pytest.raises(ValueError, match="n_batch"):
        StudyConfig.from_dict({"methods": [{"name": "taylor", "n_batch": 3}]})
    with pytest.raises(ValueError, match="distinct labels"):
        StudyConfig.from_dict({"methods": [{"name": "random"}, {"name": "random"}]})
    with pytest.raises(ValueError, match="not found"):
        resolve_study("no_such_study")


def test_end_to_end_tiny_study_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    lines = []
    results = run_study(tiny_config(), out, progress=lines.append)
    assert sorted(p.name for p in out.iterdir()) == [
        ".lock", "checkpoints", "comparisons.csv", "config.json", "diagnostics.csv", "differences.png", "flops.png",
        "meta.json", "models", "phase_shift.png", "results.csv", "run.json", "summary.csv", "timings.csv"]
    assert json.loads((out / "run.json").read_text())["status"] == "finished"
    timings = pd.read_csv(out / "timings.csv")
    assert len(timings) == 21 and (timings["seconds"] > 0).all()
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns) == RESULT_COLUMNS
    # the bundled studies hold out a validation split; post-training keeps its last epoch
    assert table["val_accuracy"].between(0, 1).all() and (table["best_epoch"] == 1).all()
    # every criterion against the first magnitude criterion, paired over the one seed
    comparisons = pd.read_csv(out / "comparisons.csv")
    assert set(comparisons["baseline"]) == {"magnitude/layer"}
    assert len(comparisons) == 2 * 9 and (comparisons["n_pairs"] == 1).all()
    base = table[table["label"] == "magnitude/layer"].set_index("sparsity_target")["accuracy"]
    for _, row in comparisons.iterrows():
        theirs = table[(table["label"] == row["label"]) & (table["sparsity_target"] == row["sparsity_target"])]
        assert row["mean_difference"] == pytest.approx(theirs["accuracy"].item() - base[row["sparsity_target"]],
                                                       abs=1e-12)
    assert comparisons["ci_low"].isna().all() and comparisons["pvalue"].isna().all()  # one seed: no interval
    assert (comparisons["pvalue_signflip"] == 1.0).all()
    # one dense reference + 10 methods x 2 sparsities, one seed
    assert len(table) == 21 == len(results) == len(lines)
    pruned = table[table["method"] != "dense"]
    assert sorted(pruned["label"].unique()) == sorted(m.label for m in tiny_config().methods)
    assert (abs(pruned["sparsity_actual"] - pruned["sparsity_target"]) < 2e-3).all()
    assert table["accuracy"].between(0, 1).all()
    # ShrinkBench's ratios: pruning every layer's weights to density d removes 1 - d of
    # each layer's multiply-adds; biases stay, so the parameter ratio is a little lower
    per_layer = pruned[pruned["label"] == "magnitude/layer"]
    assert per_layer["speedup"].to_numpy() == pytest.approx(1 / (1 - per_layer["sparsity_target"]), rel=1e-2)
    assert (per_layer["compression"] < per_layer["speedup"]).all()
    assert (pruned["compression"] > 1.5).all()
    assert table.loc[table["method"] == "dense", "speedup"].to_numpy() == pytest.approx([1.0])
    assert (table["speedup_exported"] >= 1).all() and (table["compression_exported"] >= 1).all()
    causal = pruned[pruned["method"] == "causal"]
    diagnostics = pd.read_csv(out / "diagnostics.csv")
    as_written = pd.read_csv(out / "diagnostics.csv", dtype=str)  # integers stay integers in the file
    for column in ("n_steps", "n_units", "lasso_support", "kept", "n_batches"):
        assert not as_written[column].dropna().str.contains(r"\.").any(), column
    taylor = diagnostics[diagnostics["label"] == "taylor/layer"]
    assert len(taylor) == 2 * 2 and (taylor["n_batches"] == 10).all()  # 2 sparsities x 2 rounds
    diagnostics = diagnostics[diagnostics["label"].isin(causal["label"])]
    last_round = diagnostics[diagnostics["round"] == diagnostics["round"].max()]
    totals = last_round.groupby(["label", "sparsity_target"])[["lasso_support", "kept_by_tiebreak"]].sum()
    for _, row in causal.iterrows():
        expected = totals.loc[(row["label"], row["sparsity_target"])]
        assert row["lasso_support"] == expected["lasso_support"]
        assert row["kept_by_tiebreak"] == expected["kept_by_tiebreak"]
    # a lasso on the raw columns keeps at most T (ridge and the marginal score fit none; on
    # standardised columns, constant-up-to-rounding pixels become collinear and the bound need not hold)
    lasso_fits = last_round[last_round["alpha_max"].notna() & ~last_round["label"].str.contains("standardised")]
    assert len(lasso_fits) == 3 * 2 * 2 and (lasso_fits["lasso_support"] <= lasso_fits["n_steps"]).all()
    no_lasso = last_round[last_round["alpha_max"].isna()]
    assert len(no_lasso) == 2 * 2 * 2 and (no_lasso["kept_by_tiebreak"] == 0).all()  # methods x sparsities x layers
    # every run's masks and weights, loaded into a fresh model, give its test metrics exactly
    config, data = tiny_config(), load_dataset("digits")
    for _, row in table.iterrows():
        model = build_model(config.model, data.input_shape, data.n_classes, **config.model_options)
        masks = load_pruned_model(model, out / row["outputs"])
        assert set(masks) == {"1.weight", "3.weight"}
        accuracy, loss = evaluate(model, data.x_test, data.y_test)
        assert (accuracy, loss) == (row["accuracy"], row["loss"]), row["label"]
        assert 1 - sum(m.sum() for m in masks.values()) / sum(m.size for m in masks.values()) == \
            pytest.approx(row["sparsity_actual"], abs=1e-12)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["granger_prune"] == "0.1.0" and meta["git_sha"]
    assert json.loads((out / "config.json").read_text())["schedule"]["n_post"] == 1
    with pytest.raises(ValueError, match="finished run"):
        run_study(tiny_config(), out)
    # `granger-prune report` prints both tables of the run folder in Markdown
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| sparsity | causal-rank(alpha_ratio=0.01)/layer |" in printed
    assert "| minus magnitude/layer | 0.5 | 0.9 |" in printed
    assert main(["report", str(tmp_path)]) == 2


def test_a_failed_study_leaves_a_resumable_folder_that_ends_as_an_uninterrupted_run(tmp_path, monkeypatch):
    config = tiny_config().with_overrides(["schedule.n_iter=2"])
    reference = run_study(config, tmp_path / "reference", progress=None)
    real_select, calls = {}, {"n": 0}

    def explode_in_the_fifth_selection(self, alive, density, inputs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("boom")
        return real_select[type(self)](self, alive, density, inputs)

    for method in config.methods:
        kind = type(method)
        if kind not in real_select:
            real_select[kind] = kind.select
            monkeypatch.setattr(kind, "select", explode_in_the_fifth_selection)
    with pytest.raises(RuntimeError, match="boom"):
        run_study(config, tmp_path / "run", progress=None)
    run = tmp_path / "run"
    assert json.loads((run / "run.json").read_text())["status"] == "unfinished"
    assert not (run / "results.csv").exists() and not (run / "summary.csv").exists()
    assert list((run / "checkpoints" / "cells").rglob("round-1"))  # a cell stopped after its first round
    monkeypatch.undo()
    lines = []
    resumed = run_study(config, run, progress=lines.append)
    assert lines[0].startswith("resuming") and json.loads((run / "run.json").read_text())["attempts"] == 2
    for name in ("results.csv", "summary.csv", "diagnostics.csv", "comparisons.csv"):
        assert (run / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    pd.testing.assert_frame_equal(resumed, reference)


def test_cli_runs_a_bundled_study_from_any_directory_and_reports_config_errors(tmp_path, capsys,
                                                                                monkeypatch):
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)  # no studies/ folder here: the bundled configs ship in the package
    args = ["run", "digits_phase_shift", "--out", str(tmp_path / "cli"), "--quiet"]
    for item in TINY + ["methods=[{\"name\": \"magnitude\"}]"]:
        args += ["--set", item]
    assert main(args) == 0
    assert len(pd.read_csv(tmp_path / "cli" / "results.csv")) == 3
    assert "magnitude/layer" in capsys.readouterr().out
    assert main(["run", "--set", "schedule.n_psot=1"]) == 2  # the default study
    assert "n_psot" in capsys.readouterr().err
    assert main(args) == 2  # the run folder holds a finished run
    assert "finished run" in capsys.readouterr().err
    assert main(["run", "no_such_study"]) == 2
    assert "granger-prune list" in capsys.readouterr().err
    assert main(["list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == bundled_studies() == [
        "digits_phase_shift", "momentum_vs_vanilla", "structured_filters"]
    # a user's own config anywhere, as a file or as a folder holding config.toml
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.toml").write_text('name = "mine"\nseeds = [0]\n')
    assert StudyConfig.from_toml(resolve_study(str(mine))).name == "mine"
    assert resolve_study(str(mine / "config.toml")) == mine / "config.toml"


def test_the_bundled_configs_are_package_data_in_the_wheel(tmp_path):
    """What `pip install` of a wheel gets: the configs inside granger_prune/study/configs/."""
    import subprocess
    import sys
    import zipfile

    import shutil

    source = tmp_path / "source"  # a copy: no build/ or egg-info left in the checkout, none reused
    source.mkdir()
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / item, source / item)
    shutil.copytree(REPO / "granger_prune", source / "granger_prune",
                    ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                            str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("granger_prune-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n for n in names if n.endswith(".toml")) == [
        f"granger_prune/study/configs/{s}.toml" for s in bundled_studies()]


def test_zero_rule_study_has_one_run_per_seed_without_target(tmp_path):
    config = tiny_config().with_overrides(
        ['methods=[{"name": "causal", "rule": {"name": "zero", "alpha_ratio": 0.1}}]',
         "dense_reference=false"])
    results = run_study(config, tmp_path / "zero", progress=None)
    assert len(results) == 1
    assert results["sparsity_target"].isna().all()
    n_weights = 64 * 16 + 16 * 10
    # what the zero rule keeps is the lasso's support of the last round
    assert results.loc[0, "lasso_support"] == round((1 - results.loc[0, "sparsity_actual"]) * n_weights)
    assert results.loc[0, "kept_by_tiebreak"] == 0


def test_flops_plot_needs_the_exported_speedup():
    from granger_prune.study.report import plot_phase_shift
    results = pd.DataFrame(dict(label=["a"], sparsity_target=[0.5], sparsity_actual=[0.5], seed=[0],
                                accuracy=[0.9], loss=[0.3]))
    with pytest.raises(ValueError, match="speedup_exported"):
        plot_phase_shift(results, x="flops")
    with pytest.raises(ValueError, match="x must be one of"):
        plot_phase_shift(results, x="params")
    assert plot_phase_shift(results.assign(speedup_exported=4.0), x="flops").axes[0].get_xlabel().startswith("FLOPs")


def test_a_study_recorded_to_disk_or_the_device_gives_the_memory_study_and_refuses_what_does_not_fit(tmp_path):
    overrides = ["seeds=[0]", "sparsities=[0.9]", "dense_reference=false",
                 'methods=[{"name": "causal"}, {"name": "magnitude"}]']
    memory = run_study(tiny_config().with_overrides(overrides), tmp_path / "memory", progress=None)
    disk_config = tiny_config().with_overrides(overrides + ["trajectory_store=disk"])
    disk = run_study(disk_config, tmp_path / "disk", progress=None)
    pd.testing.assert_frame_equal(memory.drop(columns=["outputs"]),
                                  disk.drop(columns=["outputs"]))
    assert not (tmp_path / "disk" / "trajectories").exists()  # each round's folder removed
    on_device = run_study(tiny_config().with_overrides(overrides + ["trajectory_store=device"]),
                          tmp_path / "device", progress=None)  # the model's device: the CPU here
    pd.testing.assert_frame_equal(memory.drop(columns=["outputs"]), on_device.drop(columns=["outputs"]))
    with pytest.raises(MemoryError, match="above the budget"):
        run_study(tiny_config().with_overrides(overrides + ["trajectory_store=device", "store_budget_gb=1e-6"]),
                  tmp_path / "device-tight", progress=None)
    tight = disk_config.with_overrides(["store_budget_gb=1e-6", f"store_dir={tmp_path / 'store'}"])
    with pytest.raises(OSError, match="above the budget"):
        run_study(tight, tmp_path / "tight", progress=None)
    assert not list((tmp_path / "store").glob("round-*"))  # refused before anything was written
    with pytest.raises(ValueError, match="trajectory_store"):
        StudyConfig(trajectory_store="tape")
    with pytest.raises(ValueError, match="store_budget_gb"):
        StudyConfig(store_budget_gb=0)
    # bfloat16 steps: the baselines never read the trajectory, so their rows are the same
    half = run_study(disk_config.with_overrides(["store_dtype=bfloat16"]), tmp_path / "half",
                     progress=None).drop(columns=["outputs"])
    same = half["method"] == "magnitude"
    pd.testing.assert_frame_equal(half[same], memory.drop(columns=["outputs"])[same])
    np.testing.assert_allclose(half["sparsity_actual"], memory["sparsity_actual"], rtol=0, atol=0.01)
    with pytest.raises(ValueError, match="store_dtype"):
        StudyConfig(store_dtype="float16")
