"""The interface of every pruning criterion, and what a round gives it.

A criterion is a frozen dataclass of its own options deriving from
:class:`PruningMethod`.  It declares in ``needs`` what a round of Algorithm 1
must give it, among :data:`NEEDS`: ``"trajectory"`` (the round's recorded
steps), ``"model"`` (the live model, its parameters and minibatches of the
training data, for gradient scores), or nothing; and its
:meth:`PruningMethod.select` returns a :class:`~granger_prune.selection.Selection`.
Its label for tables and legends is its name (the class name in snake case),
its unit when not single weights, the options that differ from their
defaults and its scope, e.g. ``"causal-rank(alpha_ratio=0.01)/layer"``.

This module never imports torch: the criteria that need gradients do their
torch work in their own modules, on the objects a round gives them.
"""

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional

import numpy as np

from .._checks import check_choice
from .._options import OptionSet, format_value
from ..selection.grouping import GRANULARITIES, keep_highest_groups
from ..selection.keep import SCOPES, check_density, keep_highest
from ..selection.result import Selection

#: What a round of Algorithm 1 can give a criterion, and the fields of
#: :class:`RoundInputs` each need fills.
NEEDS = {"trajectory": ("trajectory",), "model": ("model", "params", "batches", "loss_fn")}


@dataclass
class RoundInputs:
    """What one pruning round gives a criterion.

    Attributes
    ----------
    weights : dict of str to ndarray
        Current values of the parameters selected on (NumPy copies).
    groups : ParameterGroups or None
        The filters or layers, exactly when the criterion's granularity is not
        ``"weight"``.
    rng : numpy.random.Generator or int or None
        The run's randomness (random pruning).
    trajectory : Trajectory, optional
        The round's recorded steps (``"trajectory"`` in ``needs``).
    model : torch.nn.Module, optional
        The live model at the weights being pruned (``"model"`` in ``needs``).
    params : dict of str to torch.nn.Parameter, optional
        The model's parameters selected on, by name (as ``weights``).
    batches : iterable of (inputs, targets), optional
        Minibatches of the training data, for gradient scores.
    loss_fn : callable(outputs, targets) -> scalar tensor, optional
        The training loss.
    device : str, optional
        The device the model trained on (``"cpu"``, ``"cuda:0"``); a criterion's
        statistics may run there (:func:`granger_prune.select_causal`).
    """

    weights: dict
    groups: Optional[Any] = None
    rng: Any = None
    trajectory: Optional[Any] = None
    model: Optional[Any] = None
    params: Optional[dict] = None
    batches: Optional[Iterable] = None
    loss_fn: Optional[Callable] = None
    device: Optional[str] = None


@dataclass(frozen=True)
class PruningMethod(OptionSet):
    """Base of the pruning criteria: which parameters survive a round of Algorithm 1.

    Parameters
    ----------
    scope : {"layer", "global"}
        Rank per layer (the papers' causal rule) or across all layers.
    granularity : {"weight", "filter", "layer"}
        The unit kept or pruned: single weights of the Linear/Conv layers
        (default), filters (an output channel with its bias and BatchNorm
        channel; structured pruning) or whole layers (``scope="global"`` only).
        With filters or layers the sparsity of the rank rules is the fraction
        of units pruned, and every layer keeps at least one filter, in a global
        ranking too (the best filter of each layer is kept first; layers as
        units are not floored); see :mod:`granger_prune.network.structure`.
        Removing whole layers disconnects a network without skip connections
        (the package's MLP and CNN): layer units serve to ask which layers
        matter more than to prune them.
    """

    scope: str = "layer"
    granularity: str = "weight"

    #: What a round must give this criterion, a subset of :data:`NEEDS`.
    needs = frozenset()

    def __post_init__(self):
        if type(self) is PruningMethod:
            raise TypeError("PruningMethod is the base of the criteria: use one of "
                            "granger_prune.criteria.CRITERIA, e.g. Causal() or Magnitude()")
        check_choice("scope", self.scope, SCOPES)
        check_choice("granularity", self.granularity, GRANULARITIES)
        if self.granularity == "layer" and self.scope == "layer":
            raise ValueError("granularity='layer' makes each layer one unit: rank the layers "
                             "against each other with scope='global'")

    @property
    def label(self):
        """Short name for tables and legends: ``name[-rule][-unit][(changed options)]/scope``,
        e.g. ``"magnitude-filter/layer"`` or ``"causal-significance(q=0.01)/layer"``."""
        head = "-".join([self.name, *self._label_parts()])
        unit = "" if self.granularity == "weight" else f"-{self.granularity}"
        changed = ", ".join(f"{key}={format_value(value)}"
                            for key, value in self.changed_options(exclude=("scope", "granularity")))
        return f"{head}{unit}{f'({changed})' if changed else ''}/{self.scope}"

    def _label_parts(self):
        """Words after the name in the label (the causal rule's name)."""
        return []

    @property
    def rule_name(self):
        """The keep rule, as results tables name it: ``"rank"`` keeps a target fraction."""
        return "rank"

    @property
    def targets_sparsity(self):
        """Whether each round keeps a target fraction (rank rules) rather than
        what the data say (the causal zero and significance rules)."""
        return True

    def recorder_options(self):
        """Keyword options of the trajectory recorder (``"trajectory"`` in ``needs``)."""
        return {}

    def check_recorded_steps(self, n_steps):
        """``ValueError`` before training when rounds of ``n_steps`` steps cannot give
        this criterion what it needs."""

    def select(self, alive, density, inputs):
        """Survivors of one round.

        Parameters
        ----------
        alive : mapping of str to bool ndarray
            Parameters still unpruned.
        density : float in (0, 1] or None
            Fraction of units to keep after this round, counting pruned ones
            (rank rules; the others take None).
        inputs : RoundInputs
            What the round gives: everything in ``needs``.

        Returns
        -------
        Selection
        """
        if (inputs.groups is None) != (self.granularity == "weight"):
            raise ValueError(f"{self.label} selects {self.granularity}s: pass groups exactly "
                             "when granularity is not 'weight'")
        missing = [field for need in sorted(self.needs) for field in NEEDS[need]
                   if getattr(inputs, field) is None]
        if missing:
            raise ValueError(f"{self.label} needs {missing} from the round")
        return self._select(alive, density, inputs)

    def _select(self, alive, density, inputs):
        raise NotImplementedError


@dataclass(frozen=True)
class ScoreCriterion(PruningMethod):
    """A criterion that keeps the units with the highest scores (magnitude, random, Taylor)."""

    def unit_scores(self, inputs):
        """The scores of a round: per parameter (a dict shaped like ``inputs.weights``)
        without groups, else one per group id (ndarray of shape (n_groups,))."""
        raise NotImplementedError

    def _select(self, alive, density, inputs):
        return self.keep_scores(self.unit_scores(inputs), alive, density, inputs.groups)

    def keep_scores(self, scores, alive, density, groups=None):
        """The :class:`~granger_prune.selection.Selection` keeping the highest ``scores``
        (per parameter without ``groups``, per group id with them) per ``scope``."""
        check_density(density)
        if groups is None:
            return Selection(masks=keep_highest(scores, alive, density, self.scope), scores=scores)
        masks = keep_highest_groups(scores, alive, groups, density, self.scope)
        return Selection(masks=masks, scores={n: np.asarray(scores)[groups[n]] for n in groups})
