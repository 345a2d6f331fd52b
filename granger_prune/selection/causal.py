"""Causal selection: a design specification composed with a causal rule, per problem.

:func:`select_causal` builds, for each problem (one per layer, or one for all
tensors), the Granger design of the alive parameters that a
:class:`~granger_prune.design.DesignSpec` describes, and lets a rule of
:mod:`granger_prune.selection.causal_rules` decide which units survive: as
skglm composes a datafit with a penalty, the design says what is regressed and
the rule how it is fitted or tested and what is kept.

Every rule works on units: single parameters with the vanilla features, or a
parameter's three momentum features, kept or pruned together.  With
weight-shared ``groups`` (:class:`granger_prune.selection.ParameterGroups`) a
unit is a filter or a layer: one column per feature type holding the sum of its
members' features, and the rank rule's density counts units; in a global
ranking every layer keeps its best filter (layers as units are not floored).

This module works on plain NumPy arrays and never imports torch.
"""

import numpy as np
import pandas as pd

from .._progress import progress
from ..design import DesignSpec
from ..placement import running_on, statistics_device, steps_device
from .causal_rules import CausalRule, Problem, Rank
from .keep import check_density, problems
from .result import Selection


def select_causal(trajectory, alive, *, design=DesignSpec(), rule=Rank(), density=None, scope="layer",
                  weights=None, groups=None, device=None):
    """Fit the Granger lasso or test per problem, and keep the causal units.

    Parameters
    ----------
    trajectory : Trajectory
        The recorded trajectory.
    alive : mapping of str to bool ndarray
        Parameters still unpruned, one mask per recorded tensor to select on.
    design : DesignSpec
        Features, lags, restricted model, scale and loss change of the design.
    rule : Rank, Zero, Significance or Stability
        :class:`~granger_prune.selection.Rank` keeps the ``density`` fraction
        with the largest ``|γ_u|`` (ties at zero broken by its
        ``tie_breaker``); :class:`~granger_prune.selection.Zero` keeps
        ``γ_u ≠ 0``; :class:`~granger_prune.selection.Significance` keeps the
        units whose test (OLS, HAC or prewhitened, optionally factor-adjusted)
        rejects at its level after its correction;
        :class:`~granger_prune.selection.Stability` keeps what stability
        selection keeps, with a bound on the expected false selections.  Each
        holds its penalty (``alpha_ratio``, ``alpha`` or ``l1_coeff``, with the
        exact objectives in :class:`~granger_prune.selection.CausalRule`).
    density : float in (0, 1], optional
        Fraction of units (parameters, or the ``groups``) to keep, counting
        already-pruned ones; required by the rank rule, ignored by the others.
    scope : {"layer", "global"}
        One problem (and one multiple-testing family) per layer, or one for all:
        a layer is one tensor, or with ``groups`` the tensors its groups span.
    weights : mapping of str to ndarray, optional
        Current parameter values, for ``Rank(tie_breaker="magnitude")``.
    groups : ParameterGroups, optional
        Weight-shared groups (filters or layers, see
        :func:`granger_prune.network.structure.structured_parameters`): each
        group is one unit whose feature is the sum of its members' features,
        kept or pruned whole.  None: every parameter is a unit.
    device : None, "cpu", "cuda" or "cuda:N"
        Where the lasso fits and the OLS/HAC tests run.  The designs are built
        on the host from a host trajectory; on a CUDA device (with CuPy
        installed) each problem's design is copied there whole when it fits,
        else streamed a block of columns at a time
        (:mod:`granger_prune.placement`).  A
        :class:`~granger_prune.record.DeviceTrajectory` on a GPU sets the
        device itself: its designs are built there and everything runs there.
        Without CuPy a CUDA device warns and everything runs on the host.  The
        ridge fit runs on the host.

    Returns
    -------
    Selection
        ``scores`` holds each parameter's unit coefficient, ``pvalue`` the
        tests' p-values (significance rule).  ``diagnostics`` has one row per
        problem: ``tensors``, ``n_steps``, ``n_units``, ``n_features``,
        ``alpha``, ``alpha_max``, ``lasso_support`` (units), ``kept``
        (parameters), ``kept_units``, ``kept_by_tiebreak`` (units),
        ``dual_gap``, ``n_iter``, for the significance rule ``n_tested``,
        ``n_significant``, ``durbin_watson``, ``ljung_box_pvalue``,
        ``ar_order``, ``hac_lags``, ``n_factors``, ``factor_share``, and for
        the stability rule ``stability_q``, ``stability_threshold``,
        ``expected_false_bound``.
    """
    if not isinstance(design, DesignSpec):
        raise TypeError(f"design must be a DesignSpec, got {design!r}")
    if not isinstance(rule, CausalRule):
        raise TypeError(f"rule must be a causal rule (Rank, Zero, Significance, Stability), "
                        f"got {rule!r}")
    if rule.targets_sparsity:
        if density is None:
            raise ValueError("the rank rule needs density, the fraction of units to keep")
        check_density(density)
    device = statistics_device(steps_device(trajectory) or device)
    masks, scores, pvalue, rows = {}, {}, {}, []
    with running_on(device):  # the current device: where a device store's design is built
        for tensors in progress(problems(list(alive), scope, groups), desc="causal selection",
                                unit="problem"):
            if not any(np.any(alive[n]) for n in tensors):  # the zero rule may empty a layer
                masks.update({n: np.zeros_like(alive[n], dtype=bool) for n in tensors})
                scores.update({n: np.zeros(np.shape(alive[n])) for n in tensors})
                pvalue.update({n: np.ones(np.shape(alive[n])) for n in tensors})
                continue
            problem_design = design.build(trajectory, tensors, alive=alive, groups=groups)
            decision = rule.decide(problem_design, _problem(problem_design, tensors, alive, density,
                                                             weights, groups, rule, device))
            tensor_masks = problem_design.to_tensors(decision.keep, fill=False)
            masks.update(tensor_masks)
            scores.update(problem_design.to_tensors(decision.score))
            if decision.pvalue is not None:
                pvalue.update(problem_design.to_tensors(decision.pvalue, fill=1.0))
            row = dict(decision.row)
            kept_by_tiebreak = row.pop("kept_by_tiebreak")
            rows.append(dict(
                tensors=",".join(tensors), n_steps=problem_design.n_steps, n_units=problem_design.n_units,
                n_features=problem_design.n_features, **row,
                kept=sum(int(np.count_nonzero(m)) for m in tensor_masks.values()),
                kept_units=int(decision.keep.sum()), kept_by_tiebreak=kept_by_tiebreak,
            ))
    return Selection(masks=masks, diagnostics=pd.DataFrame(rows), scores=scores,
                     pvalue=pvalue if rule.tests else None)


def _problem(design, tensors, alive, density, weights, groups, rule, device):
    """What the rule sees of one problem: its budget, floors, weights, groups and device."""
    if not rule.targets_sparsity:
        return Problem(tensors, weights=weights, groups=groups, device=device)
    if groups is None:
        n_keep = int(round(sum(np.size(alive[n]) for n in tensors) * density))
        layer_units = ()
    else:  # of the groups counting pruned ones; a layer keeps at least one
        n_keep = max(1, int(round(groups.present(tensors).size * density)))
        layer_units = tuple(
            np.unique(np.concatenate([design.unit_map[n][design.unit_map[n] >= 0] for n in layer]))
            for layer in groups.floored_layers(tensors))
    return Problem(tensors, n_keep=n_keep, layer_units=layer_units, weights=weights, groups=groups,
                   device=device)
