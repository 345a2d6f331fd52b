"""Part (b) of lasso_vs_ftest: F-test against lasso selection on the digits MLP.

    python studies/lasso_vs_ftest/digits.py               # 3 seeds, about 6 minutes on 2 cores
    python studies/lasso_vs_ftest/digits.py --quick       # 1 seed, short schedule (smoke run)

For every seed the MLP 64-128-64-10 is pre-trained, then each significance-rule
method (the classical F-test with BH or Bonferroni, with momentum features or a
lasso screen on a split; the HAC and prewhitened tests; the tests conditional on
principal-component factors or on the common step scale; stability selection)
prunes in one round (Algorithm 1 with n_iter = 1: record n_prune epochs,
keep what the F-tests find significant, rewind, post-train).  Its realised
sparsity is then given to the lasso rank rule and to the baselines (uniform
density per layer, or global), so every comparison is at matched overall
sparsity.  Writes ``digits.csv`` (one row per seed and method),
``digits_summary.csv``, ``digits.png`` and ``digits_meta.json`` next to this file.
"""

import argparse
import json
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import granger_prune as gp  # noqa: E402
from granger_prune.selection.masks import mask_overlap  # noqa: E402
from granger_prune.study.runner import git_sha  # noqa: E402

HERE = Path(__file__).resolve().parent

SIGNIFICANCE = {
    "F-BH": gp.Causal(rule=gp.Significance(q=0.05, correction="fdr_bh")),
    "F-Bonferroni": gp.Causal(rule=gp.Significance(q=0.05, correction="bonferroni")),
    "F-BH-momentum": gp.Causal(design=gp.DesignSpec(features="momentum", lags=2),
                               rule=gp.Significance(q=0.05, correction="fdr_bh")),
    "lasso-screen+F-BH (split 0.5)": gp.Causal(rule=gp.Significance(q=0.05, correction="fdr_bh",
                                                                    split=0.5, alpha_ratio=0.01)),
    "HAC-BH": gp.Causal(rule=gp.Significance(q=0.05, inference="hac")),
    "prewhitened F-BH": gp.Causal(rule=gp.Significance(q=0.05, inference="prewhiten")),
    "F-BH | PCA factors": gp.Causal(rule=gp.Significance(q=0.05, factors="bai_ng")),
    "F-BH | step scale": gp.Causal(rule=gp.Significance(q=0.05, factors="scale")),
    "stability selection": gp.Causal(rule=gp.Stability(max_false=1.0, n_pairs=25)),
}
MATCHED = {
    "lasso-rank-marginal": gp.Causal(rule=gp.Rank(alpha_ratio=0.01)),
    "lasso-rank-magnitude": gp.Causal(rule=gp.Rank(alpha_ratio=0.01, tie_breaker="magnitude")),
    "magnitude/layer": gp.Magnitude(),
    "magnitude/global": gp.Magnitude(scope="global"),
    "random/layer": gp.Random(),
}


def run_seed(seed, schedule, sgd, data, progress):
    torch.manual_seed(seed)
    model = gp.MLP(int(np.prod(data.input_shape)), hidden=(128, 64), n_classes=data.n_classes)
    state = gp.pretrain(model, data, schedule, sgd, seed)
    rows = []
    for name, method in SIGNIFICANCE.items():
        tested = gp.prune_and_retrain(model, data, method, None, schedule=schedule, sgd=sgd,
                                      seed=seed, pretrained_state=state)
        diag = tested.diagnostics
        row = dict(seed=seed, family=name, method=name, sparsity=tested.sparsity,
                   accuracy=tested.accuracy, jaccard_with_ftest=1.0,
                   n_kept_units=int(diag["kept_units"].sum()))
        for column, how in (("n_significant", "sum"), ("n_tested", "sum"),
                            ("durbin_watson", "mean"), ("ljung_box_pvalue", "mean"),
                            ("ar_order", "mean"), ("hac_lags", "mean"), ("n_factors", "mean"),
                            ("factor_share", "mean"), ("expected_false_bound", "sum")):
            if column in diag:
                row[column] = float(getattr(diag[column], how)())
        rows.append(row)
        progress(rows[-1])
        target = min(tested.sparsity, 0.999)
        for label, matched in MATCHED.items():
            result = gp.prune_and_retrain(model, data, matched, target, schedule=schedule, sgd=sgd,
                                          seed=seed, pretrained_state=state)
            rows.append(dict(seed=seed, family=name, method=label, sparsity=result.sparsity,
                             accuracy=result.accuracy,
                             jaccard_with_ftest=mask_overlap(tested.masks, result.masks)))
            progress(rows[-1])
    return rows


def summarise(frame):
    grouped = frame.groupby(["family", "method"], sort=False)
    summary = grouped.agg(sparsity=("sparsity", "mean"), accuracy_mean=("accuracy", "mean"),
                          accuracy_std=("accuracy", "std"),
                          jaccard_with_ftest=("jaccard_with_ftest", "mean"), seeds=("seed", "nunique"))
    return summary.reset_index()


def plot(summary, path):
    families = list(dict.fromkeys(summary["family"]))
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 4), sharey=True)
    for ax, family in zip(np.atleast_1d(axes), families):
        part = summary[summary["family"] == family]
        ax.bar(range(len(part)), part["accuracy_mean"], yerr=part["accuracy_std"].fillna(0),
               color=["tab:red"] + ["tab:blue"] * 2 + ["tab:gray"] * (len(part) - 3))
        ax.set_xticks(range(len(part)))
        ax.set_xticklabels(part["method"], rotation=60, ha="right", fontsize=8)
        ax.set_title(f"{family}\nsparsity {part['sparsity'].iloc[0]:.3f}", fontsize=9)
    np.atleast_1d(axes)[0].set_ylabel("test accuracy after post-training")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    seeds = list(range(1 if args.quick else args.seeds))
    schedule = (gp.Schedule(n_pre=2, n_iter=1, n_prune=1, n_post=2) if args.quick
                else gp.Schedule(n_pre=10, n_iter=1, n_prune=3, n_post=20))
    sgd = gp.SGDConfig(lr=0.05, momentum=0.9, batch_size=16)
    data = gp.load_dataset("digits")
    started = time.time()

    def progress(row):
        print(f"[{time.time() - started:6.1f}s] seed {row['seed']} {row['family']:<30} "
              f"{row['method']:<30} sparsity {row['sparsity']:.3f} accuracy {row['accuracy']:.4f}",
              flush=True)

    rows = [row for seed in seeds for row in run_seed(seed, schedule, sgd, data, progress)]
    frame = pd.DataFrame(rows)
    summary = summarise(frame)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "digits.csv", index=False)
    summary.to_csv(args.out / "digits_summary.csv", index=False)
    plot(summary, args.out / "digits.png")
    meta = dict(granger_prune=gp.__version__, git_sha=git_sha(HERE), python=platform.python_version(),
                torch=torch.__version__, seeds=seeds, schedule=vars(schedule), sgd=vars(sgd),
                significance={k: m.label for k, m in SIGNIFICANCE.items()},
                matched={k: m.label for k, m in MATCHED.items()},
                wall_seconds=time.time() - started)
    (args.out / "digits_meta.json").write_text(json.dumps(meta, indent=2, default=str))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


if __name__ == "__main__":
    main()
