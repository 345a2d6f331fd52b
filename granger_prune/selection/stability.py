"""Stability selection with complementary pairs of step blocks: lasso selection with a
bound on the expected number of false selections (NumPy or CuPy; never imports torch).

Meinshausen and Bühlmann (2010) fit a base selector on many half-samples and
keep the features selected in at least a fraction ``π`` of them.  Shah and
Samworth (2013) draw the half-samples as complementary pairs ``(A, Ā)``.  The
base selector here takes the first ``q`` features to enter the lasso path of
the half-sample: it walks a geometric grid of ``α`` down from ``α_max``, with
warm starts, until ``q`` coefficients are non-zero, and ranks them by entry,
then by ``|γ|`` at the last ``α``.  With ``d`` features and ``π > 1/2``, the
expected number of false selections ``V`` (non-causal features selected)
obeys

    E[V] <= q² / ((2π - 1) d)

under Meinshausen and Bühlmann's conditions (the non-causal features are
exchangeable, and the base selector is no worse than random guessing), and
Shah and Samworth show that the complementary-pair version satisfies the same
bound (their Theorem 1 bounds the low-selection-probability features without
exchangeability).  Given ``π`` (``threshold``) and a target ``max_false`` for
the bound, ``q = floor(sqrt(max_false (2π - 1) d))``.

Steps are serially dependent, so half-samples are unions of contiguous blocks
of ``block_length`` steps (default ``ceil(T^(1/3))``), not scattered rows: each
half keeps the within-block dependence, and a pair's halves share no step.
The bound assumes what it assumes; ``studies/lasso_vs_ftest`` measures the
realised false selections against it.
"""

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..backend import get_namespace
from ..lasso import lasso_path
from ..lasso.estimator import unit_sd_scale


@dataclass(frozen=True)
class StabilityResult:
    """Result of :func:`stability_selection`.

    Attributes
    ----------
    selected : bool ndarray of shape (d,)
        ``probability >= threshold``.
    probability : ndarray of shape (d,)
        The fraction of half-samples whose base selection holds the feature.
    threshold : float
        ``π``.
    n_selected : int
        ``q``, the features each half-sample's base selector keeps (at most).
    expected_false_bound : float
        ``q² / ((2π - 1) d)``, the bound on the expected false selections.
    n_subsamples : int
        ``2 * n_pairs``.
    block_length : int
    mean_selected : float
        The mean size of the base selections (``q`` unless a path ran out).
    """

    selected: np.ndarray
    probability: np.ndarray
    threshold: float
    n_selected: int
    expected_false_bound: float
    n_subsamples: int
    block_length: int
    mean_selected: float

    def to_frame(self):
        """One row per feature: probability, selected."""
        return pd.DataFrame(dict(probability=self.probability, selected=self.selected))

    def summary(self):
        return (f"Stability selection: {int(self.selected.sum())} of {self.selected.size} features "
                f"selected in >= {self.threshold:g} of {self.n_subsamples} half-samples "
                f"(blocks of {self.block_length} steps, q = {self.n_selected}); "
                f"E[false selections] <= {self.expected_false_bound:.3g}")


def selection_size(n_features, threshold, max_false):
    """``q = floor(sqrt(max_false (2π - 1) d))``, at least 1: the largest ``q`` whose bound
    ``q² / ((2π - 1) d)`` is at most ``max_false``."""
    return max(1, int(math.floor(math.sqrt(max_false * (2.0 * threshold - 1.0) * n_features))))


def complementary_blocks(n_samples, block_length, rng):
    """``(A, Ā)``: a random half of the blocks of ``block_length`` steps and the other half
    (host index arrays, sorted; the last block takes the remainder)."""
    n_blocks = max(2, n_samples // block_length)
    starts = np.arange(n_blocks) * block_length
    stops = np.append(starts[1:], n_samples)
    order = rng.permutation(n_blocks)
    halves = order[:n_blocks // 2], order[n_blocks // 2:]
    return tuple(np.concatenate([np.arange(starts[b], stops[b]) for b in np.sort(half)])
                 for half in halves)


def first_to_enter(path, q):
    """The (at most) ``q`` features first non-zero along ``path`` (a LassoPath), by entry
    index, then by ``|γ|`` at the last fit (host index array)."""
    coefs = path.coefs.tocsr()
    n_features = coefs.shape[0]
    entry = np.full(n_features, np.iinfo(np.int64).max)
    rows, cols = coefs.nonzero()
    np.minimum.at(entry, rows, cols)
    entered = np.flatnonzero(entry < np.iinfo(np.int64).max)
    last = np.abs(path.coef(len(path.alphas) - 1))[entered]
    order = np.lexsort((-last, entry[entered]))
    return entered[order[:q]]


def stability_selection(X, y, *, threshold=0.75, max_false=1.0, n_selected=None, n_pairs=50,
                        block_length=None, fit_intercept=True, standardize=True, n_alphas=50,
                        eps=1e-3, tol=1e-4, seed=0):
    """Stability selection of the columns of ``X`` for ``y`` (see the module docstring).

    Parameters
    ----------
    X : array of shape (T, d)
        The design (NumPy or CuPy, float32 or float64).
    y : array of shape (T,)
    threshold : float in (1/2, 1], default=0.75
        ``π``: keep features selected in at least this fraction of half-samples.
    max_false : float > 0, default=1.0
        The target bound on the expected number of false selections; sets
        ``q`` (ignored when ``n_selected`` is given).
    n_selected : int >= 1, optional
        ``q`` itself.
    n_pairs : int >= 1, default=50
        Complementary pairs (``2 n_pairs`` lasso paths on ``T / 2`` steps).
    block_length : int >= 1, optional
        Steps per block (default ``ceil(T^(1/3))``).
    fit_intercept : bool, default=True
    standardize : bool, default=True
        Penalise the coefficients of the half-sample's unit-variance columns
        (a selection that, like the tests, does not favour large steps); False:
        the raw scale.
    n_alphas, eps, tol
        The grid of each path (``n_alphas`` values from ``α_max`` down to
        ``eps α_max``, stopped once ``q`` features entered) and the solver's
        tolerance (:func:`granger_prune.lasso.lasso_path`).
    seed : int

    Returns
    -------
    StabilityResult
    """
    if not 0.5 < threshold <= 1.0:
        raise ValueError(f"threshold must lie in (0.5, 1], got {threshold!r}")
    n_samples, n_features = X.shape
    if n_selected is None:
        if not max_false > 0:
            raise ValueError(f"max_false must be positive, got {max_false!r}")
        n_selected = selection_size(n_features, threshold, max_false)
    if int(n_selected) < 1:
        raise ValueError(f"n_selected must be a positive integer, got {n_selected!r}")
    q = min(int(n_selected), n_features, n_samples // 2)
    if int(n_pairs) < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    block_length = int(math.ceil(n_samples ** (1.0 / 3.0))) if block_length is None else int(block_length)
    if not 1 <= block_length <= n_samples // 2:
        raise ValueError(f"block_length must lie in [1, T/2] with T={n_samples}, got {block_length}")
    xp = get_namespace(X, y)
    rng = np.random.default_rng(seed)
    counts = np.zeros(n_features)
    sizes = []
    for _ in range(int(n_pairs)):
        for rows in complementary_blocks(n_samples, block_length, rng):
            index = xp.asarray(rows)
            X_half, y_half = X[index], y[index]
            scale = unit_sd_scale(X_half, xp) if standardize else None
            path = lasso_path(X_half, y_half, n_alphas=n_alphas, eps=eps, tol=tol,
                              fit_intercept=fit_intercept, column_scale=scale, max_support=q)
            chosen = first_to_enter(path, q)
            counts[chosen] += 1
            sizes.append(chosen.size)
    n_subsamples = 2 * int(n_pairs)
    probability = counts / n_subsamples
    return StabilityResult(
        selected=probability >= threshold, probability=probability, threshold=float(threshold),
        n_selected=q, expected_false_bound=q * q / ((2.0 * threshold - 1.0) * n_features),
        n_subsamples=n_subsamples, block_length=block_length, mean_selected=float(np.mean(sizes)))

