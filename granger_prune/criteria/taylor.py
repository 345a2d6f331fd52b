"""First-order Taylor (loss-preservation) pruning: keep the largest ``|θ · ḡ|`` (torch).

Removing parameter ``k`` (setting ``θ_k = 0``) changes the loss by
``-θ_k ∂L/∂θ_k`` to first order, so ``|θ_k ḡ_k|``, with ``ḡ`` the mean gradient
over a few minibatches at the weights being pruned, estimates what pruning it
costs (seed 004's first-order measure; Molchanov et al. 2017 and 2019).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._options import check_number
from ..network.gradients import mean_gradients
from .base import ScoreCriterion


@dataclass(frozen=True)
class Taylor(ScoreCriterion):
    """Keep the units of largest first-order loss change ``|θ · ḡ|``.

    Parameters
    ----------
    scope, granularity
        As for :class:`~granger_prune.criteria.PruningMethod`.
    n_batches : int >= 1
        Minibatches the gradient is averaged over (default 10; fewer when the
        training data has fewer).

    A weight's score is ``|θ_k ḡ_k|``; a filter's is the absolute value of the
    sum over all its members (kernel, bias and BatchNorm entries),
    ``|Σ_{k ∈ filter} θ_k ḡ_k|``, the first-order change of the loss when the
    whole filter is removed, as Molchanov et al. (2019, eq. 4 before squaring)
    define a group's importance; squaring it would not change the ranking.
    """

    n_batches: int = 10

    needs = frozenset({"model"})

    def __post_init__(self):
        super().__post_init__()
        check_number("n_batches", self.n_batches, low=1, integer=True)

    def _select(self, alive, density, inputs):
        gradients, n_used = mean_gradients(inputs.model, inputs.params, inputs.batches,
                                           inputs.loss_fn, self.n_batches)
        change = {n: np.asarray(w, dtype=np.float64) * gradients[n] for n, w in inputs.weights.items()}
        if inputs.groups is None:
            scores = {n: np.abs(c) for n, c in change.items()}
        else:
            scores = np.abs(inputs.groups.sums(change))
        selection = self.keep_scores(scores, alive, density, inputs.groups)
        selection.diagnostics = pd.DataFrame([dict(tensors=",".join(inputs.weights), n_batches=n_used)])
        return selection
