"""Selection rules: from scores or a Granger fit to the parameters that survive.

Every rule returns a new mask set (see :mod:`granger_prune.selection.masks`) that is a
subset of the ``alive`` mask set it was given: pruned parameters never revive.

Rules
-----
* :func:`keep_highest`: keep the parameters with the highest scores, per layer
  (each tensor keeps ``round(size * density)``) or globally (all tensors together
  keep ``round(total * density)``).  Ties are broken by position, so a rule is
  deterministic.  Magnitude and random pruning are this rule on ``|θ|`` and on
  uniform draws.
* :func:`select_causal` with ``rule="zero"`` (seed 000): fit the lasso at a given
  α and keep the parameters with ``γ_k ≠ 0``.  A lasso with T rows keeps at most
  T parameters of each fitted problem; a :class:`SupportLimitWarning` says so
  when that bound binds.
* :func:`select_causal` with ``rule="rank"`` (seed 001): prune the fraction of
  parameters with the smallest ``|γ_k|``.  A lasso leaves all but at most T
  coefficients at exactly zero, so the order among those is set by a named
  tie-breaker (``"marginal"``: ``|x_kᵀ ỹ| / T`` with ``ỹ`` the loss change,
  centred when the restricted model has an intercept, i.e. the covariance of the
  feature with the loss change, which ranks like the authors' early-stopped SGD
  fit; or ``"magnitude"``: ``|θ_k|``).  The diagnostics report how many of the
  kept parameters the tie-breaker chose.
* :func:`select_causal` with ``rule="significance"`` (this package's own): an
  F-test of the restricted against the unrestricted regression for every unit
  (:func:`granger_prune.stats.granger_f_tests`); keep the units significant at
  level ``q`` after the multiple-testing ``correction`` (BH by default), over
  each layer's units or all units (``scope="global"``).  With ``split=s`` the
  first fraction ``s`` of the steps screens candidates by the lasso and only
  those are tested, on the remaining steps, so the p-values are not computed on
  the data that selected them.  The p-values assume serially uncorrelated
  residuals: the diagnostics carry the Durbin–Watson statistic.

Every rule works on units: single parameters with the vanilla features, or a
parameter's three momentum features, kept or pruned together; a multi-column
unit's lasso score is the Euclidean norm of its coefficients.  With weight-shared
``groups`` (:class:`granger_prune.selection.grouping.ParameterGroups`) a unit is a filter
or a layer: one column per feature type holding the sum of its members'
features, and the rank rule's density counts units.  The baselines follow:
``magnitude`` becomes L1-norm filter pruning (Li et al. 2017) and ``random``
draws one score per filter.

This module works on plain NumPy arrays and never imports torch.
"""

import inspect
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._checks import check_choice
from ..design import (FEATURE_SETS, LOSS_CHANGES, MIN_ROWS, RESTRICTED_MODELS, SCALES, check_lags,
                      granger_design, n_design_rows)
from ..exceptions import SupportLimitWarning
from .grouping import GRANULARITIES, keep_highest_groups, top_units, top_units_with_layer_floor
from ..lasso import CausalLasso, alpha_max
from ..stats import METHODS as CORRECTIONS
from ..stats import adjust_pvalues, granger_f_tests

SCOPES = ("layer", "global")
CAUSAL_RULES = ("rank", "zero", "significance")
#: Rules that keep what the data say, not a target fraction.
SELF_SIZING_RULES = ("zero", "significance")
TIE_BREAKERS = ("marginal", "magnitude")
METHODS = ("causal", "magnitude", "random")


def check_sparsity(sparsity, name="sparsity"):
    """Return ``sparsity`` as a float after checking it lies in [0, 1)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {sparsity!r}")
    return value


def density_schedule(sparsity, n_iter):
    """Fraction of units (parameters, or filters) kept after each of ``n_iter`` pruning rounds.

    Each round removes the same fraction ``p = 1 - (1 - sparsity)**(1 / n_iter)``
    of the parameters still alive, so the last round reaches ``sparsity``.

    Returns
    -------
    ndarray of shape (n_iter,)
    """
    sparsity = check_sparsity(sparsity)
    if int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
    rounds = np.arange(1, int(n_iter) + 1)
    return (1.0 - sparsity) ** (rounds / n_iter)


def check_causal_options(options):
    """Validate keyword options of :func:`select_causal`; ``ValueError`` names the bad one.

    Parameters
    ----------
    options : mapping of str to object
        Any subset of :data:`CAUSAL_DEFAULTS`; the missing ones take their defaults.
    """
    unknown = sorted(set(options) - set(CAUSAL_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown causal option(s) {unknown}; allowed: {list(CAUSAL_DEFAULTS)}")
    o = {**CAUSAL_DEFAULTS, **options}
    check_choice("rule", o["rule"], CAUSAL_RULES)
    check_choice("tie_breaker", o["tie_breaker"], TIE_BREAKERS)
    check_choice("restricted", o["restricted"], RESTRICTED_MODELS)
    check_choice("scale", o["scale"], SCALES)
    check_choice("loss_change", o["loss_change"], LOSS_CHANGES)
    check_choice("features", o["features"], tuple(FEATURE_SETS))
    check_choice("correction", o["correction"], CORRECTIONS)
    check_lags(o["lags"])
    if not isinstance(o["q"], (int, float)) or not 0 < o["q"] < 1:
        raise ValueError(f"q must lie in (0, 1), got {o['q']!r}")
    if o["split"] is not None and (not isinstance(o["split"], (int, float)) or not 0 < o["split"] < 1):
        raise ValueError(f"split must be None or lie in (0, 1), got {o['split']!r}")
    alpha, alpha_ratio, tol, max_iter = o["alpha"], o["alpha_ratio"], o["tol"], o["max_iter"]
    if alpha is not None and o["l1_coeff"] is not None:
        raise ValueError(f"give at most one of alpha and l1_coeff, got alpha={alpha!r} and "
                         f"l1_coeff={o['l1_coeff']!r}")
    if o["l1_coeff"] is not None:
        if not isinstance(o["l1_coeff"], (int, float)) or isinstance(o["l1_coeff"], bool) \
                or not o["l1_coeff"] >= 0:
            raise ValueError(f"l1_coeff must be a non-negative number, got {o['l1_coeff']!r}")
    elif alpha is None:
        if not isinstance(alpha_ratio, (int, float)) or not 0 < alpha_ratio <= 1:
            raise ValueError(f"alpha_ratio must lie in (0, 1], got {alpha_ratio!r}")
    elif not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
    if not isinstance(tol, (int, float)) or not tol > 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")


def _design_units_of_layers(design, names, groups):
    """The design's units in each floored layer of ``names`` (the floor of one filter
    per layer inside a global ranking, :meth:`ParameterGroups.floored_layers`)."""
    return [np.unique(np.concatenate([design.unit_map[n][design.unit_map[n] >= 0] for n in layer]))
            for layer in groups.floored_layers(names)]


def _problems(names, scope, groups=None):
    """The tensors of each separately fitted problem: one per layer or one for all.

    Without weight-shared ``groups`` a layer is one tensor; with them it is the
    tensors whose groups span it (a weight, its bias and norm)."""
    check_choice("scope", scope, SCOPES)
    if scope == "global":
        return [list(names)]
    return [[n] for n in names] if groups is None else groups.layers(names)


def keep_highest(scores, alive, density, scope="layer"):
    """Keep the alive parameters with the highest scores.

    Parameters
    ----------
    scores : mapping of str to ndarray
        A score per parameter, shaped like its tensor; higher means keep.
    alive : mapping of str to bool ndarray
        The parameters still unpruned.
    density : float in (0, 1]
        Fraction of each group's parameters (counting pruned ones) to keep.
    scope : {"layer", "global"}
        Groups are single tensors, or all tensors together.

    Returns
    -------
    dict of str to bool ndarray
        The new mask set; ``keep & ~alive`` is empty.
    """
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must lie in (0, 1], got {density!r}")
    masks = {}
    for group in _problems(list(alive), scope):
        flat_alive = np.concatenate([np.asarray(alive[n], dtype=bool).reshape(-1) for n in group])
        flat_scores = np.concatenate([np.asarray(scores[n], dtype=np.float64).reshape(-1) for n in group])
        keep = np.zeros(flat_alive.size, dtype=bool)
        keep[top_units(flat_scores, np.flatnonzero(flat_alive), int(round(flat_alive.size * density)))] = True
        start = 0
        for n in group:
            size = np.asarray(alive[n]).size
            masks[n] = keep[start:start + size].reshape(np.shape(alive[n]))
            start += size
    return masks


def magnitude_scores(weights):
    """``|θ|`` per parameter (magnitude pruning)."""
    return {n: np.abs(np.asarray(w, dtype=np.float64)) for n, w in weights.items()}


def random_scores(weights, rng):
    """Uniform random scores (random pruning), drawn from ``rng``."""
    rng = np.random.default_rng(rng)
    return {n: rng.random(np.shape(w)) for n, w in weights.items()}


@dataclass
class CausalSelection:
    """Outcome of :func:`select_causal`.

    Attributes
    ----------
    masks : dict of str to bool ndarray
        The surviving parameters.
    coef : dict of str to ndarray
        Per parameter, its unit's lasso coefficient on the design's scale:
        ``γ_u`` for one-column units (vanilla features), the norm ``||γ_u||``
        of the unit's coefficients otherwise; 0 for parameters pruned before
        this round.  The significance rule without
        ``split`` fits no lasso and reports the F statistics' p-values in
        ``pvalue`` instead.
    pvalue : dict of str to ndarray or None
        Per parameter, its unit's (uncorrected) F-test p-value (significance
        rule; 1 for untested or pruned parameters); None for the lasso rules.
    diagnostics : pandas.DataFrame
        One row per fitted problem: ``tensors``, ``n_steps``, ``n_units``,
        ``n_features``, ``alpha``, ``alpha_max``, ``lasso_support`` (units),
        ``kept`` (parameters), ``kept_units``, ``kept_by_tiebreak`` (units),
        ``dual_gap``, ``n_iter``, and for the
        significance rule ``n_tested``, ``n_significant``, ``durbin_watson``.
    """

    masks: dict
    coef: dict
    diagnostics: pd.DataFrame
    pvalue: dict = None


def select_causal(trajectory, alive, *, rule="rank", density=None, scope="layer",
                  alpha_ratio=0.05, alpha=None, l1_coeff=None, tie_breaker="marginal", weights=None,
                  features="vanilla", lags=0, restricted="intercept", scale="raw",
                  loss_change="same_batch", q=0.05, correction="fdr_bh", split=None,
                  tol=1e-4, max_iter=1000, groups=None):
    """Causal pruning: fit the Granger lasso or test, and keep the causal parameters.

    For each problem (one per layer with ``scope="layer"``, one for all tensors
    with ``scope="global"``) the design of the alive parameters is built by
    :func:`granger_prune.design.granger_design` and, for the lasso rules, the lasso

        (1 / (2 * T)) * ||ΔL - Z b - X γ||_2^2 + alpha * ||γ||_1

    is fitted (``Z``: intercept and lagged losses, unpenalised; ``X = (Δθ)²``
    for the vanilla features).

    Parameters
    ----------
    trajectory : Trajectory
        The recorded trajectory.
    alive : mapping of str to bool ndarray
        Parameters still unpruned, one mask per recorded tensor to select on.
    rule : {"rank", "zero", "significance"}
        ``"rank"`` keeps the ``density`` fraction with the largest ``||γ_u||``
        (ties at zero broken by ``tie_breaker``); ``"zero"`` keeps ``γ_u ≠ 0``;
        ``"significance"`` keeps the units whose F-test rejects at level ``q``
        after ``correction``.
    density : float in (0, 1], optional
        Fraction of units (parameters, or the ``groups``) to keep, counting
        already-pruned ones; required by the rank rule, ignored by the others.
    scope : {"layer", "global"}
        One problem (and one multiple-testing family) per layer, or one for all:
        a layer is one tensor, or with ``groups`` the tensors its groups span.
    alpha_ratio : float
        ``alpha = alpha_ratio * alpha_max`` of each problem (``alpha_max`` the
        smallest ``alpha`` giving ``γ = 0``); ignored when ``alpha`` or
        ``l1_coeff`` is given.
    alpha : float, optional
        The absolute penalty of the objective above, on the design's scale
        (raw ``(Δθ)²`` with ``scale="raw"``).
    l1_coeff : float, optional
        The papers' penalty (seeds 000/001), whose objective is
        ``Σ_t (ΔL^t - Z_t b - X_t γ)² + l1_coeff * ||γ||_1``: the same minimiser
        as the objective above at ``alpha = l1_coeff / (2 * T)``, with ``T`` the
        problem's design rows (``T = 150``, ``l1_coeff = 1e-8`` is
        ``alpha = 3.3e-11``).  At most one of ``alpha`` and ``l1_coeff``.
    tie_breaker : {"marginal", "magnitude"}
        Order among equal ``||γ_u||`` (rank rule).  ``"magnitude"`` needs ``weights``.
    weights : mapping of str to ndarray, optional
        Current parameter values, for ``tie_breaker="magnitude"``.
    features, lags, restricted, scale, loss_change
        Passed to :func:`granger_prune.design.granger_design`.
    q : float in (0, 1)
        Level of the significance rule (FDR for BH/BY, FWER for Holm/Bonferroni).
    correction : {"fdr_bh", "fdr_by", "holm", "bonferroni"}
        Multiple-testing correction of the significance rule.
    split : float in (0, 1), optional
        Significance rule: screen with the lasso (at ``alpha_ratio``) on the
        first ``split`` fraction of the steps and test only its support on the
        rest.  None tests every unit on all steps.
    tol, max_iter
        Passed to :class:`granger_prune.CausalLasso`.
    groups : ParameterGroups, optional
        Weight-shared groups (filters or layers, see
        :func:`granger_prune.network.structure.structured_parameters`): each group is
        one unit whose feature is the sum of its members' features, kept or
        pruned whole.  With ``scope="layer"`` a problem is the tensors of one
        layer (weight, bias and norm), and ``density`` is the fraction of its
        groups to keep.  None: every parameter is a unit.

    Returns
    -------
    CausalSelection
    """
    options = dict(rule=rule, alpha_ratio=alpha_ratio, alpha=alpha, l1_coeff=l1_coeff,
                   tie_breaker=tie_breaker,
                   features=features, lags=lags, restricted=restricted, scale=scale,
                   loss_change=loss_change, q=q, correction=correction, split=split, tol=tol,
                   max_iter=max_iter)
    check_causal_options(options)
    if tie_breaker == "magnitude" and rule == "rank" and weights is None:
        raise ValueError("tie_breaker='magnitude' needs weights")
    if rule == "rank" and density is None:
        raise ValueError("the rank rule needs density, the fraction of units to keep")

    masks, coef, pvalue, rows = {}, {}, {}, []
    for group in _problems(list(alive), scope, groups):
        if not any(np.any(alive[n]) for n in group):  # the zero rule may empty a layer
            masks.update({n: np.zeros_like(alive[n], dtype=bool) for n in group})
            coef.update({n: np.zeros(np.shape(alive[n])) for n in group})
            pvalue.update({n: np.ones(np.shape(alive[n])) for n in group})
            continue
        design = granger_design(trajectory, group, features=features, lags=lags, alive=alive,
                                groups=groups, restricted=restricted, scale=scale,
                                loss_change=loss_change)
        if rule == "significance":
            keep, row, unit_p, unit_gamma = _significant_units(design, options)
            pvalue.update(design.to_tensors(unit_p, fill=1.0))
        else:
            data = design.partialled()
            unit_gamma, row = _fit_lasso(design, options, data)
            keep = unit_gamma != 0
            if rule == "zero":
                _warn_if_support_bound(int(keep.sum()), design, group)
            else:
                rank = _lexicographic_rank(
                    np.abs(unit_gamma), _tiebreak_score(tie_breaker, design, weights, data, groups))
                if groups is None:
                    n_keep = int(round(sum(np.size(alive[n]) for n in group) * density))
                else:  # of the groups counting pruned ones; a layer keeps at least one
                    n_keep = max(1, int(round(groups.present(group).size * density)))
                keep = np.zeros(design.n_units, dtype=bool)
                layer_units = [] if groups is None else _design_units_of_layers(design, group, groups)
                keep[top_units_with_layer_floor(rank, np.arange(design.n_units), n_keep,
                                                layer_units)] = True
        group_masks = design.to_tensors(keep, fill=False)
        coef.update(design.to_tensors(unit_gamma))
        masks.update(group_masks)
        n_kept_units = int(keep.sum())
        n_kept = sum(int(np.count_nonzero(m)) for m in group_masks.values())
        rows.append(dict(
            tensors=",".join(group), n_steps=design.n_steps, n_units=design.n_units,
            n_features=design.n_features, **row, kept=n_kept, kept_units=n_kept_units,
            # the zero and significance rules keep no unit by tie-break
            kept_by_tiebreak=max(0, n_kept_units - row["lasso_support"]) if rule == "rank" else 0,
        ))
    return CausalSelection(masks=masks, coef=coef, diagnostics=pd.DataFrame(rows),
                           pvalue=pvalue if rule == "significance" else None)


#: The keyword options of :func:`select_causal` that a :class:`PruningMethod` may set,
#: with their defaults (read from the signature, so there is one source of defaults).
CAUSAL_DEFAULTS = {
    name: p.default for name, p in inspect.signature(select_causal).parameters.items()
    if p.kind is p.KEYWORD_ONLY and name not in ("density", "scope", "weights", "groups")
}


def _fit_lasso(design, options, data):
    """Per-unit lasso coefficient and a diagnostics row.

    ``data`` is ``design.partialled(rows)``.  The coefficient is ``γ_u``
    itself for one-column units and ``||γ_u||`` otherwise; rules use its
    absolute value."""
    X, y, fit_intercept = data
    a_max = alpha_max(X, y, fit_intercept=fit_intercept)
    if options["l1_coeff"] is not None:  # Σ_t r_t² + c ||γ||_1 = 2T ((1/2T) Σ_t r_t² + c/(2T) ||γ||_1)
        a = options["l1_coeff"] / (2 * X.shape[0])
    elif options["alpha"] is not None:
        a = options["alpha"]
    else:
        a = options["alpha_ratio"] * a_max
    if a_max == 0:
        gamma, gap, n_iter = np.zeros(design.n_features), 0.0, 0
    else:
        lasso = CausalLasso(alpha=a, fit_intercept=fit_intercept, tol=options["tol"],
                            max_iter=options["max_iter"])
        lasso.fit(X, y)
        gamma, gap, n_iter = lasso.coef_, lasso.dual_gap_, lasso.n_iter_
    # signed γ for one-column units, the norm of the unit's coefficients otherwise
    unit_gamma = gamma if design.features_per_unit == 1 else design.unit_norms(gamma)
    row = dict(alpha=a, alpha_max=a_max, lasso_support=int(np.count_nonzero(unit_gamma)),
               dual_gap=gap, n_iter=n_iter)
    return unit_gamma, row


def _significant_units(design, options):
    """Units kept by the significance rule, its diagnostics, p-values and screening ``||γ_u||``."""
    n_units = design.n_units
    unit_gamma = np.zeros(n_units)
    row = dict(lasso_support=0)
    if options["split"] is None:
        candidates = np.arange(n_units)
        test_rows = None
    else:
        n_screen = int(options["split"] * design.n_steps)
        if min(n_screen, design.n_steps - n_screen) < MIN_ROWS:
            raise ValueError(f"split={options['split']} of T={design.n_steps} rows leaves "
                             f"{n_screen} rows to screen and {design.n_steps - n_screen} to "
                             f"test; each part needs at least {MIN_ROWS}")
        unit_gamma, row = _fit_lasso(design, options, design.partialled(np.arange(n_screen)))
        candidates = np.flatnonzero(unit_gamma)
        test_rows = np.arange(n_screen, design.n_steps)
    unit_p = np.ones(n_units)
    keep = np.zeros(n_units, dtype=bool)
    row.update(n_tested=candidates.size, n_significant=0, durbin_watson=np.nan)
    if candidates.size:
        result = granger_f_tests(design, units=candidates, rows=test_rows)
        reject, _ = adjust_pvalues(result.pvalue, alpha=options["q"], method=options["correction"])
        unit_p[candidates] = result.pvalue
        keep[candidates[reject]] = True
        row.update(n_significant=int(reject.sum()), durbin_watson=result.durbin_watson)
    return keep, row, unit_p, unit_gamma


def _tiebreak_score(tie_breaker, design, weights, data, groups=None):
    """Per-unit score that orders units with equal ``||γ_u||``; shape (n_units,).

    ``data`` is ``design.partialled()``, as the lasso was fitted on.  The
    magnitude score of a group sums ``|θ|`` over its kernel entries only, as
    L1-norm filter pruning does."""
    if tie_breaker == "magnitude":
        kernels = design.tensor_names if groups is None else groups.kernels
        return design.unit_sums({
            n: np.abs(np.asarray(weights[n], dtype=np.float64)) if n in kernels
            else np.zeros(np.shape(weights[n])) for n in design.tensor_names})
    X, y, fit_intercept = data
    if fit_intercept:
        y = y - y.mean()
    return design.unit_norms(X.T @ y / design.n_steps)


def _lexicographic_rank(primary, secondary):
    """Rank of each entry (0 = smallest) ordering by ``primary`` then ``secondary``."""
    order = np.lexsort((secondary, primary))
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    return rank


def _warn_if_support_bound(n_support, design, group):
    bound = design.n_steps - design.Z.shape[1]
    if n_support >= bound and design.n_units > bound:
        warnings.warn(
            f"the lasso for {group} kept {n_support} of {design.n_units} units: a lasso "
            f"with T={design.n_steps} steps keeps at most {bound}, so the zero rule cannot keep "
            "more; record more steps (a larger n_prune) or use the rank rule",
            SupportLimitWarning, stacklevel=3,
        )


@dataclass(frozen=True)
class PruningMethod:
    """A pruning criterion as Algorithm 1 uses it: which parameters survive a round.

    Parameters
    ----------
    name : {"causal", "magnitude", "random"}
        With ``granularity="filter"``, ``"magnitude"`` is L1-norm filter pruning
        (Li et al. 2017: a filter's score is the sum of ``|θ|`` over its kernel,
        not its bias or norm) and ``"random"`` draws one score per filter.
    scope : {"layer", "global"}
        Rank per layer (the papers' causal rule) or across all layers.
    rule : {"rank", "zero", "significance"}
        ``"zero"`` (keep ``γ ≠ 0``) and ``"significance"`` (keep what an
        F-test finds significant) are only for the causal method.
    options : dict
        Keyword options of :func:`select_causal` (causal method only), e.g.
        ``alpha_ratio``, ``tie_breaker``, ``features``, ``lags``, ``scale``,
        ``loss_change``, ``q``, ``correction``, ``split``.
    granularity : {"weight", "filter", "layer"}
        The unit kept or pruned: single weights of the Linear/Conv layers
        (default), filters (an output channel with its bias and BatchNorm
        channel; structured pruning) or whole layers (``scope="global"`` only).
        With filters or layers the sparsity of the rank rules is the fraction
        of units pruned, and every layer keeps at least one filter, in a global
        ranking too (the best filter of each layer is kept first; layers as
        units are not floored); see :mod:`granger_prune.network.structure`.  Removing whole layers disconnects a
        network without skip connections (the package's MLP and CNN): layer
        units serve to ask which layers matter more than to prune them.
    """

    name: str
    scope: str = "layer"
    rule: str = "rank"
    options: dict = field(default_factory=dict)
    granularity: str = "weight"

    def __post_init__(self):
        check_choice("method name", self.name, METHODS)
        check_choice("scope", self.scope, SCOPES)
        check_choice("rule", self.rule, CAUSAL_RULES)
        check_choice("granularity", self.granularity, GRANULARITIES)
        if self.granularity == "layer" and self.scope == "layer":
            raise ValueError("granularity='layer' makes each layer one unit: rank the layers "
                             "against each other with scope='global'")
        if self.name != "causal" and self.rule != "rank":
            raise ValueError(f"rule={self.rule!r} is only defined for the causal method, not {self.name!r}")
        if "rule" in self.options:
            raise ValueError("give the rule as PruningMethod(rule=...), not in options")
        if self.name == "causal":
            check_causal_options(self.options)
        elif self.options:
            raise ValueError(f"unknown option(s) {sorted(self.options)} for method {self.name!r}; "
                             "only the causal method takes options")

    @property
    def label(self):
        """Short name for tables and legends, e.g. ``"causal-rank-marginal/layer"``;
        structured methods name their unit, e.g. ``"magnitude-filter/layer"``."""
        unit = "" if self.granularity == "weight" else f"-{self.granularity}"
        if self.name != "causal":
            return f"{self.name}{unit}/{self.scope}"
        features = "" if self.option("features") == "vanilla" else f"-{self.option('features')}"
        for penalty in ("alpha", "l1_coeff"):  # absolute penalties replace alpha_ratio
            if self.option(penalty) is not None:
                features += f"-{penalty.replace('_', '')}{self.option(penalty):g}"
        if self.option("lags") != CAUSAL_DEFAULTS["lags"]:
            features += f"-lags{self.option('lags')}"
        if self.rule == "zero":
            rule = "zero"
        elif self.rule == "significance":
            rule = f"significance-{self.option('correction')}"
            if self.option("q") != CAUSAL_DEFAULTS["q"]:
                rule += f"-q{self.option('q'):g}"
            if self.option("split") is not None:
                rule += f"-split{self.option('split'):g}"
        else:
            rule = f"rank-{self.option('tie_breaker')}"
        return f"causal-{rule}{features}{unit}/{self.scope}"

    @property
    def targets_sparsity(self):
        """Whether each round keeps a target fraction (rank rules) rather than
        what the data say (the zero and significance rules)."""
        return self.rule not in SELF_SIZING_RULES

    @property
    def needs_trajectory(self):
        """Whether the rounds must record the trajectory."""
        return self.name == "causal"

    def check_recorded_steps(self, n_steps):
        """``ValueError`` before training when ``n_steps`` recorded steps per round
        cannot give this method's design and tests enough rows."""
        if not self.needs_trajectory:
            return
        options = {name: self.option(name) for name in ("features", "lags", "loss_change")}
        n_rows = n_design_rows(n_steps, **options)
        # the F-tests need T > k + m; a split needs it in the tested part and MIN_ROWS to screen
        n_regressors = (self.option("lags") + (self.option("restricted") == "intercept")
                        + len(FEATURE_SETS[self.option("features")]))
        need = MIN_ROWS
        if self.rule == "significance":
            need = max(need, n_regressors + 1)
            if self.option("split") is not None:
                need = max(need, int(np.ceil(MIN_ROWS / self.option("split"))),
                           int(np.ceil((n_regressors + 1) / (1 - self.option("split")))))
        if n_rows < need:
            raise ValueError(
                f"each round records n_steps={n_steps} steps, {n_rows} design rows with "
                f"loss_change={options['loss_change']!r}, features={options['features']!r} and "
                f"lags={options['lags']}; {self.label} needs at least {need}: raise n_prune "
                "or lower batch_size")

    @property
    def loss_change(self):
        """How the recorder and the design form ``ΔL``."""
        return self.option("loss_change")

    def option(self, name):
        """A causal option's value, its default when not set."""
        return self.options.get(name, CAUSAL_DEFAULTS[name])

    def select(self, weights, alive, density, *, trajectory=None, rng=None, groups=None):
        """Survivors of one round.

        Parameters
        ----------
        weights : mapping of str to ndarray
            Current parameter values.
        alive : mapping of str to bool ndarray
            Parameters still unpruned.
        density : float in (0, 1]
            Fraction of units to keep after this round (rank rules; the
            others ignore it).
        trajectory : Trajectory, optional
            The round's recorded trajectory (causal method).
        rng : numpy Generator or seed, optional
            Randomness of the random method.
        groups : ParameterGroups, optional
            The filters or layers, required when ``granularity`` is not ``"weight"``.

        Returns
        -------
        masks : dict of str to bool ndarray
        diagnostics : pandas.DataFrame or None
        """
        if (groups is None) != (self.granularity == "weight"):
            raise ValueError(f"{self.label} selects {self.granularity}s: pass groups exactly "
                             "when granularity is not 'weight'")
        if self.name == "causal":
            if trajectory is None:
                raise ValueError("the causal method needs a recorded trajectory")
            result = select_causal(trajectory, alive, rule=self.rule, density=density,
                                   scope=self.scope, weights=weights, groups=groups, **self.options)
            return result.masks, result.diagnostics
        if groups is None:
            scores = magnitude_scores(weights) if self.name == "magnitude" else random_scores(weights, rng)
            return keep_highest(scores, alive, density, self.scope), None
        if self.name == "magnitude":
            scores = groups.sums(magnitude_scores(weights), groups.kernels)
        else:
            scores = np.random.default_rng(rng).random(groups.n_groups)
        return keep_highest_groups(scores, alive, groups, density, self.scope), None
