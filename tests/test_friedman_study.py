"""Smoke test of studies/friedman/run.py (seed 001's figure 1): its --quick run's outputs."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "studies" / "friedman" / "run.py"
MODELS = ["linear/zero", "linear/default", "mlp/default", "mlp/small"]
SCORES = ["gamma", "standardised", "loss_share", "marginal", "loss_share/ridge", "loss_share/a0.001",
          "taylor_share"]


def test_quick_run_writes_consistent_outputs(tmp_path):
    out = tmp_path / "friedman"
    subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    for name in ("results.csv", "summary.csv", "reference.csv", "importances.csv", "meta.json",
                 "friedman.png"):
        assert (out / name).is_file(), name
    meta = json.loads((out / "meta.json").read_text())
    seeds = meta["seeds"]
    assert meta["quick"] and len(seeds) == 2 and meta["wall_seconds"] > 0 and meta["git_sha"]

    results = pd.read_csv(out / "results.csv")
    assert len(results) == len(MODELS) * len(SCORES) * len(seeds)
    assert set(results["model"]) == set(MODELS) and set(results["score"]) == set(SCORES)
    assert not results.duplicated(["model", "score", "seed"]).any()
    rho = results["spearman"].dropna()
    assert rho.between(-1, 1).all()
    assert results["auc"].between(0, 1).all() and results["auc_linear"].between(0, 1).all()
    assert results["separated"].isin([0, 1]).all()
    # separated means every informative input beats every irrelevant one: AUC 1 exactly
    assert (results.loc[results["separated"] == 1, "auc"] == 1).all()

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == len(MODELS) * len(SCORES) + 1  # and the LassoCV reference
    assert (summary["separated_low"] <= summary["separated_fraction"]).all()
    assert (summary["separated_fraction"] <= summary["separated_high"]).all()

    # The reference is real: in every seed the lasso on the inputs ranks the irrelevant X5..X9
    # below the four inputs with a linear effect (X0, X1, X3, X4).  X2's effect 20 (x2 - 0.5)^2
    # has no linear part, so the lasso gives it about zero and its plain AUC stays below 1.
    reference = pd.read_csv(out / "reference.csv")
    assert len(reference) == len(seeds)
    assert (reference["separated_linear"] == 1).all() and (reference["auc_linear"] == 1).all()
    importances = pd.read_csv(out / "importances.csv")
    lasso = importances[importances["model"] == "reference"][[f"X{j}" for j in range(10)]].to_numpy()
    assert np.all(lasso[:, [0, 1, 3, 4]].min(axis=1) > lasso[:, 5:].max(axis=1))
    assert np.all(lasso[:, 3] == lasso.max(axis=1))  # 10 x3, the largest linear effect
