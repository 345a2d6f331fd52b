"""The one result type of every selection (torch-free)."""

from dataclasses import dataclass, field
from typing import Optional

import pandas as pd


@dataclass
class Selection:
    """The parameters that survive a selection, and what it saw.

    Attributes
    ----------
    masks : dict of str to bool ndarray
        The surviving parameters (``True`` keeps), a subset of the ``alive``
        masks the selection was given.
    diagnostics : pandas.DataFrame
        One row per fitted problem or scored layer (empty when a criterion has
        nothing to report); the causal criterion's columns are listed in
        :func:`granger_prune.selection.select_causal`.
    scores : dict of str to ndarray, optional
        Per parameter, the score it was ranked or kept by, shaped like its
        tensor: ``|θ|`` (magnitude), ``|θ·ḡ|`` (Taylor), its unit's lasso
        coefficient (causal: ``γ_u`` for one-column units, ``||γ_u||``
        otherwise; 0 for parameters pruned before, and for the significance
        rule without a split, which fits no lasso).
    pvalue : dict of str to ndarray, optional
        Per parameter, its unit's uncorrected F-test p-value (significance rule;
        1 for untested or pruned parameters); None otherwise.
    """

    masks: dict
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)
    scores: Optional[dict] = None
    pvalue: Optional[dict] = None
