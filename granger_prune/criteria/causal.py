"""Causal pruning: a Granger design specification composed with a causal rule (torch-free)."""

from dataclasses import dataclass

from ..design import DesignSpec
from ..selection.causal import select_causal
from ..selection.causal_rules import CausalRule, Rank, rule_from_dict
from .base import PruningMethod


@dataclass(frozen=True)
class Causal(PruningMethod):
    """Keep the parameters whose changes Granger-cause the loss changes of the round.

    Parameters
    ----------
    scope, granularity
        As for :class:`PruningMethod`.
    design : DesignSpec
        What is regressed: features, lags, restricted model, scale, loss change.
    rule : Rank, Zero, Significance or Stability
        How it is fitted or tested and what is kept, with its penalty; see
        :func:`granger_prune.selection.select_causal`.

    In a study configuration::

        [[methods]]
        name = "causal"
        design = { features = "momentum", lags = 2 }
        rule = { name = "significance", correction = "holm" }
    """

    design: DesignSpec = DesignSpec()
    rule: CausalRule = Rank()

    needs = frozenset({"trajectory"})

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.design, DesignSpec):
            raise ValueError(f"design must be a DesignSpec, got {self.design!r}")
        if not isinstance(self.rule, CausalRule):
            raise ValueError(f"rule must be a causal rule (Rank, Zero, Significance, Stability), "
                             f"got {self.rule!r}")

    @classmethod
    def _option_from_dict(cls, key, table):
        if key == "design":
            return DesignSpec.from_dict(table)
        if key == "rule":
            return rule_from_dict(table)
        return super()._option_from_dict(key, table)

    def _label_parts(self):
        return [self.rule.name]

    @property
    def rule_name(self):
        return self.rule.name

    @property
    def targets_sparsity(self):
        return self.rule.targets_sparsity

    def recorder_options(self):
        return {"loss_change": self.design.loss_change}

    def check_recorded_steps(self, n_steps):
        design = self.design
        n_rows = design.n_rows(n_steps)
        need = self.rule.min_rows(design.n_regressors)
        if n_rows < need:
            raise ValueError(
                f"each round records n_steps={n_steps} steps, {n_rows} design rows with "
                f"loss_change={design.loss_change!r}, features={design.features!r} and "
                f"lags={design.lags}; {self.label} needs at least {need}: raise n_prune "
                "or lower batch_size")

    def _select(self, alive, density, inputs):
        return select_causal(inputs.trajectory, alive, design=self.design, rule=self.rule,
                             density=density, scope=self.scope, weights=inputs.weights,
                             groups=inputs.groups, device=inputs.device)
