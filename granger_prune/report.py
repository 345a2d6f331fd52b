"""Tables and figures of study results."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


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
        ``accuracy_std``, ``loss_mean``, ``sparsity_actual``, ``n_seeds``.
    """
    grouped = results.groupby(["label", "sparsity_target"], dropna=False)
    return pd.DataFrame({
        "accuracy_mean": grouped["accuracy"].mean(),
        "accuracy_std": grouped["accuracy"].std(ddof=1),
        "loss_mean": grouped["loss"].mean(),
        "sparsity_actual": grouped["sparsity_actual"].mean(),
        "n_seeds": grouped["seed"].nunique(),
    })


def plot_phase_shift(results, path=None, title=None):
    """Accuracy against percent pruned, one line per method (mean ± std over seeds).

    The unpruned reference (``label == "dense"``), when present, is a dashed line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    table = phase_shift_table(results).reset_index()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, rows in table.groupby("label", sort=False):
        if label == "dense":
            ax.axhline(rows["accuracy_mean"].iloc[0], color="0.4", ls="--", lw=1, label="dense")
            continue
        rows = rows.sort_values("sparsity_actual")
        ax.errorbar(100 * rows["sparsity_actual"], rows["accuracy_mean"],
                    yerr=rows["accuracy_std"].fillna(0), marker="o", ms=4, capsize=3, label=label)
    ax.set_xlabel("parameters pruned (%)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title or "Phase shift: accuracy against sparsity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=130)
    return fig
