"""granger_prune: neural-network pruning as Granger-causal feature selection.

Record an SGD trajectory, regress each step's loss change on the squared
parameter changes, keep the parameters whose changes explain the loss (lasso or
significance tests), prune the rest, rewind and retrain.

The pipeline's stages are subpackages: ``record`` → ``design`` → ``lasso`` and
``stats`` → ``selection`` and ``criteria`` → ``network`` → ``training`` →
``study`` (with the models and datasets in ``zoo``).  The statistical core
(``design``, ``lasso``, ``stats``, ``selection``) works on NumPy arrays and
never imports torch; the names that need torch are imported lazily on first
use, and CuPy is never imported here.
"""

import importlib

from . import criteria
from .criteria import Causal, Magnitude, PruningMethod, Random, RoundInputs, criterion_from_dict
from .design import DesignSpec, GrangerDesign, granger_design, momentum_design, vanilla_design
from .exceptions import ConvergenceWarning, GrangerPruneWarning, SupportLimitWarning
from .lasso import CausalLasso, alpha_max
from .selection import (ParameterGroups, Rank, Selection, Significance, Stability, Zero,
                        density_schedule, keep_highest, select_causal, sparsity, sparsity_table)

__version__ = "0.1.0"

_LAZY = {
    "TrajectoryRecorder": "record",
    "InMemoryTrajectory": "record",
    "DiskTrajectory": "record",
    "DeviceTrajectory": "record",
    "Trajectory": "record",
    "MaskEnforcer": "network",
    "prunable_parameters": "network",
    "structured_parameters": "network",
    "shrink_sequential": "network",
    "footprint": "network",
    "apply_masks": "network",
    "load_masks": "network",
    "load_pruned_model": "network",
    "Schedule": "training",
    "SGDConfig": "training",
    "OptimizerSpec": "training",
    "TrainingConfig": "training",
    "DataLoaders": "training",
    "Objective": "training",
    "pretrain": "training",
    "prune_and_retrain": "training",
    "StudyConfig": "study",
    "run_study": "study",
    "MLP": "zoo",
    "SmallCNN": "zoo",
    "load_dataset": "zoo",
}

__all__ = [
    "Causal", "CausalLasso", "ConvergenceWarning", "DesignSpec", "GrangerDesign", "GrangerPruneWarning",
    "Magnitude", "ParameterGroups", "PruningMethod", "Random", "Rank", "RoundInputs", "Selection",
    "Significance", "Stability", "SupportLimitWarning", "Zero", "alpha_max", "criterion_from_dict",
    "density_schedule", "granger_design", "keep_highest", "momentum_design", "select_causal",
    "sparsity", "sparsity_table", "vanilla_design", *_LAZY,
    *(name for name in criteria.class_names() if name not in globals()),
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    if name in criteria.class_names():  # every criterion, imported on first use
        return getattr(criteria, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
