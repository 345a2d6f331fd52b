"""Keep rules on scores: the densities of Algorithm 1's rounds and the top-scoring
parameters per layer or over all layers.

Every rule returns a new mask set (see :mod:`granger_prune.selection.masks`)
that is a subset of the ``alive`` mask set it was given: pruned parameters
never revive.  Ties are broken by position, so a rule is deterministic.

This module works on plain NumPy arrays and never imports torch.
"""

import numpy as np

from .._checks import check_choice
from .grouping import top_units

SCOPES = ("layer", "global")


def check_sparsity(sparsity, name="sparsity"):
    """Return ``sparsity`` as a float after checking it lies in [0, 1)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {sparsity!r}")
    return value


def check_density(density):
    """``ValueError`` unless ``density`` lies in (0, 1]."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must lie in (0, 1], got {density!r}")
    return density


def density_schedule(sparsity, n_iter):
    """Fraction of units (parameters, or filters) kept after each of ``n_iter`` pruning rounds.

    Each round removes the same fraction ``p = 1 - (1 - sparsity)**(1 / n_iter)``
    of the parameters still alive, so the last round reaches ``sparsity``.

    Returns
    -------
    ndarray of shape (n_iter,)
    """
    sparsity = check_sparsity(sparsity)
    if int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    rounds = np.arange(1, int(n_iter) + 1)
    return (1.0 - sparsity) ** (rounds / n_iter)


def problems(names, scope, groups=None):
    """The tensors of each separately ranked or fitted problem: one per layer or one for all.

    Without weight-shared ``groups`` a layer is one tensor; with them it is the
    tensors whose groups span it (a weight, its bias and norm)."""
    check_choice("scope", scope, SCOPES)
    if scope == "global":
        return [list(names)]
    return [[n] for n in names] if groups is None else groups.layers(names)


def keep_highest(scores, alive, density, scope="layer"):
    """Keep the alive parameters with the highest scores.

    Parameters
    ----------
    scores : mapping of str to ndarray
        A score per parameter, shaped like its tensor; higher means keep.
    alive : mapping of str to bool ndarray
        The parameters still unpruned.
    density : float in (0, 1]
        Fraction of each group's parameters (counting pruned ones) to keep.
    scope : {"layer", "global"}
        Groups are single tensors, or all tensors together.

    Returns
    -------
    dict of str to bool ndarray
        The new mask set; ``keep & ~alive`` is empty.
    """
    check_density(density)
    masks = {}
    for group in problems(list(alive), scope):
        flat_alive = np.concatenate([np.asarray(alive[n], dtype=bool).reshape(-1) for n in group])
        flat_scores = np.concatenate([np.asarray(scores[n], dtype=np.float64).reshape(-1) for n in group])
        keep = np.zeros(flat_alive.size, dtype=bool)
        keep[top_units(flat_scores, np.flatnonzero(flat_alive), int(round(flat_alive.size * density)))] = True
        start = 0
        for n in group:
            size = np.asarray(alive[n]).size
            masks[n] = keep[start:start + size].reshape(np.shape(alive[n]))
            start += size
    return masks
