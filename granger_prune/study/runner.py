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
original over dense counts of the smaller model).  ``timings.csv`` holds each run's
wall seconds (over every attempt), apart from ``results.csv``, whose every byte is a
function of the configuration and the code on the CPU.

A run survives a crash (:mod:`granger_prune.study.run_folder`): the folder is marked
unfinished while it runs and checkpointed after pre-training, after every pruning round
and after every finished run; :func:`run_study` on the same folder continues from there.
The tables are written (each atomically, ``results.csv`` last) only from finished runs.
"""

import contextlib
import json
import os
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
from ..record.device import DeviceStore
from ..record.disk import DiskStore
from ..training.resume import set_torch_random_state, torch_random_state
from ..training.task import resolve_device
from .._atomic import atomic_write_text
from .run_folder import RunFolder

RESULT_COLUMNS = ["method", "rule", "scope", "granularity", "label", "sparsity_target",
                  "sparsity_actual", "seed", "accuracy", "loss", "val_accuracy", "val_loss", "best_epoch",
                  "compression", "speedup",
                  "compression_exported", "speedup_exported", "lasso_support",
                  "kept_by_tiebreak", "outputs"]


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


def run_study(config, out_dir, *, progress=print_progress, force=False):
    """Run every (seed, method, sparsity) of ``config`` into the run folder ``out_dir``,
    or continue the unfinished run there.

    A new folder is marked unfinished (``run.json``) and checkpointed after
    pre-training, after every pruning round and after every finished cell (see
    :mod:`granger_prune.study.run_folder`); the tables and figures are written
    from the finished cells only, once all are finished, and the folder is then
    marked finished.  Called again on an unfinished folder of the same
    configuration it continues from the last checkpoints, and ends, on the CPU,
    with the tables of a run without a stop (``results.csv`` byte for byte).

    Parameters
    ----------
    config : granger_prune.study.StudyConfig
    out_dir : path
        The run folder: a new one, or an unfinished one of the same configuration.
    progress : callable(str) or None
        Receives one line per finished run; stderr by default.
    force : bool
        Continue a folder that was started by another package version or git SHA.

    Returns
    -------
    pandas.DataFrame
        The rows of ``results.csv``.

    Raises
    ------
    ValueError
        When ``out_dir`` holds a finished run, another configuration's run or no
        run folder but other files; :class:`~granger_prune.exceptions.CheckpointError`
        for a damaged, edited or foreign checkpoint, or a run of other code
        without ``force``.
    """
    folder = RunFolder.open_or_create(out_dir, config, force=force)
    try:
        return _run_and_write(config, folder, progress or (lambda message: None))
    finally:
        folder.release()


def _run_and_write(config, folder, progress):
    """Finish the cells of ``folder`` and write its tables; returns ``results.csv``'s rows."""
    started = time.time()
    if folder.resumed:
        progress(f"resuming {folder.path} (attempt {folder.info['attempts']})")
    cells = _run_grid(config, progress, started, folder)
    rows = [row for row, _, _ in cells]
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    out = folder.path
    diagnostics = [frame for _, frame, _ in cells if frame is not None]
    timings = pd.DataFrame([{key: row[key] for key in ("label", "sparsity_target", "seed")} | {"seconds": s}
                            for row, _, s in cells])
    _write_csv(phase_shift_table(results), out / "summary.csv")
    _write_csv(timings, out / "timings.csv", index=False)
    if diagnostics:
        _write_csv(_concat_keeping_integers(diagnostics), out / "diagnostics.csv", index=False)
    _write_figure(plot_phase_shift, results, out / "phase_shift.png", title=config.name)
    _write_figure(plot_phase_shift, results, out / "flops.png", title=config.name, x="flops")
    if config.baseline is not None:
        comparison = paired_comparison(results, config.baseline)
        _write_csv(comparison, out / "comparisons.csv", index=False)
        if not comparison.empty:
            _write_figure(plot_paired_differences, comparison, out / "differences.png", title=config.name)
    atomic_write_text(out / "meta.json", json.dumps(
        dict(_meta(started), device=str(resolve_device(config.device)),
             attempts=folder.info["attempts"]), indent=2))
    _write_csv(results, out / "results.csv", index=False)  # last: a results.csv means every cell
    folder.finish()
    return results


def _write_csv(frame, path, **options):
    atomic_write_text(path, frame.to_csv(**options))


def _write_figure(plot, table, path, **options):
    import matplotlib.pyplot as plt

    temporary = path.with_name(path.stem + ".tmp" + path.suffix)
    try:
        plt.close(plot(table, temporary, **options))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _slug(label):
    return re.sub(r"[^A-Za-z0-9.=_-]+", "_", label).strip("_")


def cell_name(label, sparsity, seed):
    """The folder name of one (label, sparsity, seed): ``<label>/sparsity-<s>-seed-<k>``."""
    where = "any" if sparsity is None else format_value(float(sparsity))
    return f"{_slug(label)}/sparsity-{where}-seed-{seed}"


def _check_distinct_folders(config):
    slugs = {}
    for label in [m.label for m in config.methods] + ["dense"] * config.dense_reference:
        slug = _slug(label)
        if slugs.setdefault(slug, label) != label:
            raise ValueError(f"the outputs of {label!r} and {slugs[slug]!r} would share the folder "
                             f"models/{slug}: give the methods labels that differ in letters or digits")


def _run_grid(config, progress, started, folder):
    """Every cell's ``(row, diagnostics or None, seconds)`` in grid order, computing the
    unfinished ones."""
    _check_distinct_folders(config)
    out = folder.path
    device = resolve_device(config.device)
    store = None
    budget = None if config.store_budget_gb is None else int(config.store_budget_gb * 1e9)
    if config.trajectory_store == "device":
        store = DeviceStore(device, budget, features_per_parameter=max(
            (method.design.features_per_parameter for method in config.methods
             if getattr(method, "design", None) is not None), default=1))
    elif config.trajectory_store == "disk":
        root = Path(config.store_dir) if config.store_dir else out / "trajectories"
        if root == out / "trajectories":
            shutil.rmtree(root, ignore_errors=True)  # rounds a killed attempt left
        store = DiskStore(root, budget, dtype=config.store_dtype)
    grid = [(seed, [("dense", 0.0)] * config.dense_reference
             + [(method, sparsity) for method in config.methods for sparsity in _sparsities(method, config)])
            for seed in config.seeds]
    n_runs = sum(len(cells) for _, cells in grid)
    cells, data = [], None

    def report(cell):
        cells.append(cell)
        row = cell[0]
        progress(f"[{len(cells)}/{n_runs} {time.time() - started:6.1f}s] seed {row['seed']} "
                 f"{row['label']:<28} sparsity {row['sparsity_actual']:.3f}: "
                 f"accuracy {row['accuracy']:.4f}, loss {row['loss']:.4f}")

    for seed, seed_cells in grid:
        names = [cell_name(_label(method), sparsity, seed) for method, sparsity in seed_cells]
        finished = [folder.load_cell(name) for name in names]
        if all(cell is not None for cell in finished):
            for cell in finished:
                report(cell)
            continue
        if data is None:
            data = load_dataset(config.dataset, image=config.model == "cnn").with_validation(
                config.validation_fraction, seed=config.validation_seed).to(device)
        example = data.x_test[:1]
        with _noted(f"pre-training seed {seed}", folder):
            model, state = _pretrained(config, data, seed, device, folder)
        for (method, sparsity), name, cell in zip(seed_cells, names, finished):
            if cell is None:
                with _noted(f"the run {name}", folder):
                    cell = _run_cell(config, data, model, state, method, sparsity, seed, store,
                                     example, folder, name)
            report(cell)
    if isinstance(store, DiskStore) and store.root == out / "trajectories" and store.root.exists():
        shutil.rmtree(store.root)  # every round's folder was removed after its selection
    return cells


@contextlib.contextmanager
def _noted(what, folder):
    """Add to an error where in the grid it happened and that the folder can be continued."""
    try:
        yield
    except Exception as error:
        error.add_note(f"granger_prune: in {what}; {folder.path} is kept unfinished, and running "
                       "the study again on it continues from its last checkpoint")
        raise


def _label(method):
    return "dense" if method == "dense" else method.label


def _pretrained(config, data, seed, device, folder):
    """The seed's model and θ_pre, from its checkpoint or pre-trained and checkpointed;
    torch's random states left as right after pre-training."""
    torch.manual_seed(seed)
    try:
        model = build_model(config.model, data.input_shape, data.n_classes, **config.model_options)
    except (TypeError, ValueError) as error:
        raise ValueError(f"model {config.model!r} cannot be built with model_options "
                         f"{config.model_options}: {error}") from None
    model = model.to(device)
    saved = folder.load_pretrained(seed, model)
    if saved is None:
        state = pretrain(model, data, config.schedule, config.optimization, seed)
        folder.save_pretrained(seed, state, torch_random_state(device))
        return model, state
    state, random_state = saved
    model.load_state_dict(state)
    set_torch_random_state(random_state, device)
    return model, state


def _run_cell(config, data, model, state, method, sparsity, seed, store, example, folder, name):
    """Run one cell, save its outputs and checkpoint it; returns ``(row, diagnostics, seconds)``."""
    outputs = Path("models") / name
    shutil.rmtree(folder.path / outputs, ignore_errors=True)  # a killed attempt's part
    if method == "dense":
        tic = time.perf_counter()
        model.load_state_dict(state)
        dense = full_masks(prunable_parameters(model))
        post = post_train(model, data, dense, schedule=config.schedule, sgd=config.optimization,
                          batches=minibatches(data, config.optimization, seed))
        save_pruned_model(model, dense, folder.path / outputs, export=False)
        row = dict(method="dense", rule="none", scope="none", granularity="none", label="dense",
                   sparsity_target=0.0, sparsity_actual=0.0, seed=seed, accuracy=post.metric,
                   loss=post.loss, val_accuracy=post.val_metric, val_loss=post.val_loss,
                   best_epoch=post.best_epoch, **footprint_ratios(model, example),
                   outputs=outputs.as_posix())
        folder.save_cell(name, row, None, time.perf_counter() - tic)
        return folder.load_cell(name)
    result = prune_and_retrain(model, data, method, sparsity, schedule=config.schedule,
                               sgd=config.optimization, seed=seed, pretrained_state=state, store=store,
                               checkpoint=folder.rounds(name))
    save_pruned_model(model, result.masks, folder.path / outputs, export=method.granularity != "weight")
    row = dict(method=method.name, rule=method.rule_name, scope=method.scope,
               granularity=method.granularity, label=method.label,
               sparsity_target=float("nan") if sparsity is None else sparsity,
               sparsity_actual=result.sparsity, seed=seed,
               accuracy=result.accuracy, loss=result.loss,
               val_accuracy=result.val_metric, val_loss=result.val_loss,
               best_epoch=result.best_epoch,
               **footprint_ratios(model, example), outputs=outputs.as_posix())
    diag = result.diagnostics
    frame = None
    if len(diag):
        last = diag[diag["round"] == diag["round"].max()]
        row.update({column: int(last[column].sum()) for column in
                    ("lasso_support", "kept_by_tiebreak") if column in last})
        frame = diag.assign(seed=seed, label=method.label, sparsity_target=row["sparsity_target"])
    folder.save_cell(name, row, frame, result.seconds)
    return folder.load_cell(name)


def _concat_keeping_integers(frames):
    """``pd.concat`` of diagnostics tables that report different columns (a causal fit's,
    Taylor's): integer columns stay integers (nullable) where other tables lack them."""
    integers = {c for f in frames for c in f.columns if pd.api.types.is_integer_dtype(f[c])}
    table = pd.concat(frames, ignore_index=True)
    return table.astype({c: "Int64" for c in integers if not pd.api.types.is_integer_dtype(table[c])})


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
