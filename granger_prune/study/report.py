"""Tables and figures of study results."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

FOOTPRINT_COLUMNS = ("compression", "speedup", "compression_exported", "speedup_exported",
                     "flops_removed")
#: x axes of :func:`plot_phase_shift`: the column plotted (as a percentage) and its label.
X_AXES = {
    "sparsity": ("sparsity_actual", "parameters pruned (%)"),
    "flops": ("flops_removed", "FLOPs removed by the exported smaller model (%)"),
}


def phase_shift_table(results):
    """Accuracy per method and target sparsity, over seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        Rows of ``results.csv`` (columns ``label``, ``sparsity_target``,
        ``sparsity_actual``, ``seed``, ``accuracy``, ``loss``); the zero rule's
        rows have no target (NaN) and form one group per method.

    Returns
    -------
    pandas.DataFrame
        Index ``(label, sparsity_target)``; columns ``accuracy_mean``,
        ``accuracy_std``, ``loss_mean``, ``sparsity_actual``, the means of
        ``compression``, ``speedup``, ``compression_exported``,
        ``speedup_exported`` and ``flops_removed`` (``1 - 1 /
        speedup_exported``) when ``results`` has the ratios, and ``n_seeds``.
    """
    if "speedup_exported" in results:
        results = results.assign(flops_removed=1.0 - 1.0 / results["speedup_exported"])
    grouped = results.groupby(["label", "sparsity_target"], dropna=False)
    table = pd.DataFrame({
        "accuracy_mean": grouped["accuracy"].mean(),
        "accuracy_std": grouped["accuracy"].std(ddof=1),
        "loss_mean": grouped["loss"].mean(),
        "sparsity_actual": grouped["sparsity_actual"].mean(),
    })
    for column in FOOTPRINT_COLUMNS:
        if column in results:
            table[column] = grouped[column].mean()
    table["n_seeds"] = grouped["seed"].nunique()
    return table


def plot_phase_shift(results, path=None, title=None, x="sparsity"):
    """Accuracy against percent pruned, one line per method (mean ± std over seeds).

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
        ax.errorbar(100 * rows[column], rows["accuracy_mean"],
                    yerr=rows["accuracy_std"].fillna(0), marker="o", ms=4, capsize=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "Phase shift: accuracy against sparsity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig
