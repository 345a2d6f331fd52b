"""Random pruning: uniform scores drawn from the run's generator (torch-free)."""

from dataclasses import dataclass

import numpy as np

from .base import ScoreCriterion


@dataclass(frozen=True)
class Random(ScoreCriterion):
    """Keep a uniformly random subset: one draw per parameter, or per filter with
    groups, from ``inputs.rng``.  Options: ``scope`` and ``granularity``."""

    def unit_scores(self, inputs):
        rng = np.random.default_rng(inputs.rng)
        if inputs.groups is not None:
            return rng.random(inputs.groups.n_groups)
        return {n: rng.random(np.shape(w)) for n, w in inputs.weights.items()}
