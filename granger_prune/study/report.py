"""Tables and figures of study results."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .intervals import t_interval  # noqa: E402

FOOTPRINT_COLUMNS = ("compression", "speedup", "compression_exported", "speedup_exported",
                     "flops_removed")
#: x axes of :func:`plot_phase_shift`: the column plotted (as a percentage) and its label.
X_AXES = {
    "sparsity": ("sparsity_actual", "parameters pruned (%)"),
    "flops": ("flops_removed", "FLOPs removed by the exported smaller model (%)"),
}


def phase_shift_table(results, level=0.95):
    """Accuracy per method and target sparsity, over seeds, with intervals.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of ``results.csv`` (columns ``label``, ``sparsity_target``,
        ``sparsity_actual``, ``seed``, ``accuracy``, ``loss``, and optionally
        ``val_accuracy``, ``val_loss``); the zero rule's rows have no target
        (NaN) and form one group per method.
    level : float
        Of the Student-t intervals of the means over seeds
        (:func:`granger_prune.study.intervals.t_interval`).

    Returns
    -------
    pandas.DataFrame
        Index ``(label, sparsity_target)``; columns ``accuracy_mean``,
        ``accuracy_std``, ``accuracy_ci_low``, ``accuracy_ci_high``,
        ``loss_mean``, the same four ``val_accuracy_*`` columns and
        ``val_loss_mean`` when the results have a validation split,
        ``sparsity_actual``, the means of ``compression``, ``speedup``,
        ``compression_exported``, ``speedup_exported`` and ``flops_removed``
        (``1 - 1 / speedup_exported``) when ``results`` has the ratios, and ``n_seeds``.
    """
    if "speedup_exported" in results:
        results = results.assign(flops_removed=1.0 - 1.0 / results["speedup_exported"])
    grouped = results.groupby(["label", "sparsity_target"], dropna=False, sort=False)
    table = pd.DataFrame(index=pd.MultiIndex.from_tuples(list(grouped.groups), names=grouped.keys))
    with_validation = "val_accuracy" in results and results["val_accuracy"].notna().any()
    for metric in ("accuracy", "val_accuracy") if with_validation else ("accuracy",):
        intervals = grouped[metric].apply(lambda v: pd.Series(t_interval(v, level),
                                                              index=["mean", "ci_low", "ci_high"]))
        intervals = intervals.unstack()
        table[f"{metric}_mean"] = intervals["mean"]
        table[f"{metric}_std"] = grouped[metric].std(ddof=1)
        table[f"{metric}_ci_low"] = intervals["ci_low"]
        table[f"{metric}_ci_high"] = intervals["ci_high"]
        loss = metric.replace("accuracy", "loss")
        table[f"{loss}_mean"] = grouped[loss].mean()
    table["sparsity_actual"] = grouped["sparsity_actual"].mean()
    for column in FOOTPRINT_COLUMNS:
        if column in results:
            table[column] = grouped[column].mean()
    table["n_seeds"] = grouped["seed"].nunique()
    return table.sort_index()


def plot_phase_shift(results, path=None, title=None, x="sparsity"):
    """Accuracy against percent pruned, one line per method: the mean over seeds
    and its 95 % t interval (no bar for a single seed).

    The unpruned reference (``label == "dense"``), when present, is a dashed line.

    Parameters
    ----------
    results : pandas.DataFrame
    path : path, optional
        Where to save the figure.
    title : str, optional
    x : {"sparsity", "flops"}
        Percent of parameters pruned, or percent of FLOPs removed by the
        exported smaller model (``1 - 1 / speedup_exported``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if x not in X_AXES:
        raise ValueError(f"x must be one of {tuple(X_AXES)}, got {x!r}")
    if x == "flops" and "speedup_exported" not in results:
        raise ValueError("x='flops' needs the speedup_exported column of a study's results")
    table = phase_shift_table(results).reset_index()
    column, xlabel = X_AXES[x]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, rows in table.groupby("label", sort=False):
        if label == "dense":
            ax.axhline(rows["accuracy_mean"].iloc[0], color="0.4", ls="--", lw=1, label="dense")
            continue
        rows = rows.sort_values(column)
        ax.errorbar(100 * rows[column], rows["accuracy_mean"], yerr=_bars(rows, "accuracy_mean"),
                    marker="o", ms=4, capsize=3, label=label)
    return _finish(fig, ax, xlabel, "test accuracy (mean, 95 % interval over seeds)",
                   title or "Phase shift: accuracy against sparsity", path)


def plot_paired_differences(comparison, path=None, title=None):
    """Each criterion's accuracy minus the baseline's, paired over seeds, against
    the target sparsity: the mean difference and its 95 % t interval, with the
    zero line; a marker is filled where the paired t-test's p-value is below 0.05.

    Parameters
    ----------
    comparison : pandas.DataFrame
        From :func:`granger_prune.study.intervals.paired_comparison`.
    path : path, optional
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if comparison.empty:
        raise ValueError("the comparison is empty: no criterion shares a target sparsity with the baseline")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.axhline(0.0, color="0.4", ls="--", lw=1)
    for label, rows in comparison.groupby("label", sort=False):
        rows = rows.sort_values("sparsity_target")
        x = 100 * rows["sparsity_target"]
        line = ax.errorbar(x, rows["mean_difference"], yerr=_bars(rows, "mean_difference"),
                           marker="o", ms=4, capsize=3, mfc="white", label=label)
        significant = rows["pvalue"] < 0.05
        ax.plot(x[significant], rows["mean_difference"][significant], "o", ms=4,
                color=line.lines[0].get_color())
    baseline = comparison["baseline"].iloc[0]
    return _finish(fig, ax, "target sparsity (%)", f"accuracy minus {baseline}",
                   title or f"Paired over seeds, against {baseline} (filled: p < 0.05)", path)


def _finish(fig, ax, xlabel, ylabel, title, path):
    """Label, grid and legend ``ax``; save ``fig`` to ``path`` when given; return it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig


def _bars(rows, mean):
    """Asymmetric error bars from ``ci_low``/``ci_high`` beside ``mean`` (0 where NaN)."""
    prefix = mean[: -len("mean")] if mean.endswith("_mean") else ""
    low, high = rows[f"{prefix}ci_low"], rows[f"{prefix}ci_high"]
    return [(rows[mean] - low).fillna(0).to_numpy(), (high - rows[mean]).fillna(0).to_numpy()]


def markdown_summary(results, metric="accuracy", digits=4, level=0.95):
    """A Markdown table of ``metric``: one row per target sparsity, one column per
    label, each cell ``mean [low, high]`` (the t interval over seeds; the mean alone
    for one seed); the dense reference, when present, in a line above the table.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of ``results.csv``.
    metric : {"accuracy", "val_accuracy"}
    digits : int
    level : float

    Returns
    -------
    str
    """
    table = phase_shift_table(results, level=level).reset_index()
    if f"{metric}_mean" not in table:
        raise ValueError(f"the results have no {metric!r} to summarise")
    table["cell"] = [_cell(r[f"{metric}_mean"], r[f"{metric}_ci_low"], r[f"{metric}_ci_high"], digits)
                     for _, r in table.iterrows()]
    table["sparsity"] = table["sparsity_target"].map(lambda s: "none" if pd.isna(s) else f"{s:g}")
    dense = table[table["label"] == "dense"]
    table = table[table["label"] != "dense"]
    order = list(dict.fromkeys(results["label"]))
    grid = table.pivot(index="sparsity", columns="label", values="cell")
    grid = grid[[label for label in order if label in grid.columns]].fillna("")
    above = f"dense: {dense['cell'].iloc[0]}\n\n" if len(dense) else ""
    return above + _markdown(grid, "sparsity")


def markdown_comparison(comparison, digits=4):
    """A Markdown table of :func:`~granger_prune.study.intervals.paired_comparison`:
    one row per label, one column per target sparsity, each cell ``difference
    [low, high] p=…`` (the paired t-test's p-value)."""
    if comparison.empty:
        raise ValueError("the comparison is empty")
    cells = comparison.assign(
        cell=[_cell(r["mean_difference"], r["ci_low"], r["ci_high"], digits, signed=True)
              + ("" if pd.isna(r["pvalue"]) else f" p={r['pvalue']:.2g}") for _, r in comparison.iterrows()],
        sparsity=comparison["sparsity_target"].map(lambda s: f"{s:g}"))
    grid = cells.pivot(index="label", columns="sparsity", values="cell")
    grid = grid.loc[list(dict.fromkeys(comparison["label"]))].fillna("")
    return _markdown(grid, f"minus {comparison['baseline'].iloc[0]}")


def _cell(mean, low, high, digits, signed=False):
    sign = "+" if signed else ""
    if pd.isna(low):
        return f"{mean:{sign}.{digits}f}"
    return f"{mean:{sign}.{digits}f} [{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def _markdown(grid, corner):
    lines = ["| " + " | ".join([corner, *map(str, grid.columns)]) + " |",
             "|" + "---|" * (len(grid.columns) + 1)]
    lines += ["| " + " | ".join([str(index), *row]) + " |" for index, row in zip(grid.index, grid.to_numpy())]
    return "\n".join(lines)
