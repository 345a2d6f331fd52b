"""Do the vanilla and momentum feature sets keep the same weights?

For each seed: pre-train the study's MLP as the study does, record one round (3 epochs of
SGD with momentum 0.9), and select at each density with the lasso rank rule under the
vanilla features, vanilla with two lagged losses, and the momentum features with two lagged
losses, and by magnitude. Reports the Jaccard overlap of the surviving sets of each pair,
and of each with random masks of the same per-layer density (the chance level). One round
of selection, no retraining: this isolates what the feature set changes in the choice.

    python studies/momentum_vs_vanilla/overlap.py            # writes overlap.csv here
"""

import argparse
import itertools
import json
import time
from pathlib import Path

import pandas as pd
import torch

import granger_prune
from granger_prune import (MLP, Random, RoundInputs, StudyConfig, TrajectoryRecorder,
                           load_dataset, pretrain, prunable_parameters)
from granger_prune.selection.masks import full_masks, mask_overlap
from granger_prune.network.pruning import weights_numpy
from granger_prune.study import resolve_study
from granger_prune.study.runner import git_sha
from granger_prune.training.algorithm import minibatches, train_epochs

HERE = Path(__file__).resolve().parent


def selections(config, seed, densities):
    """Masks per (method label, density) after one recorded round from θ_pre."""
    data = load_dataset(config.dataset)
    torch.manual_seed(seed)
    model = MLP(in_features=64, n_classes=10, **config.model_options)
    pretrain(model, data, config.schedule, config.sgd, seed)
    params = prunable_parameters(model)
    optimizer = config.sgd.make(model)
    recorder = TrajectoryRecorder(model, params)
    train_epochs(model, minibatches(data, config.sgd, seed), optimizer, config.schedule.n_prune,
                 recorder=recorder)
    weights, alive = weights_numpy(params), full_masks(params)
    methods = [m for m in config.methods] + [Random()]
    masks = {}
    for method, density in itertools.product(methods, densities):
        inputs = RoundInputs(weights, trajectory=recorder.trajectory, rng=seed)
        masks[method.label, density] = method.select(alive, density, inputs).masks
    return masks


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=HERE / "overlap.csv")
    args = parser.parse_args()
    config = StudyConfig.from_toml(resolve_study("momentum_vs_vanilla"))
    densities = [1 - s for s in config.sparsities]
    started = time.time()
    rows = []
    for seed in args.seeds:
        masks = selections(config, seed, densities)
        labels = sorted({label for label, _ in masks})
        for (a, b), density in itertools.product(itertools.combinations(labels, 2), densities):
            rows.append(dict(seed=seed, sparsity=round(1 - density, 6), a=a, b=b,
                             jaccard=mask_overlap(masks[a, density], masks[b, density])))
        print(f"seed {seed} done ({time.time() - started:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(args.out, index=False)
    summary = table.groupby(["a", "b", "sparsity"])["jaccard"].mean().unstack("sparsity")
    print(summary.round(3).to_string())
    meta = dict(granger_prune=granger_prune.__version__, git_sha=git_sha(HERE), seeds=args.seeds,
                torch_threads=torch.get_num_threads(), wall_seconds=round(time.time() - started, 1))
    args.out.with_name(args.out.stem + "_meta.json").write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
