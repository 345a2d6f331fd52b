"""Pruning masks: per-tensor boolean arrays (``True`` = the parameter survives).

A *mask set* is a dict mapping tensor names to boolean NumPy arrays of the
tensors' shapes.  This module builds, combines and reports on mask sets; it
works on plain arrays and never imports torch.
"""

import numpy as np
import pandas as pd


def full_masks(shapes):
    """A mask set that keeps everything.

    Parameters
    ----------
    shapes : mapping of str to tuple of int, or to arrays
        Tensor shapes, or arrays (anything with a ``shape``, e.g. parameters)
        whose shapes the masks take.

    Returns
    -------
    dict of str to bool ndarray
    """
    return {name: np.ones(tuple(getattr(shape, "shape", shape)), dtype=bool)
            for name, shape in shapes.items()}


def intersect(masks, other):
    """Keep a parameter only where both mask sets keep it."""
    if set(masks) != set(other):
        raise ValueError(f"mask sets cover different tensors: {sorted(masks)} vs {sorted(other)}")
    return {name: np.logical_and(masks[name], other[name]) for name in masks}


def count_kept(masks):
    """Number of surviving parameters over all tensors."""
    return int(sum(np.count_nonzero(m) for m in masks.values()))


def count_total(masks):
    """Number of parameters over all tensors."""
    return int(sum(m.size for m in masks.values()))


def sparsity(masks):
    """Fraction of pruned parameters over all tensors, in [0, 1]."""
    total = count_total(masks)
    return 1.0 - count_kept(masks) / total if total else 0.0


def sparsity_table(masks):
    """Per-tensor sparsity report.

    Returns
    -------
    pandas.DataFrame
        One row per tensor and a final ``"total"`` row, columns ``tensor``,
        ``size``, ``kept``, ``sparsity`` and ``compression`` (size / kept).
    """
    rows = [(name, m.size, int(np.count_nonzero(m))) for name, m in masks.items()]
    rows.append(("total", count_total(masks), count_kept(masks)))
    table = pd.DataFrame(rows, columns=["tensor", "size", "kept"])
    table["sparsity"] = 1.0 - table["kept"] / table["size"]
    table["compression"] = table["size"] / table["kept"].where(table["kept"] > 0)
    return table


def mask_overlap(masks, other):
    """Jaccard overlap of the surviving sets of two mask sets, in [0, 1]."""
    kept_both = sum(np.count_nonzero(masks[n] & other[n]) for n in masks)
    kept_either = sum(np.count_nonzero(masks[n] | other[n]) for n in masks)
    return kept_both / kept_either if kept_either else 1.0
