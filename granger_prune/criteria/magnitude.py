"""Magnitude pruning: keep the largest ``|θ|`` (torch-free)."""

from dataclasses import dataclass

import numpy as np

from .base import ScoreCriterion


@dataclass(frozen=True)
class Magnitude(ScoreCriterion):
    """Keep the parameters of largest ``|θ|``; with filters, L1-norm filter pruning
    (Li et al. 2017: a filter's score is the sum of ``|θ|`` over its kernel, not
    its bias or norm).  Options: ``scope`` and ``granularity``."""

    def unit_scores(self, inputs):
        scores = {n: np.abs(np.asarray(w, dtype=np.float64)) for n, w in inputs.weights.items()}
        return scores if inputs.groups is None else inputs.groups.sums(scores, inputs.groups.kernels)
