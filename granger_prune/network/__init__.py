"""Masks on a live PyTorch model: prunable parameters, filters and layers as groups,
the physically smaller exported model, ShrinkBench's parameter and FLOP counts, mean gradients,
and saving masks and pruned models (torch)."""

from .costs import footprint
from .export import shrink_sequential
from .pruning import MaskEnforcer, prunable_parameters
from .saved import apply_masks, load_masks, load_pruned_model, save_masks, save_pruned_model
from .structure import pruning_units, structured_parameters

__all__ = ["MaskEnforcer", "apply_masks", "footprint", "load_masks", "load_pruned_model",
           "prunable_parameters", "pruning_units", "save_masks", "save_pruned_model", "shrink_sequential",
           "structured_parameters"]
