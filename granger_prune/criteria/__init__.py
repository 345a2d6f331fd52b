"""Pruning criteria: one class per method in one module, registered by name.

A criterion is a frozen dataclass of its own options (see
:class:`~granger_prune.criteria.base.PruningMethod`); a study's ``[[methods]]``
table names it by its registry name.  The registry holds where each lives, so
a criterion that needs torch (gradients) is imported only when it is used.

Adding a criterion: one module here, one line in :data:`CRITERIA`, its tests.
"""

import importlib

from .._checks import check_choice
from .base import NEEDS, PruningMethod, RoundInputs, ScoreCriterion
from .causal import Causal
from .magnitude import Magnitude
from .random import Random

#: Registry name → ``module:Class`` of every criterion.
CRITERIA = {
    "causal": "causal:Causal",
    "magnitude": "magnitude:Magnitude",
    "random": "random:Random",
    "taylor": "taylor:Taylor",
}


def class_names():
    """The class names of the registered criteria (what ``granger_prune`` exports)."""
    return [entry.partition(":")[2] for entry in CRITERIA.values()]


def criterion_class(name):
    """The class of the criterion registered as ``name``."""
    check_choice("method name", name, tuple(CRITERIA))
    module, _, cls = CRITERIA[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __name__), cls)


def __getattr__(name):
    """Every registered criterion by its class name, imported on first use."""
    by_class = dict(zip(class_names(), CRITERIA))
    if name in by_class:
        return criterion_class(by_class[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def criterion_from_dict(table):
    """The criterion a study's ``[[methods]]`` table configures, e.g.
    ``{"name": "causal", "scope": "layer", "rule": {"name": "zero"}}``; unknown
    keys are errors that name them."""
    if not isinstance(table, dict) or "name" not in table:
        raise ValueError(f"a method table needs a name, one of {tuple(CRITERIA)}; got {table!r}")
    return criterion_class(table["name"]).from_dict(table)


__all__ = ["CRITERIA", "Causal", "Magnitude", "NEEDS", "PruningMethod", "Random", "RoundInputs",
           "ScoreCriterion", "class_names", "criterion_class", "criterion_from_dict"]
