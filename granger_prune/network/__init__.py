"""Masks on a live PyTorch model: prunable parameters, filters and layers as groups,
the physically smaller exported model, and ShrinkBench's parameter and FLOP counts (torch)."""

from .costs import footprint
from .export import shrink_sequential
from .pruning import MaskEnforcer, prunable_parameters
from .structure import pruning_units, structured_parameters

__all__ = ["MaskEnforcer", "footprint", "prunable_parameters", "pruning_units", "shrink_sequential",
           "structured_parameters"]
