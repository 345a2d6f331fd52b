"""Designs: from a recorded trajectory to the Granger regression ``ΔL ~ Z b + X γ``.

The vanilla and momentum feature sets, lagged losses in the restricted model,
weight-shared groups (filters, layers) as units.  NumPy only; never imports torch.
"""

from .granger import (FEATURE_SETS, LOSS_CHANGES, MIN_ROWS, RESTRICTED_MODELS, SCALES, GrangerDesign,
                      check_lags, granger_design, momentum_design, n_design_rows, vanilla_design)
from .spec import DesignSpec

__all__ = ["FEATURE_SETS", "LOSS_CHANGES", "MIN_ROWS", "RESTRICTED_MODELS", "SCALES", "DesignSpec", "GrangerDesign",
           "check_lags", "granger_design", "momentum_design", "n_design_rows", "vanilla_design"]
