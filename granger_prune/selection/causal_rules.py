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
  score, ``|γ_u|`` by default, or another score of
  :mod:`granger_prune.selection.scores` (the loss share ``|γ_u · mean_t x_u|``,
  the standardised ``|γ_u|``, the marginal covariance), from a lasso, an
  elastic net or a ridge fit.  A lasso leaves all but at most T coefficients at
  exactly zero, so the order among those is set by a named tie-breaker:
  ``"marginal"``, ``|x_uᵀ ỹ| / T`` with ``ỹ`` the loss change (centred when
  ``Z`` has an intercept: the covariance of the feature with the loss change,
  which ranks like the authors' early-stopped SGD fit), or ``"magnitude"``,
  ``|θ|``; a ridge fit ranks every unit without one.
* :class:`Zero` (seed 000): keep ``γ_u ≠ 0`` at the given penalty; at most T
  units per problem (a :class:`~granger_prune.exceptions.SupportLimitWarning`
  says when that bound binds).
* :class:`Significance` (this package's own): keep the units whose F-test of
  the restricted against the unrestricted regression rejects at level ``q``
  after ``correction``; with ``split=s`` the lasso screens on the first fraction
  ``s`` of the steps and only its support is tested, on the rest.  The tests
  may be HAC or prewhitened and conditional on common factors.
* :class:`Stability` (this package's own): stability selection over
  complementary pairs of step blocks, with a bound on the expected number of
  false selections.

This module works on plain NumPy arrays and never imports torch.
"""

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .._checks import check_choice
from .._options import OptionSet, check_number
from ..backend import get_namespace, to_numpy
from ..design import MIN_ROWS
from ..exceptions import SupportLimitWarning
from ..lasso import CausalLasso, alpha_max
from ..lasso.estimator import unit_sd_scale
from ..placement import place, running_on
from ..stats import METHODS as CORRECTIONS
from ..stats import INFERENCES, adjust_pvalues, granger_f_tests
from ..stats.hac import check_bandwidth
from ..stats.inference import check_factors
from .grouping import top_units_with_layer_floor
from .scores import SCORES, column_covariances, marginal_scores, unit_scores
from .stability import stability_selection

TIE_BREAKERS = ("marginal", "magnitude")
FITS = ("lasso", "enet", "ridge")


@dataclass
class UnitDecision:
    """What a rule decided for the units of one problem.

    Attributes
    ----------
    keep : bool ndarray of shape (n_units,)
    score : ndarray of shape (n_units,)
        The lasso coefficient of each unit (signed ``γ_u`` for one-column
        units, ``||γ_u||`` otherwise; the screening lasso's with a split, else 0
        for the tests), or the score a rank rule ordered by when it is not ``"gamma"``.
    row : dict
        The problem's diagnostics: ``alpha``, ``alpha_max``, ``lasso_support``,
        ``dual_gap``, ``n_iter`` for a lasso (``lasso_support`` counts the
        units a fit gives a non-zero coefficient, every unit for a ridge fit or
        the marginal score), ``n_tested``, ``n_significant``,
        ``durbin_watson``, ``ljung_box_pvalue``, ``ar_order``, ``hac_lags``
        (median), ``n_factors``, ``factor_share`` for the tests,
        ``kept_by_tiebreak`` (units).
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
    device : str or None
        Where the lasso and the tests run: None for the host, a CUDA device
        (``"cuda"``, ``"cuda:1"``) for CuPy (see :mod:`granger_prune.placement`).
    """

    tensors: list
    n_keep: Optional[int] = None
    layer_units: tuple = ()
    weights: Optional[dict] = None
    groups: Optional[object] = None
    device: Optional[str] = None


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

    def fit_lasso(self, design, data, device=None):
        """Per-unit lasso coefficient and a diagnostics row; ``data`` is
        ``design.partialled(rows)``, fitted on ``device`` (None: the host)."""
        gamma, row = self.fit_penalised(design, data, device=device)
        # signed γ for one-column units, the norm of the unit's coefficients otherwise
        return (gamma if design.features_per_unit == 1 else design.unit_norms(gamma)), row

    def fit_penalised(self, design, data, *, l1_ratio=1.0, column_sd=None, device=None):
        """Per-column coefficients (shape (d,), on the design's scale) of the elastic net

            (1 / (2T)) ||ỹ - X̃ γ||² + alpha (l1_ratio ||S γ||_1 + (1 - l1_ratio) / 2 ||S γ||²)

        (the lasso at ``l1_ratio=1``; ``S = diag(column_sd)`` for the fit on
        unit-variance columns, else the identity) and a diagnostics row;
        ``alpha_ratio`` is relative to that problem's ``alpha_max``.  On a CUDA
        ``device`` the fit (and ``alpha_max``) runs there, the design copied whole
        or streamed (:func:`granger_prune.placement.place`)."""
        with running_on(device) as xp:
            return self._fit_penalised(design, data, l1_ratio, column_sd, xp)

    def _fit_penalised(self, design, data, l1_ratio, column_sd, xp):
        X, y, fit_intercept = data
        X, y = place(X, xp, y)  # data stays on the host
        if column_sd is None:
            a_max = alpha_max(X, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio)
        else:  # alpha_max of X / sd, without the scaled copy (on the host)
            a_max = float(np.max(np.abs(column_covariances(data)) / column_sd, initial=0.0)) / l1_ratio
        if self.l1_coeff is not None:  # Σ_t r_t² + c ||γ||_1 = 2T ((1/2T) Σ_t r_t² + c/(2T) ||γ||_1)
            a = self.l1_coeff / (2 * X.shape[0])
        elif self.alpha is not None:
            a = self.alpha
        else:
            a = self.alpha_ratio * a_max
        if a_max == 0:
            gamma, gap, n_iter = np.zeros(design.n_features), 0.0, 0
        else:
            lasso = CausalLasso(alpha=a, l1_ratio=l1_ratio, fit_intercept=fit_intercept, tol=self.tol,
                                max_iter=self.max_iter, standardize="std" if column_sd is not None else False)
            lasso.fit(X, y)
            gamma, gap, n_iter = lasso.coef_, lasso.dual_gap_, lasso.n_iter_
        row = dict(alpha=a, alpha_max=a_max, lasso_support=int(np.count_nonzero(design.unit_norms(gamma))),
                   dual_gap=gap, n_iter=n_iter)
        return np.asarray(gamma, dtype=np.float64), row


def fit_ridge(design, data, alpha_ratio, column_sd=None):
    """Per-column ridge coefficients (shape (d,), on the design's scale) and a row.

    Minimises ``(1 / (2T)) ||ỹ - X̃ γ||² + (alpha / 2) ||S γ||²`` (``S`` as in
    :meth:`CausalRule.fit_penalised`) with ``alpha = alpha_ratio * λ̄``,
    ``λ̄ = ||X̃ S⁻¹||_F² / (T · min(T, d))`` the mean non-zero eigenvalue scale
    of ``X̃ᵀX̃ / T`` (no penalty gives γ = 0, so there is no ``alpha_max``), by
    scikit-learn's :class:`~sklearn.linear_model.Ridge` (its objective is
    ``2T`` times this one at ``alpha_sklearn = alpha · T``).  Every coefficient
    is non-zero: the ridge ranks all units without a tie-breaker."""
    from sklearn.linear_model import Ridge

    X, y, fit_intercept = data
    X = to_numpy(X)  # scikit-learn's solver: a design on the device is copied to the host
    T, d = X.shape
    if column_sd is not None:
        X = X / column_sd
    spread = X - X.mean(axis=0) if fit_intercept else X
    scale = float(np.sum(spread * spread)) / (T * min(T, d))
    a = alpha_ratio * scale
    if scale == 0:
        gamma = np.zeros(d)
    else:
        gamma = Ridge(alpha=a * T, fit_intercept=fit_intercept, solver="cholesky").fit(X, y).coef_
        if column_sd is not None:
            gamma = gamma / column_sd
    row = dict(alpha=a, alpha_max=np.nan, lasso_support=int(np.count_nonzero(design.unit_norms(gamma))),
               dual_gap=np.nan, n_iter=0)
    return np.asarray(gamma, dtype=np.float64), row


@dataclass(frozen=True)
class Rank(CausalRule):
    """Seed 001's rule: prune the fraction of units with the smallest score.

    Parameters
    ----------
    tie_breaker : {"marginal", "magnitude"}
        Orders the units whose score is zero (``"magnitude"`` needs the
        weights).
    score : {"gamma", "standardised", "loss_share", "marginal"}
        What units are ordered by (:mod:`granger_prune.selection.scores`):
        ``|γ_u|`` (default, seed 001), ``|γ_u|`` of the fit on unit-variance
        columns, the loss share ``|Σ_j γ_j mean_t X[t, j]|``, or the marginal
        covariance ``||X̃_uᵀ ỹ|| / T`` (no fit).
    fit : {"lasso", "enet", "ridge"}
        The fit giving ``γ``: the lasso (default), the elastic net at
        ``l1_ratio``, or ridge, which gives every unit a non-zero coefficient
        (a full ranking, no tie-breaker needed; ``alpha_ratio`` is then
        relative to the mean eigenvalue scale of ``X̃ᵀX̃ / T``, see
        :func:`fit_ridge`, and ``alpha``/``l1_coeff`` are not accepted).
        Ignored by ``score="marginal"``.
    l1_ratio : float in (0, 1)
        Of ``fit="enet"``.

    The other options are those of :class:`CausalRule`.
    """

    tie_breaker: str = "marginal"
    score: str = "gamma"
    fit: str = "lasso"
    l1_ratio: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        check_choice("tie_breaker", self.tie_breaker, TIE_BREAKERS)
        check_choice("score", self.score, SCORES)
        check_choice("fit", self.fit, FITS)
        check_number("l1_ratio", self.l1_ratio, low=0, high=1, low_open=True, high_open=True)
        if self.fit == "ridge" and (self.alpha is not None or self.l1_coeff is not None):
            raise ValueError("fit='ridge' takes its penalty from alpha_ratio (there is no alpha_max to "
                             "compare alpha or l1_coeff with); leave alpha and l1_coeff unset")

    def decide(self, design, problem):
        if self.tie_breaker == "magnitude" and problem.weights is None:
            raise ValueError("tie_breaker='magnitude' needs weights")
        data = design.partialled()
        if self.score == "marginal":
            primary = marginal_scores(design, data)
            row = dict(alpha=np.nan, alpha_max=np.nan, lasso_support=int(np.count_nonzero(primary)),
                       dual_gap=np.nan, n_iter=0)
            reported = primary
        else:
            column_sd = (to_numpy(unit_sd_scale(data[0], get_namespace(data[0])))
                         if self.score == "standardised" else None)
            if self.fit == "ridge":
                gamma, row = fit_ridge(design, data, self.alpha_ratio, column_sd)
            else:
                gamma, row = self.fit_penalised(design, data, column_sd=column_sd,
                                                l1_ratio=1.0 if self.fit == "lasso" else self.l1_ratio,
                                                device=problem.device)
            primary = unit_scores(design, gamma, self.score, column_sd)
            # the signed coefficient of one-column units is what the default reports
            signed = self.score == "gamma" and design.features_per_unit == 1
            reported = gamma if signed else primary
        rank = _lexicographic_rank(primary, self._tiebreak_score(design, problem, data))
        keep = np.zeros(design.n_units, dtype=bool)
        keep[top_units_with_layer_floor(rank, np.arange(design.n_units), problem.n_keep,
                                        list(problem.layer_units))] = True
        row["kept_by_tiebreak"] = int(np.count_nonzero(keep & (primary == 0)))
        return UnitDecision(keep, reported, row)

    def _tiebreak_score(self, design, problem, data):
        """Per-unit score that orders units with equal primary scores; shape (n_units,).

        The magnitude score of a group sums ``|θ|`` over its kernel entries
        only, as L1-norm filter pruning does."""
        if self.tie_breaker == "magnitude":
            kernels = design.tensor_names if problem.groups is None else problem.groups.kernels
            return design.unit_sums({
                n: np.abs(np.asarray(problem.weights[n], dtype=np.float64)) if n in kernels
                else np.zeros(np.shape(problem.weights[n])) for n in design.tensor_names})
        return marginal_scores(design, data)


@dataclass(frozen=True)
class Zero(CausalRule):
    """Seed 000's rule: keep the units with ``γ_u ≠ 0`` at the given penalty
    (the options of :class:`CausalRule`)."""

    targets_sparsity = False

    def decide(self, design, problem):
        unit_gamma, row = self.fit_lasso(design, design.partialled(), problem.device)
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
    inference : {"ols", "hac", "prewhiten"}
        The classical F-test (default; its p-values assume serially
        uncorrelated residuals), Newey–West (HAC) Wald tests, or the F-test
        after an AR(p) filter (:func:`granger_prune.stats.granger_tests`).
    factors : None, "bai_ng", "eigenvalue_ratio", int, "summaries" or "scale"
        Condition on the common variation of the steps: principal components
        of the problem's design (the count by a rule, or given) or its
        recorded summaries join the restricted model, or (``"scale"``) the
        common step scale joins it and the rows are weighted by the restricted
        errors' fitted standard deviation, for a factor that multiplies every
        step (see
        :func:`granger_prune.stats.granger_tests`).  None (default): the
        marginal tests.
    maxlags : int or {"nw94", "rule_of_thumb"}
        The HAC bandwidth (``inference="hac"``).
    max_ar_order : int, optional
        The largest AR order of the prewhitening (Schwert's rule by default).

    The diagnostics carry the Durbin–Watson and Ljung–Box statistics of the
    restricted residuals, the AR order or the median HAC lag, and the number
    of factors and the share of the step variance they explain; one warning
    says when they show the p-values cannot be trusted.
    """

    q: float = 0.05
    correction: str = "fdr_bh"
    split: Optional[float] = None
    inference: str = "ols"
    factors: Optional[object] = None
    maxlags: object = "nw94"
    max_ar_order: Optional[int] = None

    targets_sparsity = False
    tests = True

    def __post_init__(self):
        super().__post_init__()
        check_number("q", self.q, low=0, high=1, low_open=True, high_open=True)
        check_choice("correction", self.correction, CORRECTIONS)
        if self.split is not None:
            check_number("split", self.split, low=0, high=1, low_open=True, high_open=True)
        check_choice("inference", self.inference, INFERENCES)
        check_factors(self.factors)
        check_bandwidth(self.maxlags)
        if self.max_ar_order is not None:
            check_number("max_ar_order", self.max_ar_order, low=0, integer=True)

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
            unit_gamma, row = self.fit_lasso(design, design.partialled(np.arange(n_screen)),
                                             problem.device)
            candidates = np.flatnonzero(unit_gamma)
            test_rows = np.arange(n_screen, design.n_steps)
        unit_p = np.ones(n_units)
        keep = np.zeros(n_units, dtype=bool)
        row.update(n_tested=candidates.size, n_significant=0, durbin_watson=np.nan,
                   ljung_box_pvalue=np.nan, ar_order=np.nan, hac_lags=np.nan, n_factors=0,
                   factor_share=np.nan)
        if candidates.size:
            result = granger_f_tests(design, units=candidates, rows=test_rows,
                                     inference=self.inference, factors=self.factors,
                                     maxlags=self.maxlags, max_ar_order=self.max_ar_order,
                                     device=problem.device)
            reject, _ = adjust_pvalues(result.pvalue, alpha=self.q, method=self.correction)
            unit_p[candidates] = result.pvalue
            keep[candidates[reject]] = True
            row.update(n_significant=int(reject.sum()), durbin_watson=result.durbin_watson,
                       ljung_box_pvalue=result.ljung_box_pvalue, n_factors=result.n_factors,
                       factor_share=result.factor_share,
                       ar_order=np.nan if result.ar_order is None else result.ar_order,
                       hac_lags=np.nan if result.lags is None else float(np.median(result.lags)))
        row["kept_by_tiebreak"] = 0
        return UnitDecision(keep, unit_gamma, row, unit_p)


@dataclass(frozen=True)
class Stability(CausalRule):
    """Keep the units stability selection keeps: lasso selection with an error bound.

    Complementary pairs of half-samples of contiguous step blocks, the first
    ``q`` features to enter each half-sample's lasso path, kept when selected
    in at least ``threshold`` of the halves
    (:func:`granger_prune.selection.stability.stability_selection`).  The
    expected number of falsely selected columns is at most ``q² / ((2π - 1)
    d)`` under Meinshausen and Bühlmann's conditions; a unit is kept when any
    of its columns is, so the bound holds for units too.

    Parameters
    ----------
    threshold : float in (1/2, 1]
        ``π``.
    max_false : float > 0
        The bound on the expected false selections per problem; sets ``q``.
    n_pairs : int >= 1
        Complementary pairs of half-samples.
    block_length : int, optional
        Steps per block (default ``ceil(T^(1/3))``).
    standardize : bool
        Each half-sample's lasso on unit-variance columns (default) or on the
        design's scale.

    ``tol`` and ``max_iter`` are those of :class:`CausalRule`; its penalty
    options are not used (the path sets the penalties).
    """

    threshold: float = 0.75
    max_false: float = 1.0
    n_pairs: int = 50
    block_length: Optional[int] = None
    standardize: bool = True

    targets_sparsity = False

    def __post_init__(self):
        super().__post_init__()
        check_number("threshold", self.threshold, low=0.5, high=1, low_open=True)
        check_number("max_false", self.max_false, low=0, low_open=True)
        check_number("n_pairs", self.n_pairs, low=1, integer=True)
        if self.block_length is not None:
            check_number("block_length", self.block_length, low=1, integer=True)
        if not isinstance(self.standardize, bool):
            raise ValueError(f"standardize must be True or False, got {self.standardize!r}")

    def min_rows(self, n_regressors):
        return max(MIN_ROWS, 4, 2 * (self.block_length or 1))

    def decide(self, design, problem):
        X, y, fit_intercept = design.partialled()
        with running_on(problem.device) as xp:  # subsamples select rows: whole, or on the host
            X, y = place(X, xp, y, stream=False)
            result = stability_selection(X, y, threshold=self.threshold, max_false=self.max_false,
                                         n_pairs=self.n_pairs, block_length=self.block_length,
                                         fit_intercept=fit_intercept, standardize=self.standardize,
                                         tol=self.tol)
        m = design.features_per_unit
        keep = result.selected.reshape(design.n_units, m).any(axis=1)
        score = result.probability.reshape(design.n_units, m).max(axis=1)
        row = dict(alpha=np.nan, alpha_max=np.nan, lasso_support=int(keep.sum()), dual_gap=np.nan,
                   n_iter=0, kept_by_tiebreak=0, stability_q=result.n_selected,
                   stability_threshold=result.threshold,
                   expected_false_bound=result.expected_false_bound)
        return UnitDecision(keep, score, row)


#: The causal rules by name.
RULES = {rule.name: rule for rule in (Rank, Zero, Significance, Stability)}


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
