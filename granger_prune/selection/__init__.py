"""Selection: keep rules, the causal rules on a Granger design, and mask sets.

Works on NumPy arrays and never imports torch.
"""

from .grouping import ParameterGroups
from .masks import full_masks, sparsity, sparsity_table
from .rules import PruningMethod, density_schedule, keep_highest, select_causal

__all__ = ["ParameterGroups", "PruningMethod", "density_schedule", "full_masks", "keep_highest",
           "select_causal", "sparsity", "sparsity_table"]
