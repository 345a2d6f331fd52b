"""A design specification: the options of :func:`~granger_prune.design.granger_design`
that a causal criterion holds, as one frozen object.

This module works on plain NumPy arrays and never imports torch.
"""

from dataclasses import dataclass

from .._checks import check_choice
from .._options import OptionSet
from .granger import (FEATURE_SETS, LOSS_CHANGES, RESTRICTED_MODELS, SCALES, STEP_SIZES, check_lags,
                      granger_design, n_design_rows)


@dataclass(frozen=True)
class DesignSpec(OptionSet):
    """How a recorded trajectory becomes the Granger regression ``ΔL ~ Z b + X γ``.

    Parameters
    ----------
    features : {"vanilla", "momentum"}
        ``(Δθ^t)²`` per unit (the papers' default), or ``(Δθ^t)²``, ``(Δθ^{t-1})²``
        and ``Δθ^t·Δθ^{t-1}``, tested and pruned together.
    lags : int >= 0
        Lagged losses in the restricted model ``Z``.
    restricted : {"intercept", "none"}
        Whether ``Z`` holds an intercept.
    scale : {"raw", "layer", "column"}
        Column scaling of ``X``: raw ``(Δθ)²`` (default), one factor per problem,
        or unit-RMS columns (which changes the method).
    loss_change : {"same_batch", "consecutive"}
        ``ΔL`` on the step's own minibatch (default) or between consecutive
        minibatches; the recorder records what this needs.
    step_size : {"ignore", "divide"}
        Fit ``ΔL^t`` on ``(Δθ^t)²`` (default, the papers' design), or
        ``ΔL^t / η_t`` on ``(Δθ^t / η_t)²`` with the recorded learning rates,
        which keeps ``γ_k = -1/η`` constant under a schedule.

    See :mod:`granger_prune.design.granger` for the equations.
    """

    features: str = "vanilla"
    lags: int = 0
    restricted: str = "intercept"
    scale: str = "raw"
    loss_change: str = "same_batch"
    step_size: str = "ignore"

    def __post_init__(self):
        check_choice("features", self.features, tuple(FEATURE_SETS))
        check_lags(self.lags)
        check_choice("restricted", self.restricted, RESTRICTED_MODELS)
        check_choice("scale", self.scale, SCALES)
        check_choice("loss_change", self.loss_change, LOSS_CHANGES)
        check_choice("step_size", self.step_size, STEP_SIZES)

    def build(self, trajectory, tensors=None, *, alive=None, groups=None):
        """The :class:`~granger_prune.design.GrangerDesign` of ``tensors`` of ``trajectory``."""
        return granger_design(trajectory, tensors, features=self.features, lags=self.lags,
                              alive=alive, groups=groups, restricted=self.restricted,
                              scale=self.scale, loss_change=self.loss_change, step_size=self.step_size)

    def n_rows(self, n_steps):
        """Rows ``T`` of the design of ``n_steps`` recorded steps."""
        return n_design_rows(n_steps, self.features, self.lags, self.loss_change)

    @property
    def features_per_parameter(self):
        """Columns of ``X`` per unit of one parameter: 1 for ``"vanilla"``, 3 for ``"momentum"``."""
        return len(FEATURE_SETS[self.features])

    @property
    def n_regressors(self):
        """Columns of the unrestricted regression of one unit: ``Z``'s and the unit's features."""
        return self.lags + (self.restricted == "intercept") + self.features_per_parameter
