"""Selection: keep rules on scores, the causal rules on a Granger design, mask sets,
and the one result type of every selection.

Works on NumPy arrays and never imports torch.
"""

from .causal import select_causal
from .causal_rules import RULES, CausalRule, Rank, Significance, Stability, Zero
from .grouping import ParameterGroups
from .keep import check_sparsity, density_schedule, keep_highest
from .masks import full_masks, sparsity, sparsity_table
from .result import Selection
from .stability import StabilityResult, stability_selection

__all__ = ["RULES", "CausalRule", "ParameterGroups", "Rank", "Selection", "Significance", "Stability",
           "StabilityResult", "Zero",
           "check_sparsity", "density_schedule", "full_masks", "keep_highest", "select_causal",
           "sparsity", "sparsity_table", "stability_selection"]
