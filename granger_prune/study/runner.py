"""Running a phase-shift study and writing its run folder.

A run folder holds ``config.json`` (the resolved configuration), ``meta.json``
(package version, git SHA, library versions, wall time), ``results.csv`` (one row
per method, sparsity and seed), ``summary.csv`` (mean test and validation accuracy
over seeds with 95 % t intervals), ``comparisons.csv`` and ``differences.png`` (every
criterion against ``config.baseline``, paired over seeds: mean difference, interval,
paired t and sign-flip p-values; see :mod:`granger_prune.study.intervals`),
``diagnostics.csv`` (every method's per-round diagnostics: lasso fits, tests, gradient batches),
``phase_shift.png`` (accuracy against parameters pruned), ``flops.png``
(accuracy against the FLOPs the exported smaller model removes), and per run
``models/<label>/sparsity-<s>-seed-<k>/`` with its final ``masks.npz``, the pruned
model's ``state_dict.pt`` and, for filter and layer pruning, ``exported.pt`` (see
:mod:`granger_prune.network.saved`; ``results.csv``'s ``outputs`` column names the folder).

Every run reports ShrinkBench's compression ratio (parameters / non-zero
parameters) and theoretical speed-up (FLOPs / non-zero FLOPs) of the pruned
model, and the same two ratios for the physically smaller model that
:func:`granger_prune.network.shrink_sequential` exports (dense counts of the
original over dense counts of the smaller model).  The folder is written under a ``.partial`` name and renamed
only when everything is in it, so a failed run leaves no half-written result.
"""

import json
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from .. import __version__
from ..zoo.datasets import load_dataset
from ..network.export import shrink_sequential
from ..network.costs import footprint
from ..zoo.models import build_model
from .intervals import paired_comparison
from .report import phase_shift_table, plot_paired_differences, plot_phase_shift
from ..selection.masks import full_masks
from ..network.pruning import prunable_parameters
from .._options import format_value
from ..network.saved import save_pruned_model
from ..training.algorithm import minibatches, post_train, pretrain, prune_and_retrain
from ..record.disk import DiskStore
from ..training.task import resolve_device

RESULT_COLUMNS = ["method", "rule", "scope", "granularity", "label", "sparsity_target",
                  "sparsity_actual", "seed", "accuracy", "loss", "val_accuracy", "val_loss", "best_epoch",
                  "compression", "speedup",
                  "compression_exported", "speedup_exported", "lasso_support",
                  "kept_by_tiebreak", "seconds", "outputs"]


def git_sha(path=None):
    """The git commit of the source tree holding ``path`` (``"unknown"`` outside git)."""
    where = Path(path or Path(__file__).parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def print_progress(message):
    """Write one progress line to stderr (the default ``progress`` of :func:`run_study`)."""
    print(message, file=sys.stderr, flush=True)


def run_study(config, out_dir, *, progress=print_progress):
    """Run every (seed, method, sparsity) of ``config`` and write the run folder.

    Parameters
    ----------
    config : granger_prune.study.StudyConfig
    out_dir : path
        The run folder to create; it must not exist yet.
    progress : callable(str) or None
        Receives one line per finished run; stderr by default.

    Returns
    -------
    pandas.DataFrame
        The rows of ``results.csv``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise ValueError(f"out_dir {str(out_dir)!r} already exists; choose a new folder")
    progress = progress or (lambda message: None)
    partial = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.time()
    try:
        (partial / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        rows, diagnostics = _run_grid(config, progress, started, partial)
        results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        results.to_csv(partial / "results.csv", index=False)
        phase_shift_table(results).to_csv(partial / "summary.csv")
        if diagnostics:
            _concat_keeping_integers(diagnostics).to_csv(partial / "diagnostics.csv", index=False)
        plot_phase_shift(results, partial / "phase_shift.png", title=config.name)
        plot_phase_shift(results, partial / "flops.png", title=config.name, x="flops")
        if config.baseline is not None:
            comparison = paired_comparison(results, config.baseline)
            comparison.to_csv(partial / "comparisons.csv", index=False)
            if not comparison.empty:
                plot_paired_differences(comparison, partial / "differences.png", title=config.name)
        (partial / "meta.json").write_text(json.dumps(
            dict(_meta(started), device=str(resolve_device(config.device))), indent=2))
        partial.rename(out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return results


def _run_grid(config, progress, started, out):
    device = resolve_device(config.device)
    data = load_dataset(config.dataset, image=config.model == "cnn").with_validation(
        config.validation_fraction, seed=config.validation_seed).to(device)
    store = None
    if config.trajectory_store == "disk":
        budget = None if config.store_budget_gb is None else int(config.store_budget_gb * 1e9)
        store = DiskStore(Path(config.store_dir) if config.store_dir else out / "trajectories", budget,
                          dtype=config.store_dtype)
    runs_per_seed = sum(len(_sparsities(method, config)) for method in config.methods)
    n_runs = len(config.seeds) * (runs_per_seed + config.dense_reference)
    rows, diagnostics = [], []

    def report(row):
        rows.append(row)
        progress(f"[{len(rows)}/{n_runs} {time.time() - started:6.1f}s] seed {row['seed']} "
                 f"{row['label']:<28} sparsity {row['sparsity_actual']:.3f}: "
                 f"accuracy {row['accuracy']:.4f}, loss {row['loss']:.4f}")

    example = data.x_test[:1]
    for seed in config.seeds:
        torch.manual_seed(seed)
        model = build_model(config.model, data.input_shape, data.n_classes,
                            **config.model_options).to(device)
        state = pretrain(model, data, config.schedule, config.optimization, seed)
        if config.dense_reference:
            tic = time.perf_counter()
            model.load_state_dict(state)
            dense = full_masks(prunable_parameters(model))
            post = post_train(model, data, dense, schedule=config.schedule, sgd=config.optimization,
                              batches=minibatches(data, config.optimization, seed))
            outputs = _save_outputs(model, dense, out, "dense", 0.0,
                                    seed, export=False)
            report(dict(method="dense", rule="none", scope="none", granularity="none", label="dense",
                        sparsity_target=0.0, sparsity_actual=0.0, seed=seed, accuracy=post.metric,
                        loss=post.loss, val_accuracy=post.val_metric, val_loss=post.val_loss,
                        best_epoch=post.best_epoch, **footprint_ratios(model, example),
                        seconds=time.perf_counter() - tic, outputs=outputs))
        for method in config.methods:
            for sparsity in _sparsities(method, config):
                result = prune_and_retrain(model, data, method, sparsity, schedule=config.schedule,
                                           sgd=config.optimization, seed=seed,
                                           pretrained_state=state, store=store)
                row = dict(method=method.name, rule=method.rule_name, scope=method.scope,
                           granularity=method.granularity, label=method.label,
                           sparsity_target=float("nan") if sparsity is None else sparsity,
                           sparsity_actual=result.sparsity, seed=seed,
                           accuracy=result.accuracy, loss=result.loss,
                           val_accuracy=result.val_metric, val_loss=result.val_loss,
                           best_epoch=result.best_epoch,
                           **footprint_ratios(model, example), seconds=result.seconds,
                           outputs=_save_outputs(model, result.masks, out, method.label, sparsity, seed,
                                                 export=method.granularity != "weight"))
                diag = result.diagnostics
                if len(diag):
                    last = diag[diag["round"] == diag["round"].max()]
                    row.update({column: int(last[column].sum()) for column in
                                ("lasso_support", "kept_by_tiebreak") if column in last})
                    diagnostics.append(diag.assign(seed=seed, label=method.label,
                                                   sparsity_target=row["sparsity_target"]))
                report(row)
    if store is not None and store.root == out / "trajectories" and store.root.exists():
        shutil.rmtree(store.root)  # every round's folder was removed after its selection
    return rows, diagnostics


def _concat_keeping_integers(frames):
    """``pd.concat`` of diagnostics tables that report different columns (a causal fit's,
    Taylor's): integer columns stay integers (nullable) where other tables lack them."""
    integers = {c for f in frames for c in f.columns if pd.api.types.is_integer_dtype(f[c])}
    table = pd.concat(frames, ignore_index=True)
    return table.astype({c: "Int64" for c in integers if not pd.api.types.is_integer_dtype(table[c])})


def _save_outputs(model, masks, out, label, sparsity, seed, *, export):
    """Save a finished run's masks, weights (and exported model) under ``out/models/``;
    return the folder relative to ``out``."""
    slug = re.sub(r"[^A-Za-z0-9.=_-]+", "_", label).strip("_")
    where = "any" if sparsity is None else format_value(float(sparsity))
    folder = Path("models") / slug / f"sparsity-{where}-seed-{seed}"
    if (out / folder).exists():  # two labels that differ only in characters the slug drops
        raise ValueError(f"the outputs of {label!r} at sparsity {where}, seed {seed} would overwrite "
                         f"{folder}: give the methods labels that differ in letters or digits")
    save_pruned_model(model, masks, out / folder, export=export)
    return folder.as_posix()


def footprint_ratios(model, example_input):
    """ShrinkBench's compression and speed-up of the trained, pruned ``model``, and
    the same ratios realised by its exported smaller copy."""
    masked = footprint(model, example_input)
    smaller = footprint(shrink_sequential(model), example_input)
    return dict(compression=masked["compression"], speedup=masked["speedup"],
                compression_exported=masked["params"] / smaller["params"],
                speedup_exported=masked["flops"] / smaller["flops"])


def _sparsities(method, config):
    """Target sparsities a method runs at; the zero and significance rules keep
    what the data say (None)."""
    return list(config.sparsities) if method.targets_sparsity else [None]


def _meta(started):
    import matplotlib
    import numpy
    import sklearn
    return {
        "granger_prune": __version__,
        "git_sha": git_sha(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scikit_learn": sklearn.__version__,
        "matplotlib": matplotlib.__version__,
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
        "wall_seconds": round(time.time() - started, 2),
    }
