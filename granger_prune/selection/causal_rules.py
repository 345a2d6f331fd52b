"""The causal rules: which units of one Granger problem survive.

A rule is a frozen dataclass of its own options.  Given the design of one
problem (one layer, or all tensors of a global problem) it returns a
:class:`UnitDecision`: the kept units, a score per unit, a diagnostics row and,
for the tests, per-unit p-values.  The lasso rules fit

    (1 / (2 * T)) * ||ΔL - Z b - X γ||_2^2 + alpha * ||γ||_1

with ``Z`` (intercept, lagged losses) unpenalised, by
:class:`granger_prune.lasso.CausalLasso`; a unit's coefficient is ``γ_u`` for
one-column units and ``||γ_u||`` otherwise.

* :class:`Rank` (seed 001): keep the ``density`` fraction with the largest
  ``|γ_u|``.  A lasso leaves all but at most T coefficients at exactly zero, so
  the order among those is set by a named tie-breaker: ``"marginal"``,
  ``|x_uᵀ ỹ| / T`` with ``ỹ`` the loss change (centred when ``Z`` has an
  intercept: the covariance of the feature with the loss change, which ranks
  like the authors' early-stopped SGD fit), or ``"magnitude"``, ``|θ|``.
* :class:`Zero` (seed 000): keep ``γ_u ≠ 0`` at the given penalty; at most T
  units per problem (a :class:`~granger_prune.exceptions.SupportLimitWarning`
  says when that bound binds).
* :class:`Significance` (this package's own): keep the units whose F-test of
  the restricted against the unrestricted regression rejects at level ``q``
  after ``correction``; with ``split=s`` the lasso screens on the first fraction
  ``s`` of the steps and only its support is tested, on the rest.

This module works on plain NumPy arrays and never imports torch.
"""

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._checks import check_choice
from .._options import OptionSet, check_number
from ..design import MIN_ROWS
from ..exceptions import SupportLimitWarning
from ..lasso import CausalLasso, alpha_max
from ..stats import METHODS as CORRECTIONS
from ..stats import adjust_pvalues, granger_f_tests
from .grouping import top_units_with_layer_floor

TIE_BREAKERS = ("marginal", "magnitude")


@dataclass
class UnitDecision:
    """What a rule decided for the units of one problem.

    Attributes
    ----------
    keep : bool ndarray of shape (n_units,)
    score : ndarray of shape (n_units,)
        The lasso coefficient of each unit (signed ``γ_u`` for one-column
        units, ``||γ_u||`` otherwise; the screening lasso's with a split, else 0
        for the tests).
    row : dict
        The problem's diagnostics: ``alpha``, ``alpha_max``, ``lasso_support``,
        ``dual_gap``, ``n_iter`` for a lasso, ``n_tested``, ``n_significant``,
        ``durbin_watson`` for the tests, ``kept_by_tiebreak`` (units).
    pvalue : ndarray of shape (n_units,) or None
        The tests' uncorrected p-values (1 for untested units).
    """

    keep: np.ndarray
    score: np.ndarray
    row: dict
    pvalue: Optional[np.ndarray] = None


@dataclass(frozen=True)
class Problem:
    """One separately fitted problem, as a rule sees it.

    Attributes
    ----------
    tensors : list of str
    n_keep : int or None
        Units a rank rule keeps (counting pruned ones; with groups at least one).
    layer_units : tuple of int ndarray
        The design's units of each layer that a global filter ranking floors
        (empty without groups or per layer).
    weights : mapping of str to ndarray or None
        Current parameter values (the magnitude tie-breaker).
    groups : ParameterGroups or None
    """

    tensors: list
    n_keep: Optional[int] = None
    layer_units: tuple = ()
    weights: Optional[dict] = None
    groups: Optional[object] = None


@dataclass(frozen=True)
class CausalRule(OptionSet):
    """Base of the causal rules: the lasso penalty and solver they share.

    Parameters
    ----------
    alpha_ratio : float in (0, 1]
        ``alpha = alpha_ratio * alpha_max`` of each problem (``alpha_max`` the
        smallest ``alpha`` giving ``γ = 0``); ignored when ``alpha`` or
        ``l1_coeff`` is given.
    alpha : float >= 0, optional
        The absolute penalty of the objective above, on the design's scale
        (raw ``(Δθ)²`` with ``scale="raw"``).
    l1_coeff : float >= 0, optional
        The papers' penalty (seeds 000/001), whose objective is
        ``Σ_t (ΔL^t - Z_t b - X_t γ)² + l1_coeff * ||γ||_1``: the same
        minimiser as the objective above at ``alpha = l1_coeff / (2 * T)``, with
        ``T`` the problem's design rows (``T = 150``, ``l1_coeff = 1e-8`` is
        ``alpha = 3.3e-11``).  At most one of ``alpha`` and ``l1_coeff``.
    tol, max_iter
        Passed to :class:`granger_prune.lasso.CausalLasso`.
    """

    alpha_ratio: float = 0.05
    alpha: Optional[float] = None
    l1_coeff: Optional[float] = None
    tol: float = 1e-4
    max_iter: int = 1000

    #: Whether the rule keeps a target fraction rather than what the data say.
    targets_sparsity = True
    #: Whether the rule tests (and reports p-values).
    tests = False

    def __post_init__(self):
        if self.alpha is not None and self.l1_coeff is not None:
            raise ValueError(f"give at most one of alpha and l1_coeff, got alpha={self.alpha!r} and "
                             f"l1_coeff={self.l1_coeff!r}")
        if self.l1_coeff is not None:
            check_number("l1_coeff", self.l1_coeff, low=0)
        elif self.alpha is not None:
            check_number("alpha", self.alpha, low=0)
        else:
            check_number("alpha_ratio", self.alpha_ratio, low=0, high=1, low_open=True)
        check_number("tol", self.tol, low=0, low_open=True)
        check_number("max_iter", self.max_iter, low=1, integer=True)

    def min_rows(self, n_regressors):
        """Design rows a round must give this rule (``n_regressors`` per unit's test)."""
        return MIN_ROWS

    def decide(self, design, problem):
        """The :class:`UnitDecision` for ``design`` (one problem's units)."""
        raise NotImplementedError

    def fit_lasso(self, design, data):
        """Per-unit lasso coefficient and a diagnostics row; ``data`` is
        ``design.partialled(rows)``."""
        X, y, fit_intercept = data
        a_max = alpha_max(X, y, fit_intercept=fit_intercept)
        if self.l1_coeff is not None:  # Σ_t r_t² + c ||γ||_1 = 2T ((1/2T) Σ_t r_t² + c/(2T) ||γ||_1)
            a = self.l1_coeff / (2 * X.shape[0])
        elif self.alpha is not None:
            a = self.alpha
        else:
            a = self.alpha_ratio * a_max
        if a_max == 0:
            gamma, gap, n_iter = np.zeros(design.n_features), 0.0, 0
        else:
            lasso = CausalLasso(alpha=a, fit_intercept=fit_intercept, tol=self.tol,
                                max_iter=self.max_iter)
            lasso.fit(X, y)
            gamma, gap, n_iter = lasso.coef_, lasso.dual_gap_, lasso.n_iter_
        # signed γ for one-column units, the norm of the unit's coefficients otherwise
        unit_gamma = gamma if design.features_per_unit == 1 else design.unit_norms(gamma)
        row = dict(alpha=a, alpha_max=a_max, lasso_support=int(np.count_nonzero(unit_gamma)),
                   dual_gap=gap, n_iter=n_iter)
        return unit_gamma, row


@dataclass(frozen=True)
class Rank(CausalRule):
    """Seed 001's rule: prune the fraction of units with the smallest ``|γ_u|``.

    Parameters
    ----------
    tie_breaker : {"marginal", "magnitude"}
        Orders the units the lasso leaves at zero (``"magnitude"`` needs the
        weights).  The other options are those of :class:`CausalRule`.
    """

    tie_breaker: str = "marginal"

    def __post_init__(self):
        super().__post_init__()
        check_choice("tie_breaker", self.tie_breaker, TIE_BREAKERS)

    def decide(self, design, problem):
        if self.tie_breaker == "magnitude" and problem.weights is None:
            raise ValueError("tie_breaker='magnitude' needs weights")
        data = design.partialled()
        unit_gamma, row = self.fit_lasso(design, data)
        rank = _lexicographic_rank(np.abs(unit_gamma), self._tiebreak_score(design, problem, data))
        keep = np.zeros(design.n_units, dtype=bool)
        keep[top_units_with_layer_floor(rank, np.arange(design.n_units), problem.n_keep,
                                        list(problem.layer_units))] = True
        row["kept_by_tiebreak"] = max(0, int(keep.sum()) - row["lasso_support"])
        return UnitDecision(keep, unit_gamma, row)

    def _tiebreak_score(self, design, problem, data):
        """Per-unit score that orders units with equal ``||γ_u||``; shape (n_units,).

        The magnitude score of a group sums ``|θ|`` over its kernel entries
        only, as L1-norm filter pruning does."""
        if self.tie_breaker == "magnitude":
            kernels = design.tensor_names if problem.groups is None else problem.groups.kernels
            return design.unit_sums({
                n: np.abs(np.asarray(problem.weights[n], dtype=np.float64)) if n in kernels
                else np.zeros(np.shape(problem.weights[n])) for n in design.tensor_names})
        X, y, fit_intercept = data
        if fit_intercept:
            y = y - y.mean()
        return design.unit_norms(X.T @ y / design.n_steps)


@dataclass(frozen=True)
class Zero(CausalRule):
    """Seed 000's rule: keep the units with ``γ_u ≠ 0`` at the given penalty
    (the options of :class:`CausalRule`)."""

    targets_sparsity = False

    def decide(self, design, problem):
        unit_gamma, row = self.fit_lasso(design, design.partialled())
        keep = unit_gamma != 0
        _warn_if_support_bound(int(keep.sum()), design, problem.tensors)
        return UnitDecision(keep, unit_gamma, dict(row, kept_by_tiebreak=0))


@dataclass(frozen=True)
class Significance(CausalRule):
    """Keep the units whose F-test rejects at level ``q`` after ``correction``.

    Parameters
    ----------
    q : float in (0, 1)
        Level (FDR for BH/BY, FWER for Holm/Bonferroni).
    correction : {"fdr_bh", "fdr_by", "holm", "bonferroni"}
        Multiple-testing correction over each problem's units.
    split : float in (0, 1), optional
        Screen with the lasso (the options of :class:`CausalRule`) on the
        first ``split`` fraction of the steps and test only its support on the
        rest.  None (default) tests every unit on all steps, and fits no lasso.

    The p-values assume serially uncorrelated residuals: the diagnostics carry
    the Durbin–Watson statistic of the restricted residuals.
    """

    q: float = 0.05
    correction: str = "fdr_bh"
    split: Optional[float] = None

    targets_sparsity = False
    tests = True

    def __post_init__(self):
        super().__post_init__()
        check_number("q", self.q, low=0, high=1, low_open=True, high_open=True)
        check_choice("correction", self.correction, CORRECTIONS)
        if self.split is not None:
            check_number("split", self.split, low=0, high=1, low_open=True, high_open=True)

    def min_rows(self, n_regressors):
        # the F-tests need T > k + m; a split needs it in the tested part and MIN_ROWS to screen
        need = max(MIN_ROWS, n_regressors + 1)
        if self.split is not None:
            need = max(need, int(np.ceil(MIN_ROWS / self.split)),
                       int(np.ceil((n_regressors + 1) / (1 - self.split))))
        return need

    def decide(self, design, problem):
        n_units = design.n_units
        unit_gamma = np.zeros(n_units)
        row = dict(lasso_support=0)
        if self.split is None:
            candidates = np.arange(n_units)
            test_rows = None
        else:
            n_screen = int(self.split * design.n_steps)
            if min(n_screen, design.n_steps - n_screen) < MIN_ROWS:
                raise ValueError(f"split={self.split} of T={design.n_steps} rows leaves "
                                 f"{n_screen} rows to screen and {design.n_steps - n_screen} to "
                                 f"test; each part needs at least {MIN_ROWS}")
            unit_gamma, row = self.fit_lasso(design, design.partialled(np.arange(n_screen)))
            candidates = np.flatnonzero(unit_gamma)
            test_rows = np.arange(n_screen, design.n_steps)
        unit_p = np.ones(n_units)
        keep = np.zeros(n_units, dtype=bool)
        row.update(n_tested=candidates.size, n_significant=0, durbin_watson=np.nan)
        if candidates.size:
            result = granger_f_tests(design, units=candidates, rows=test_rows)
            reject, _ = adjust_pvalues(result.pvalue, alpha=self.q, method=self.correction)
            unit_p[candidates] = result.pvalue
            keep[candidates[reject]] = True
            row.update(n_significant=int(reject.sum()), durbin_watson=result.durbin_watson)
        row["kept_by_tiebreak"] = 0
        return UnitDecision(keep, unit_gamma, row, unit_p)


#: The causal rules by name.
RULES = {rule.name: rule for rule in (Rank, Zero, Significance)}


def rule_from_dict(table):
    """The rule a study's ``rule = {name = ..., ...}`` table configures (``name`` defaults to ``"rank"``)."""
    if not isinstance(table, dict):
        raise ValueError(f"rule takes a table such as {{name = 'rank'}}, got {table!r}")
    name = table.get("name", Rank.name)
    check_choice("rule", name, tuple(RULES))
    return RULES[name].from_dict(table)


def _lexicographic_rank(primary, secondary):
    """Rank of each entry (0 = smallest) ordering by ``primary`` then ``secondary``."""
    order = np.lexsort((secondary, primary))
    rank = np.empty(order.size, dtype=np.intp)
    rank[order] = np.arange(order.size)
    return rank


def _warn_if_support_bound(n_support, design, tensors):
    bound = design.n_steps - design.Z.shape[1]
    if n_support >= bound and design.n_units > bound:
        warnings.warn(
            f"the lasso for {tensors} kept {n_support} of {design.n_units} units: a lasso "
            f"with T={design.n_steps} steps keeps at most {bound}, so the zero rule cannot keep "
            "more; record more steps (a larger n_prune) or use the rank rule",
            SupportLimitWarning, stacklevel=4,
        )
