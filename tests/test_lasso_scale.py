"""Tests of granger_prune.lasso beyond the plain lasso of tests/test_lasso.py.

Elastic net and ``positive`` against scikit-learn, ``alpha_max``, optimality
(KKT) conditions, the duality gap, ``standardize``, warm starts, float32
designs, gap-safe screening and compaction, ``lasso_path``,
``alpha_for_support``, ``fit_shared_target``, argument errors, torch tensors
through DLPack and the NumPy / CuPy backends (the ``xp`` fixture and the
``gpu`` marker of tests/conftest.py; the CuPy cases are skipped without a GPU).

``import granger_prune`` never importing CuPy is checked by
tests/test_design.py::test_statistical_core_never_imports_torch_or_cupy.
"""

import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.linear_model import ElasticNet, Lasso

from granger_prune.backend import from_torch, get_namespace, to_numpy
from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.lasso import (
    CausalLasso,
    GridBisection,
    WorkingSetCD,
    LassoPath,
    alpha_for_support,
    alpha_max,
    duality_gap,
    enet_coordinate_descent,
    fit_shared_target,
    lasso_path,
    primal_objective,
)
from granger_prune.lasso import _operator
from granger_prune.lasso._operator import ImplicitDesign

from _tolerances import assert_same_enet_solution, reduction_atol

# Our own warnings (ConvergenceWarning above all) fail a test unless it expects them.
pytestmark = pytest.mark.filterwarnings("error::granger_prune.exceptions.GrangerPruneWarning")

TOL = 1e-10  # our relative duality-gap tolerance in the reference comparisons
EPS = np.finfo(np.float64).eps


def correlated_problem(n_samples=80, n_features=200, seed=0, n_groups=8, noise=0.3):
    """Non-negative design with groups of strongly correlated columns.

    ``X[:, j] = (0.5 u_j + s_{group(j)})^2`` with ``u``, ``s`` uniform: columns
    of one group correlate at about 0.8.  ``y = X gamma + noise`` with a sparse
    ``gamma`` of both signs.
    """
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n_features)
    shared = rng.random((n_samples, n_groups))
    X = (0.5 * rng.random((n_samples, n_features)) + shared[:, groups]) ** 2
    gamma = np.zeros(n_features)
    causal = rng.choice(n_features, 10, replace=False)
    gamma[causal] = rng.uniform(-2.0, 2.0, 10)
    y = X @ gamma + noise * rng.standard_normal(n_samples)
    return X, y


@pytest.fixture(scope="module")
def problem():
    X, y = correlated_problem()
    X.flags.writeable = False
    y.flags.writeable = False
    return X, y


@pytest.fixture(scope="module")
def positive_problem(problem):
    """The same design with a shifted target: every column correlates positively
    with ``y`` when no intercept is fitted, so ``alpha_max`` of the positive
    problem is > 0 either way, while ``gamma`` has negative entries (the
    constraint binds)."""
    X, y = problem
    y_pos = y - y.min() + 1.0
    y_pos.flags.writeable = False
    return X, y_pos


def _centred(X, y, fit_intercept):
    if fit_intercept:
        return X - X.mean(axis=0), y - y.mean()
    return X, y


def _y_norm2(y, fit_intercept):
    """``||yc||^2 / n``: the scale of the objective and of the gap tolerance."""
    yc = y - y.mean() if fit_intercept else y
    return float(yc @ yc) / y.shape[0]


def sklearn_fit(X, y, alpha, *, l1_ratio=1.0, fit_intercept=True, positive=False, tol=1e-12,
                max_iter=100_000):
    """scikit-learn's Lasso (``l1_ratio == 1``) or ElasticNet, solved tightly."""
    if l1_ratio == 1.0:
        model = Lasso(alpha=alpha, fit_intercept=fit_intercept, positive=positive, tol=tol,
                      max_iter=max_iter)
    else:
        model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                           positive=positive, tol=tol, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SklearnConvergenceWarning)
        return model.fit(X, y)


def assert_objectives_within_gaps(obj, obj_ref, gap, gap_ref, y, fit_intercept):
    """Both points are within their duality gaps of the optimum, so their
    objectives differ by at most the larger gap (plus the rounding of the gaps)."""
    assert abs(obj - obj_ref) <= max(gap, gap_ref) + 1e-13 * _y_norm2(y, fit_intercept)


def assert_same_solution(coef, intercept, ref, y, *, rtol=1e-6, atol_rel=1e-7):
    scale = max(np.max(np.abs(ref.coef_)), 1e-300)
    assert_allclose(coef, ref.coef_, rtol=rtol, atol=atol_rel * scale)
    assert_allclose(intercept, ref.intercept_, rtol=rtol, atol=atol_rel * np.std(y))


# ----------------------------------------------------------------------------
# 1. elastic net and positive against scikit-learn
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5, 0.2])
@pytest.mark.parametrize("rho", [0.5, 0.1, 0.01])
def test_elastic_net_matches_sklearn(problem, rho, l1_ratio, fit_intercept):
    X, y = problem
    alpha = rho * alpha_max(X, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio)
    ref = sklearn_fit(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept)
    assert np.count_nonzero(ref.coef_) >= 1
    est = CausalLasso(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                      tol=TOL).fit(X, y)
    result = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                                     tol=TOL)
    assert_array_equal(result.w, est.coef_)
    assert result.intercept == est.intercept_

    assert_same_solution(est.coef_, est.intercept_, ref, y)
    assert_allclose(est.predict(X), ref.predict(X), rtol=1e-7, atol=1e-7 * np.std(y))

    obj_ref = primal_objective(X, y, ref.coef_, alpha, ref.intercept_, l1_ratio=l1_ratio)
    obj = primal_objective(X, y, est.coef_, alpha, est.intercept_, l1_ratio=l1_ratio)
    assert_objectives_within_gaps(obj, obj_ref, est.dual_gap_, ref.dual_gap_, y, fit_intercept)
    y_norm2 = _y_norm2(y, fit_intercept)
    assert -1e-13 * y_norm2 <= est.dual_gap_ <= TOL * y_norm2


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
@pytest.mark.parametrize("rho", [0.5, 0.1, 0.01])
def test_positive_matches_sklearn(positive_problem, rho, l1_ratio, fit_intercept):
    X, y = positive_problem
    a_max = alpha_max(X, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio, positive=True)
    assert a_max > 0.0
    alpha = rho * a_max
    ref = sklearn_fit(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, positive=True)
    est = CausalLasso(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept, positive=True,
                      tol=TOL).fit(X, y)
    result = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                                     positive=True, tol=TOL)
    assert_array_equal(result.w, est.coef_)
    assert np.all(est.coef_ >= 0.0) and est.support_.any()
    assert_same_solution(est.coef_, est.intercept_, ref, y)
    obj_ref = primal_objective(X, y, ref.coef_, alpha, ref.intercept_, l1_ratio=l1_ratio)
    obj = primal_objective(X, y, est.coef_, alpha, est.intercept_, l1_ratio=l1_ratio)
    assert_objectives_within_gaps(obj, obj_ref, est.dual_gap_, ref.dual_gap_, y, fit_intercept)


def test_positive_constraint_binds(positive_problem):
    """The positive fits above differ from the unconstrained ones (the test is not vacuous)."""
    X, y = positive_problem
    alpha = 0.01 * alpha_max(X, y, positive=True)
    free = CausalLasso(alpha=alpha, tol=TOL).fit(X, y)
    constrained = CausalLasso(alpha=alpha, positive=True, tol=TOL).fit(X, y)
    assert np.any(free.coef_ < 0.0)
    assert np.all(constrained.coef_ >= 0.0)
    obj_free = primal_objective(X, y, free.coef_, alpha, free.intercept_)
    obj_constrained = primal_objective(X, y, constrained.coef_, alpha, constrained.intercept_)
    assert obj_constrained > obj_free * (1 + 1e-6)


# ----------------------------------------------------------------------------
# 2. alpha_max
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l1_ratio, positive",
                         [(1.0, True), (0.5, False), (0.5, True), (0.2, False)])
def test_alpha_max_is_the_zero_threshold(positive_problem, l1_ratio, positive, fit_intercept):
    X, y = positive_problem
    n, d = X.shape
    a_max = alpha_max(X, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio, positive=positive)
    Xc, yc = _centred(X, y, fit_intercept)
    corr = Xc.T @ yc / n
    expected = (corr.max() if positive else np.abs(corr).max()) / l1_ratio
    atol = np.max(reduction_atol(Xc, yc, np.float64)) / (n * l1_ratio)  # another summation order
    assert_allclose(a_max, expected, rtol=0, atol=atol)
    # the elastic net's alpha_max is the lasso's divided by l1_ratio
    lasso_max = alpha_max(X, y, fit_intercept=fit_intercept, positive=positive)
    assert_allclose(a_max * l1_ratio, lasso_max, rtol=4 * EPS)  # one division, one product

    w_init = np.random.default_rng(1).random(d)  # non-negative: valid with positive too
    for factor in (1.0, 1.01, 10.0):
        alpha = factor * a_max
        result = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio,
                                         fit_intercept=fit_intercept, positive=positive,
                                         w_init=w_init)
        assert np.all(result.w == 0.0)
        assert result.intercept == (y.mean() if fit_intercept else 0.0)  # w = 0 exactly
        est = CausalLasso(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                          positive=positive).fit(X, y)
        assert not est.support_.any()
    # scikit-learn agrees that alpha_max is the threshold
    ref_above = sklearn_fit(X, y, 1.0001 * a_max, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                            positive=positive)
    assert np.all(ref_above.coef_ == 0.0)
    # and just below it the solution is not zero
    below = enet_coordinate_descent(X, y, 0.999 * a_max, l1_ratio=l1_ratio,
                                    fit_intercept=fit_intercept, positive=positive, tol=1e-12)
    assert np.count_nonzero(below.w) >= 1
    ref_below = sklearn_fit(X, y, 0.999 * a_max, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                            positive=positive)
    assert_array_equal(below.w != 0, ref_below.coef_ != 0)


def test_warm_started_estimator_at_alpha_max_gives_zero(problem):
    X, y = problem
    a_max = alpha_max(X, y, l1_ratio=0.5)
    est = CausalLasso(alpha=0.05 * a_max, l1_ratio=0.5, warm_start=True).fit(X, y)
    assert est.support_.sum() > 1
    est.set_params(alpha=a_max).fit(X, y)
    assert np.all(est.coef_ == 0.0)
    assert est.intercept_ == y.mean()


# ----------------------------------------------------------------------------
# 3. optimality (KKT) conditions
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l1_ratio, positive", [(0.3, False), (1.0, True), (0.3, True)])
@pytest.mark.parametrize("rho", [0.3, 0.02])
def test_kkt_conditions(positive_problem, rho, l1_ratio, positive, fit_intercept):
    X, y = positive_problem
    n = X.shape[0]
    alpha = rho * alpha_max(X, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio, positive=positive)
    l1, l2 = alpha * l1_ratio, alpha * (1.0 - l1_ratio)
    result = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                                     positive=positive, tol=1e-12)
    w = result.w
    Xc, yc = _centred(X, y, fit_intercept)
    corr = Xc.T @ (yc - Xc @ w) / n
    on = w != 0
    assert on.any() and (~on).any()
    # non-zero coefficients: x_j^T r / n - l2 w_j = l1 sign(w_j)
    assert_allclose(corr[on] - l2 * w[on], l1 * np.sign(w[on]), rtol=1e-6, atol=0)
    if positive:
        assert np.all(w >= 0.0)
        assert np.all(corr[~on] <= l1 * (1 + 1e-6))
        if rho < 0.1:  # the constraint is active: some zeros would go negative without it
            assert np.any(corr[~on] < -l1)
    else:
        assert np.all(np.abs(corr[~on]) <= l1 * (1 + 1e-6))
    if fit_intercept:  # the intercept makes the residual mean zero
        residual = y - X @ w - result.intercept
        assert_allclose(residual.mean(), 0.0, rtol=0, atol=1e-10 * np.std(y))
    else:
        assert result.intercept == 0.0


# ----------------------------------------------------------------------------
# 4. duality gap against scikit-learn
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("l1_ratio, positive",
                         [(1.0, False), (0.5, False), (0.5, True), (0.2, True)])
def test_duality_gap_equals_sklearn_dual_gap(positive_problem, l1_ratio, positive, fit_intercept):
    """scikit-learn (>= 1.0) reports ``dual_gap_`` on the scale of the objective
    (its solver's gap divided by ``n_samples``), as ``duality_gap`` does."""
    X, y = positive_problem
    alpha = 0.1 * alpha_max(X, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio, positive=positive)
    y_norm2 = _y_norm2(y, fit_intercept)
    # a far-from-optimal point (3 coordinate-descent sweeps) tells the scalings apart
    loose = sklearn_fit(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                        positive=positive, max_iter=3)
    gap = duality_gap(X, y, loose.coef_, alpha, fit_intercept=fit_intercept, l1_ratio=l1_ratio,
                      positive=positive)
    assert gap > 1e-4 * y_norm2
    # differences of terms of size ||yc||^2 / n, summed in another order
    assert_allclose(gap, loose.dual_gap_, rtol=0, atol=1e-12 * y_norm2)
    # at scikit-learn's tight solution: zero up to rounding, never clearly negative
    tight = sklearn_fit(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                        positive=positive)
    gap = duality_gap(X, y, tight.coef_, alpha, fit_intercept=fit_intercept, l1_ratio=l1_ratio,
                      positive=positive)
    assert -1e-13 * y_norm2 <= gap <= 1e-10 * y_norm2
    assert_allclose(gap, tight.dual_gap_, rtol=0, atol=1e-12 * y_norm2)
    # ours at our solution, too
    result = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                                     positive=positive, tol=TOL)
    gap = duality_gap(X, y, result.w, alpha, fit_intercept=fit_intercept, l1_ratio=l1_ratio,
                      positive=positive)
    assert -1e-13 * y_norm2 <= gap <= TOL * y_norm2
    assert_allclose(gap, result.dual_gap, rtol=0, atol=1e-12 * y_norm2)
    if positive:  # infeasible points have an infinite gap
        w_neg = result.w.copy()
        w_neg[np.flatnonzero(w_neg)[0]] = -1.0
        assert duality_gap(X, y, w_neg, alpha, fit_intercept=fit_intercept, l1_ratio=l1_ratio,
                           positive=True) == np.inf


# ----------------------------------------------------------------------------
# 5. standardize
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def badly_scaled_problem(problem):
    """Columns with scales spread over four decades, and one all-zero column."""
    X, y = problem
    scales = 10.0 ** np.random.default_rng(2).uniform(-2, 2, X.shape[1])
    Xs = X * scales
    Xs[:, 7] = 0.0
    Xs.flags.writeable = False
    return Xs, y


@pytest.mark.parametrize("l1_ratio, positive, fit_intercept",
                         [(1.0, False, True), (0.5, False, False), (1.0, True, True),
                          (0.5, True, False)])
def test_standardize_equals_sklearn_on_unit_rms_columns(badly_scaled_problem, l1_ratio, positive,
                                                        fit_intercept):
    X, y = badly_scaled_problem
    if positive:
        y = y - y.min() + 1.0
    X_before = X.copy()
    rms = np.sqrt(np.mean(X**2, axis=0))
    rms[rms == 0] = 1.0
    Xu = X / rms
    alpha = 0.05 * alpha_max(Xu, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio,
                             positive=positive)
    ref = sklearn_fit(Xu, y, alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                      positive=positive)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from the zero column
        est = CausalLasso(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                          positive=positive, standardize=True, tol=TOL).fit(X, y)
    assert est.support_.sum() >= 2
    scale = np.max(np.abs(ref.coef_ / rms))
    assert_allclose(est.coef_, ref.coef_ / rms, rtol=1e-6, atol=1e-7 * scale)
    assert_allclose(est.intercept_, ref.intercept_, rtol=1e-6, atol=1e-7 * np.std(y))
    assert_allclose(est.predict(X), ref.predict(Xu), rtol=1e-7, atol=1e-7 * np.std(y))
    assert est.coef_[7] == 0.0
    # X is used as it is: not scaled in place (bitwise), and it is read-only here anyway
    assert_array_equal(X, X_before)
    # standardizing changes the answer on such a design (the option is not a no-op)
    raw_alpha = 0.05 * alpha_max(X, y, fit_intercept=fit_intercept, l1_ratio=l1_ratio,
                                 positive=positive)
    plain = CausalLasso(alpha=raw_alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
                        positive=positive, tol=TOL).fit(X, y)
    assert not np.array_equal(plain.support_, est.support_)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_standardize_std_equals_sklearn_on_standard_scaled_columns(badly_scaled_problem, fit_intercept):
    """``standardize="std"`` is scikit-learn's StandardScaler (unit variance) followed by the lasso."""
    from sklearn.preprocessing import StandardScaler

    X, y = badly_scaled_problem
    X = X + 3.0 * np.abs(X).max(axis=0)  # non-negative columns with a mean, as (dθ)² features
    X[:, 7] = 5.0  # a constant column
    scaler = StandardScaler().fit(X)
    sd = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)  # scikit-learn sets 1 for constant columns too
    Xu = X / sd
    alpha = 0.05 * alpha_max(Xu, y, fit_intercept=fit_intercept)
    ref = sklearn_fit(Xu, y, alpha, fit_intercept=fit_intercept)
    est = CausalLasso(alpha=alpha, fit_intercept=fit_intercept, standardize="std", tol=TOL).fit(X, y)
    assert est.support_.sum() >= 2
    scale = np.max(np.abs(ref.coef_ / sd))
    assert_allclose(est.coef_, ref.coef_ / sd, rtol=1e-6, atol=1e-7 * scale)
    assert_allclose(est.predict(X), ref.predict(Xu), rtol=1e-7, atol=1e-7 * np.std(y))
    with pytest.raises(ValueError, match="standardize"):
        CausalLasso(standardize="unit").fit(X, y)


def test_standardize_does_not_write_to_a_writeable_x(badly_scaled_problem):
    X, y = badly_scaled_problem
    X = X.copy()  # writeable
    X_before = X.copy()
    rms = np.sqrt(np.mean(X**2, axis=0))
    rms[rms == 0] = 1.0
    alpha = 0.05 * alpha_max(X / rms, y)
    est = CausalLasso(alpha=alpha, standardize=True, warm_start=True).fit(X, y)
    assert est.support_.any()
    est.set_params(alpha=0.5 * alpha).fit(X, y)  # the warm start is rescaled internally, not X
    CausalLasso(alpha=alpha, standardize=True).fit(X.astype(np.float32), y)
    assert_array_equal(X, X_before)


# ----------------------------------------------------------------------------
# 6. warm_start
# ----------------------------------------------------------------------------


def test_warm_start_refits_cheaply_and_to_the_same_solution(problem):
    X, y = problem
    alpha = 0.1 * alpha_max(X, y)
    est = CausalLasso(alpha=alpha, tol=TOL, warm_start=True).fit(X, y)
    cold_passes, first = est.n_passes_, est.coef_.copy()
    assert est.n_iter_ >= 1
    est.fit(X, y)  # from the solution: nothing to do
    assert est.n_iter_ == 0
    assert est.n_passes_ <= cold_passes
    assert_allclose(est.coef_, first, rtol=0, atol=1e-9 * np.max(np.abs(first)))
    # a nearby alpha: warm start from the previous solution beats a cold start
    est.set_params(alpha=0.8 * alpha).fit(X, y)
    cold = CausalLasso(alpha=0.8 * alpha, tol=TOL).fit(X, y)
    assert est.n_passes_ <= cold.n_passes_
    assert_allclose(est.coef_, cold.coef_, rtol=1e-6, atol=1e-7 * np.max(np.abs(cold.coef_)))


def test_warm_start_ignores_coef_of_other_width(problem):
    X, y = problem
    alpha = 0.1 * alpha_max(X, y)
    est = CausalLasso(alpha=alpha, tol=TOL, warm_start=True).fit(X, y)
    narrow = X[:, :150]
    est.fit(narrow, y)
    cold = CausalLasso(alpha=alpha, tol=TOL).fit(narrow, y)
    assert est.coef_.shape == (150,) and est.n_features_in_ == 150
    assert_array_equal(est.coef_, cold.coef_)
    assert est.n_iter_ == cold.n_iter_ and est.n_passes_ == cold.n_passes_


def test_without_warm_start_a_refit_starts_cold(problem):
    X, y = problem
    alpha = 0.1 * alpha_max(X, y)
    est = CausalLasso(alpha=alpha, tol=1e-6).fit(X, y)
    est.set_params(alpha=0.5 * alpha).fit(X, y)
    fresh = CausalLasso(alpha=0.5 * alpha, tol=1e-6).fit(X, y)
    assert_array_equal(est.coef_, fresh.coef_)
    assert est.n_iter_ == fresh.n_iter_


def test_warm_start_on_a_column_that_became_zero(problem):
    """A pruned parameter's column becomes zero; its old coefficient must go."""
    X, y = problem
    alpha = 0.05 * alpha_max(X, y)
    est = CausalLasso(alpha=alpha, warm_start=True).fit(X, y)
    j = int(np.flatnonzero(est.coef_)[0])
    pruned = X.copy()
    pruned[:, j] = 0.0
    est.fit(pruned, y)  # ConvergenceWarning is an error here
    assert est.coef_[j] == 0.0


# ----------------------------------------------------------------------------
# 7. float32 designs
# ----------------------------------------------------------------------------


def test_float32_design_matches_float64(problem):
    X, y = problem
    X32 = X.astype(np.float32)
    alpha = 0.1 * alpha_max(X, y)
    ref = CausalLasso(alpha=alpha, tol=TOL).fit(X, y)
    est = CausalLasso(alpha=alpha, tol=1e-7).fit(X32, y)
    scale = np.max(np.abs(ref.coef_))
    # coef_ keeps the design's dtype, as scikit-learn's Lasso does; the solver's own
    # result (below) is float64
    assert est.coef_.dtype == sklearn_fit(X32, y, alpha).coef_.dtype == np.float32
    assert_allclose(est.coef_, ref.coef_, rtol=1e-4, atol=1e-4 * scale)
    assert_allclose(est.intercept_, ref.intercept_, rtol=1e-4, atol=1e-4 * np.std(y))
    # against the float64 fit of the very same (float32-rounded) data: much closer
    same = CausalLasso(alpha=alpha, tol=TOL).fit(X32.astype(np.float64), y)
    assert_allclose(est.coef_, same.coef_, rtol=1e-5, atol=1e-6 * scale)
    # the function accepts float32 too
    result = enet_coordinate_descent(X32, y, alpha, l1_ratio=0.5, tol=1e-7)
    ref_enet = enet_coordinate_descent(X, y, alpha, l1_ratio=0.5, tol=TOL)
    assert result.w.dtype == np.float64
    assert_allclose(result.w, ref_enet.w, rtol=1e-4, atol=1e-4 * np.max(np.abs(ref_enet.w)))


def test_float32_design_is_not_copied_to_float64():
    rng = np.random.default_rng(0)
    X32 = (rng.random((4000, 500)) ** 2).astype(np.float32)  # 8 MB; a float64 copy is 16 MB
    y = X32[:, :5].astype(np.float64) @ np.ones(5) + 0.1 * rng.standard_normal(4000)
    alpha = 0.1 * alpha_max(X32, y)
    tracemalloc.start()
    try:
        est = CausalLasso(alpha=alpha, tol=1e-6).fit(X32, y)
        result = enet_coordinate_descent(X32, y, alpha, tol=1e-6)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert est.support_.any()
    assert_array_equal(result.w.astype(np.float32), est.coef_)  # coef_ in X's dtype
    assert peak < X32.nbytes, f"peak allocation {peak / 1e6:.1f} MB: X was copied"


def test_float32_passes_accumulate_in_float64():
    rng = np.random.default_rng(0)
    X32 = (1.0 + rng.random((5000, 50))).astype(np.float32)
    X64 = X32.astype(np.float64)
    v = rng.random(5000)
    # float32 accumulation over 5000 rows is off by ~1e-6; blocks added in float64 are not
    assert_allclose(ImplicitDesign(X32, None, None, np).rmatvec(v), X64.T @ v, rtol=2e-7)
    mean = X64.mean(axis=0)
    assert_allclose(ImplicitDesign(X32, mean, None, np).rmatvec(v), (X64 - mean).T @ v,
                    rtol=0, atol=2e-7 * np.max(np.abs(X64.T @ v)))
    # the screening norms are a safe (upper) bound, and a tight one
    exact = np.sum((X64 - mean) ** 2, axis=0)
    bound = ImplicitDesign(X32, mean, None, np).column_sq_norms()
    assert np.all(bound >= exact)
    assert_allclose(bound, exact, rtol=2e-5 * np.max(np.sum(X64**2, axis=0) / exact))


def test_float32_design_converges_at_the_documented_tolerance(problem):
    """float32 gaps are accurate to ~1e-8 relative (solver docstring): tol=1e-7 converges."""
    X, y = problem
    X32 = X.astype(np.float32)
    alpha = 0.5 * alpha_max(X, y)
    result = enet_coordinate_descent(X32, y, alpha, tol=1e-7, max_iter=50)
    assert duality_gap(X32.astype(np.float64), y, result.w, alpha) <= 1e-7 * _y_norm2(y, True)
    assert result.n_iter < 50


# ----------------------------------------------------------------------------
# 8. gap-safe screening
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("l1_ratio, positive", [(1.0, False), (0.5, False), (1.0, True)])
@pytest.mark.parametrize("rho", [0.5, 0.1, 0.01])
def test_screening_is_safe(positive_problem, rho, l1_ratio, positive):
    X, y = positive_problem
    alpha = rho * alpha_max(X, y, l1_ratio=l1_ratio, positive=positive)
    screened = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, positive=positive, tol=TOL)
    plain = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, positive=positive, tol=TOL,
                                    solver=WorkingSetCD(screening=False))
    scale = np.max(np.abs(plain.w))
    assert_allclose(screened.w, plain.w, rtol=0, atol=1e-9 * scale)
    assert plain.n_screened == 0
    assert screened.n_screened > 0
    # screened features are zero at the solution: no more of them than zeros
    ref = sklearn_fit(X, y, alpha, l1_ratio=l1_ratio, positive=positive)
    assert screened.n_screened <= np.count_nonzero(ref.coef_ == 0)
    assert_allclose(screened.w, ref.coef_, rtol=1e-6, atol=1e-7 * np.max(np.abs(ref.coef_)))


@pytest.fixture(scope="module")
def wide_problem():
    X, y = correlated_problem(n_samples=80, n_features=5000, seed=1)
    X.flags.writeable = False
    return X, y - y.min() + 1.0


@pytest.mark.parametrize("l1_ratio, positive", [(1.0, False), (0.5, False), (1.0, True)])
def test_compaction_keeps_the_solution(wide_problem, monkeypatch, l1_ratio, positive):
    X, y = wide_problem
    d = X.shape[1]
    kept = []
    take = ImplicitDesign.take

    def recording_take(self, index):
        kept.append(to_numpy(index).copy())
        return take(self, index)

    monkeypatch.setattr(_operator.ImplicitDesign, "take", recording_take)
    alpha = 0.2 * alpha_max(X, y, l1_ratio=l1_ratio, positive=positive)
    result = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, positive=positive, tol=TOL)
    assert len(kept) >= 1, "no compaction happened"
    assert kept[0].size <= d // 8
    dropped = np.setdiff1d(np.arange(d), kept[0])
    assert result.n_screened >= dropped.size
    ref = sklearn_fit(X, y, alpha, l1_ratio=l1_ratio, positive=positive)
    assert np.all(ref.coef_[dropped] == 0.0)  # only features zero at the solution were dropped
    assert np.all(result.w[dropped] == 0.0)
    assert_allclose(result.w, ref.coef_, rtol=1e-6, atol=1e-7 * np.max(np.abs(ref.coef_)))
    assert_allclose(result.intercept, ref.intercept_, rtol=1e-6, atol=1e-7 * np.std(y))
    plain = enet_coordinate_descent(X, y, alpha, l1_ratio=l1_ratio, positive=positive, tol=TOL,
                                    solver=WorkingSetCD(screening=False))
    assert_allclose(result.w, plain.w, rtol=0, atol=1e-9 * np.max(np.abs(plain.w)))


def test_compaction_of_a_float32_design(wide_problem):
    X, y = wide_problem
    X32 = X.astype(np.float32)
    alpha = 0.2 * alpha_max(X32, y)
    result = enet_coordinate_descent(X32, y, alpha, tol=1e-7)
    plain = enet_coordinate_descent(X32, y, alpha, tol=1e-7, solver=WorkingSetCD(screening=False))
    assert result.n_screened > X.shape[1] * 7 // 8
    assert_allclose(result.w, plain.w, rtol=0, atol=1e-5 * np.max(np.abs(plain.w)))


# ----------------------------------------------------------------------------
# 9. lasso_path
# ----------------------------------------------------------------------------


FRAME_COLUMNS = ["alpha", "alpha_ratio", "n_support", "dual_gap", "n_iter", "n_passes"]


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_lasso_path_matches_sklearn(problem, fit_intercept):
    X, y = problem
    n_alphas, eps = 15, 1e-2
    path = lasso_path(X, y, n_alphas=n_alphas, eps=eps, fit_intercept=fit_intercept, tol=TOL)
    assert isinstance(path, LassoPath)
    a_max = alpha_max(X, y, fit_intercept=fit_intercept)
    assert path.alpha_max == a_max  # the same computation
    assert_allclose(path.alphas, a_max * np.geomspace(1.0, eps, n_alphas), rtol=1e-12)
    assert np.all(np.diff(path.alphas) < 0)
    assert_allclose(path.alphas[1:] / path.alphas[:-1], eps ** (1 / (n_alphas - 1)), rtol=1e-12)
    assert path.coefs.shape == (X.shape[1], n_alphas)
    assert np.all(path.coef(0) == 0.0) and path.n_support[0] == 0
    assert path.n_support[-1] > 5
    for i in (1, 5, n_alphas - 1):
        ref = sklearn_fit(X, y, path.alphas[i], fit_intercept=fit_intercept)
        assert_same_solution(path.coef(i), path.intercepts[i], ref, y)
    y_norm2 = _y_norm2(y, fit_intercept)
    assert np.all(path.dual_gaps <= TOL * y_norm2) and np.all(path.dual_gaps >= -1e-13 * y_norm2)

    frame = path.to_frame()
    assert list(frame.columns) == FRAME_COLUMNS
    assert len(frame) == n_alphas
    assert_allclose(frame["alpha_ratio"], np.geomspace(1.0, eps, n_alphas), rtol=1e-12)
    dense = path.coefs.toarray()
    assert_array_equal(frame["n_support"], np.count_nonzero(dense, axis=0))
    assert_array_equal(frame["n_iter"], path.n_iters)

    no_rule = lasso_path(X, y, n_alphas=n_alphas, eps=eps, fit_intercept=fit_intercept, tol=TOL,
                         solver=WorkingSetCD(strong_rule=False))
    assert_array_equal(no_rule.alphas, path.alphas)
    assert_allclose(no_rule.coefs.toarray(), dense, rtol=0, atol=1e-7 * np.max(np.abs(dense)))


def test_elastic_net_and_positive_paths(positive_problem):
    X, y = positive_problem
    path = lasso_path(X, y, l1_ratio=0.5, positive=True, n_alphas=8, eps=1e-2, tol=TOL)
    assert path.l1_ratio == 0.5
    assert path.alpha_max == alpha_max(X, y, l1_ratio=0.5, positive=True)  # the same computation
    assert np.all(path.coefs.toarray() >= 0.0)
    for i in (3, 7):
        ref = sklearn_fit(X, y, path.alphas[i], l1_ratio=0.5, positive=True)
        assert_same_solution(path.coef(i), path.intercepts[i], ref, y)


def test_lasso_path_with_explicit_alphas(problem):
    X, y = problem
    a_max = alpha_max(X, y)
    given = np.array([0.1, 0.5, 0.02, 2.0]) * a_max
    path = lasso_path(X, y, alphas=given, tol=TOL)
    assert_array_equal(path.alphas, np.sort(given)[::-1])
    assert np.all(path.coef(0) == 0.0)  # 2 * alpha_max
    for i, alpha in enumerate(path.alphas):
        single = enet_coordinate_descent(X, y, alpha, tol=TOL)
        scale = max(np.max(np.abs(single.w)), 1e-300)
        assert_allclose(path.coef(i), single.w, rtol=0, atol=1e-7 * scale)
    # a list and a column are accepted too
    as_list = lasso_path(X, y, alphas=list(given), tol=TOL)
    assert_array_equal(as_list.alphas, path.alphas)
    column = lasso_path(X, y, alphas=given[:, None], tol=TOL)
    assert_array_equal(column.alphas, path.alphas)


@pytest.mark.parametrize("alphas", [[-0.1, 0.5], [np.nan, 0.5], [], [np.inf]])
def test_lasso_path_rejects_bad_alphas(problem, alphas):
    X, y = problem
    with pytest.raises(ValueError, match="alphas"):
        lasso_path(X, y, alphas=alphas)


def test_lasso_path_rejects_bad_grid(problem):
    X, y = problem
    with pytest.raises(ValueError, match="n_alphas"):
        lasso_path(X, y, n_alphas=0)
    with pytest.raises(ValueError, match="eps"):
        lasso_path(X, y, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        lasso_path(X, y, eps=1.5)
    with pytest.raises(ValueError, match="l1_ratio"):
        lasso_path(X, y, l1_ratio=0.0)


# ----------------------------------------------------------------------------
# 10. alpha_for_support
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 3, 8, 20])
def test_alpha_for_support(problem, k):
    X, y = problem
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        search = alpha_for_support(X, y, k)
    ours = [w for w in record if issubclass(w.category, GrangerPruneWarning)]
    assert search.n_support >= k
    if search.n_support == k:
        assert not ours
    else:
        assert any("exactly" in str(w.message) for w in ours)
    assert search.n_support == np.count_nonzero(to_numpy(search.result.w))
    assert 0 < search.alpha < alpha_max(X, y)
    assert search.n_fits >= 1
    assert search == (search.alpha, search.n_support, search.result, search.n_fits)
    # the returned alpha reproduces the support
    refit = enet_coordinate_descent(X, y, search.alpha, tol=1e-6)
    assert np.count_nonzero(refit.w) == search.n_support


def test_alpha_for_support_is_exact_on_this_problem(problem):
    """On this problem every k below is reached exactly (no GrangerPruneWarning)."""
    X, y = problem
    for k in (1, 2, 5, 13):
        search = alpha_for_support(X, y, k, l1_ratio=0.7)
        assert search.n_support == k
        assert np.count_nonzero(to_numpy(search.result.w)) == k
        refit = enet_coordinate_descent(X, y, search.alpha, l1_ratio=0.7, tol=1e-6)
        assert np.count_nonzero(refit.w) == k


def test_alpha_for_support_errors(problem):
    X, y = problem
    n = X.shape[0]
    with pytest.raises(ValueError, match=f"T={n}"):
        alpha_for_support(X, y, n + 1)
    with pytest.raises(ValueError, match="n_features=5"):
        alpha_for_support(X[:, :5], y, 6)
    with pytest.raises(ValueError, match="k"):
        alpha_for_support(X, y, 0)
    with pytest.raises(TypeError, match="k"):
        alpha_for_support(X, y, 2.5)
    with pytest.raises(ValueError, match="grid_ratio"):
        GridBisection(grid_ratio=1.5)


def test_alpha_for_support_when_alpha_max_is_zero(problem):
    X, y = problem
    y_neg = -X @ np.ones(X.shape[1])  # no column correlates positively with y
    assert alpha_max(X, y_neg, fit_intercept=False, positive=True) == 0.0
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        search = alpha_for_support(X, y_neg, 1, fit_intercept=False, positive=True)
    # documented: a SupportLimitWarning when the support stops short of k
    assert any(issubclass(w.category, GrangerPruneWarning) for w in record)
    assert search.n_support == 0


# ----------------------------------------------------------------------------
# 11. fit_shared_target
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layers(problem):
    X, y = problem
    rng = np.random.default_rng(4)
    X2 = rng.random((X.shape[0], 120)) ** 2
    X2[:, :3] += X[:, :3]  # some signal in the second layer too
    return [X, X2], y


def test_fit_shared_target_equals_individual_fits(layers):
    designs, y = layers
    out = fit_shared_target(designs, y, alpha_ratio=0.1, l1_ratio=0.5, tol=1e-8)
    assert len(out) == 2
    for (result, a_max), X in zip(out, designs):
        # n_jobs=1 promises bit-for-bit the single fits (the same calls in the same thread)
        assert a_max == alpha_max(X, y, l1_ratio=0.5)
        single = enet_coordinate_descent(X, y, 0.1 * a_max, l1_ratio=0.5, tol=1e-8)
        assert result.w.shape == (X.shape[1],)
        assert np.count_nonzero(single.w) >= 1
        assert_array_equal(result.w, single.w)
        assert result.intercept == single.intercept
    threaded = fit_shared_target(designs, y, alpha_ratio=0.1, l1_ratio=0.5, tol=1e-8, n_jobs=2)
    for (a, a_max), (b, b_max), X in zip(out, threaded, designs):
        # threads run BLAS single-threaded: another summation order, so the two agree as
        # far as their duality gaps allow
        assert_allclose(b_max, a_max, rtol=0,
                        atol=np.max(reduction_atol(X - X.mean(0), y - y.mean(), np.float64)) / len(y))
        assert_same_enet_solution(X, y, a, b, 0.1 * a_max, l1_ratio=0.5)
        assert a.dual_gap <= 1e-8 * np.var(y) and b.dual_gap <= 1e-8 * np.var(y)


def test_each_shared_target_fit_runs_on_its_designs_device_and_own_stream():
    """A worker thread starts on CUDA device 0: the fit enters its design's device, then
    a stream created there (a stand-in for CuPy records the order)."""
    from types import SimpleNamespace

    from granger_prune.lasso.batch import _own_stream

    entered = []

    class Device:
        def __init__(self, index):
            self.index = index

        def __enter__(self):
            entered.append(("device", self.index))

        def __exit__(self, *exc):
            entered.append(("left", self.index))

    class Stream:
        def __init__(self, non_blocking):
            entered.append(("stream", non_blocking))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    fake = SimpleNamespace(__name__="cupy", cuda=SimpleNamespace(Device=Device, Stream=Stream))
    with _own_stream(fake, SimpleNamespace(device=Device(2))):
        entered.append(("fit",))
    assert entered == [("device", 2), ("stream", True), ("fit",), ("left", 2)]
    entered.clear()
    with _own_stream(fake, np.zeros(3)):  # no CuPy device: the current one, a stream on it
        pass
    assert entered == [("stream", True)]
    with _own_stream(np, np.zeros(3)):  # the host: nothing
        pass
    assert entered == [("stream", True)]


def test_fit_shared_target_with_alphas(layers):
    designs, y = layers
    alphas = [0.05 * alpha_max(designs[0], y), 0.2 * alpha_max(designs[1], y)]
    out = fit_shared_target(designs, y, alpha=alphas, tol=1e-8, positive=True, fit_intercept=False)
    for (result, _), X, alpha in zip(out, designs, alphas):
        single = enet_coordinate_descent(X, y, alpha, tol=1e-8, positive=True, fit_intercept=False)
        assert_array_equal(result.w, single.w)  # n_jobs=1: bit-for-bit the single fit
        assert result.intercept == 0.0 and np.all(result.w >= 0)
    # one alpha for all
    shared = fit_shared_target(designs, y, alpha=alphas[0], tol=1e-8)
    for (result, _), X in zip(shared, designs):
        single = enet_coordinate_descent(X, y, alphas[0], tol=1e-8)
        assert_array_equal(result.w, single.w)  # n_jobs=1: bit-for-bit the single fit


def test_fit_shared_target_errors(layers):
    designs, y = layers
    with pytest.raises(ValueError, match="exactly one of alpha and alpha_ratio"):
        fit_shared_target(designs, y, alpha=0.1, alpha_ratio=0.1)
    with pytest.raises(ValueError, match="exactly one of alpha and alpha_ratio"):
        fit_shared_target(designs, y)
    with pytest.raises(ValueError, match="empty"):
        fit_shared_target([], y, alpha_ratio=0.1)
    with pytest.raises(ValueError, match="alpha has 1 values for 2 designs"):
        fit_shared_target(designs, y, alpha=[0.1])
    with pytest.raises(ValueError, match="alpha_ratio"):
        fit_shared_target(designs, y, alpha_ratio=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        fit_shared_target(designs, y, alpha=[0.1, -0.1])
    with pytest.raises(ValueError, match="samples"):
        fit_shared_target([designs[0], designs[1][:-1]], y, alpha_ratio=0.1)
    with pytest.raises(ValueError, match="n_jobs"):
        fit_shared_target(designs, y, alpha_ratio=0.1, n_jobs=0)


# ----------------------------------------------------------------------------
# 12. input errors name the culprit
# ----------------------------------------------------------------------------


def test_enet_coordinate_descent_input_errors(problem):
    X, y = problem
    d = X.shape[1]
    X_nan = X.copy()
    X_nan[5, 9] = np.nan
    y_inf = y.copy()
    y_inf[3] = np.inf
    with pytest.raises(ValueError, match="X contains NaN"):
        enet_coordinate_descent(X_nan, y, 0.1, l1_ratio=0.5)
    with pytest.raises(ValueError, match="X contains NaN"):
        enet_coordinate_descent(X_nan.astype(np.float32), y, 0.1)
    with pytest.raises(ValueError, match="y contains NaN or infinity"):
        enet_coordinate_descent(X, y_inf, 0.1, l1_ratio=0.5)
    with pytest.raises(ValueError, match=r"lengths.*X.shape=\(80, 200\), y.shape=\(79,\)"):
        enet_coordinate_descent(X, y[:-1], 0.1)
    with pytest.raises(ValueError, match=r"alpha.*-0\.1"):
        enet_coordinate_descent(X, y, -0.1, l1_ratio=0.5)
    with pytest.raises(ValueError, match="alpha"):
        enet_coordinate_descent(X, y, np.nan)
    for bad in (0.0, 1.5, -0.2):
        with pytest.raises(ValueError, match=f"l1_ratio={bad!r}"):
            enet_coordinate_descent(X, y, 0.1, l1_ratio=bad)
    w_neg = np.zeros(d)
    w_neg[2] = -1.0
    with pytest.raises(ValueError, match="w_init.*negative"):
        enet_coordinate_descent(X, y, 0.1, positive=True, w_init=w_neg)
    with pytest.raises(ValueError, match="w_init"):
        enet_coordinate_descent(X, y, 0.1, w_init=np.full(d, np.nan))
    scale = np.ones(d)
    scale[4] = 0.0
    with pytest.raises(ValueError, match="column_scale"):
        enet_coordinate_descent(X, y, 0.1, column_scale=scale)
    with pytest.raises(ValueError, match="column_scale"):
        enet_coordinate_descent(X, y, 0.1, column_scale=-np.ones(d))
    with pytest.raises(ValueError, match="column_scale"):
        enet_coordinate_descent(X, y, 0.1, column_scale=np.ones(d - 1))
    with pytest.raises(TypeError, match="positive"):
        enet_coordinate_descent(X, y, 0.1, positive="yes")


def test_causal_lasso_input_errors(problem):
    X, y = problem
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="l1_ratio"):
            CausalLasso(l1_ratio=bad).fit(X, y)
    X_nan = X.astype(np.float32)
    X_nan[1, 1] = np.nan
    with pytest.raises(ValueError, match="X"):
        CausalLasso().fit(X_nan, y)
    y_inf = y.copy()
    y_inf[0] = -np.inf
    with pytest.raises(ValueError, match="y"):
        CausalLasso(l1_ratio=0.5).fit(X.astype(np.float32), y_inf)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples|lengths"):
        CausalLasso(l1_ratio=0.5).fit(X, y[:-3])
    with pytest.raises(ValueError, match="alpha"):
        CausalLasso(alpha=-1.0, l1_ratio=0.5).fit(X, y)
    with pytest.raises(TypeError, match="standardize"):
        CausalLasso(standardize=1).fit(X, y)
    with pytest.raises(ValueError, match="l1_ratio"):
        alpha_max(X, y, l1_ratio=0.0)


# ----------------------------------------------------------------------------
# 13. torch tensors through DLPack
# ----------------------------------------------------------------------------


def test_from_torch_cpu_tensor_shares_memory():
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    arr = from_torch(t)
    assert isinstance(arr, np.ndarray)
    assert arr.shape == (3, 4) and arr.dtype == np.float64
    assert arr.ctypes.data == t.data_ptr()
    t[1, 2] = 42.0
    assert arr[1, 2] == 42.0
    # a tensor that requires grad is detached, still without a copy
    g = torch.ones(5, dtype=torch.float32, requires_grad=True)
    arr_g = from_torch(g)
    assert arr_g.dtype == np.float32 and arr_g.ctypes.data == g.data_ptr()
    with torch.no_grad():
        g[0] = 3.0
    assert arr_g[0] == 3.0
    # a non-contiguous view keeps its strides
    view = from_torch(t.T)
    assert_array_equal(view, t.numpy().T)
    assert np.shares_memory(view, arr)


def test_from_torch_rejects_other_devices():
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="meta"):
        from_torch(torch.empty(3, device="meta"))


def test_causal_lasso_on_torch_tensors(problem):
    torch = pytest.importorskip("torch")
    X, y = problem
    alpha = 0.1 * alpha_max(X, y)
    ref = CausalLasso(alpha=alpha, tol=1e-8).fit(X, y)
    tX, ty = torch.tensor(X), torch.tensor(y)
    est = CausalLasso(alpha=alpha, tol=1e-8).fit(tX, ty)
    assert_array_equal(est.coef_, ref.coef_)
    assert est.intercept_ == ref.intercept_
    assert_array_equal(est.predict(tX), ref.predict(X))
    # requires_grad and float32 tensors
    tX32 = torch.tensor(X, dtype=torch.float32, requires_grad=True)
    est32 = CausalLasso(alpha=alpha, tol=1e-7).fit(tX32, ty)
    ref32 = CausalLasso(alpha=alpha, tol=1e-7).fit(X.astype(np.float32), y)
    assert_array_equal(est32.coef_, ref32.coef_)
    assert_allclose(est32.coef_, ref.coef_, rtol=1e-4, atol=1e-4 * np.max(np.abs(ref.coef_)))
    assert tX32.grad is None


@pytest.mark.gpu
def test_from_torch_cuda_tensor_is_a_cupy_view(problem):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch was built without CUDA")
    import cupy

    t = torch.arange(12, dtype=torch.float64, device="cuda").reshape(3, 4)
    arr = from_torch(t)
    assert isinstance(arr, cupy.ndarray)
    assert arr.shape == (3, 4) and arr.dtype == cupy.float64
    assert arr.data.ptr == t.data_ptr()
    t[1, 2] = 42.0
    torch.cuda.synchronize()
    assert float(arr[1, 2]) == 42.0
    g = torch.ones(4, dtype=torch.float32, device="cuda", requires_grad=True)
    arr_g = from_torch(g)
    assert isinstance(arr_g, cupy.ndarray) and arr_g.data.ptr == g.data_ptr()

    X, y = problem
    alpha = 0.1 * alpha_max(X, y)
    ref = CausalLasso(alpha=alpha, tol=1e-10).fit(X, y)
    tX, ty = torch.tensor(X, device="cuda"), torch.tensor(y, device="cuda")
    est = CausalLasso(alpha=alpha, tol=1e-10).fit(tX, ty)
    assert isinstance(est.coef_, np.ndarray)
    assert_allclose(est.coef_, ref.coef_, rtol=1e-6, atol=1e-9 * np.max(np.abs(ref.coef_)))
    pred = est.predict(tX)
    assert isinstance(pred, cupy.ndarray)
    assert_allclose(cupy.asnumpy(pred), ref.predict(X), rtol=1e-7, atol=1e-7 * np.std(y))


# ----------------------------------------------------------------------------
# 14. NumPy and CuPy give the same solutions
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("l1_ratio, positive", [(0.5, False), (1.0, True)])
def test_enet_same_on_every_backend(positive_problem, xp, dtype, l1_ratio, positive):
    X, y = positive_problem
    X_host = X.astype(dtype)
    X_exact = X_host.astype(np.float64)  # the very data the backends see, in float64
    is64 = dtype == "float64"
    tol = TOL if is64 else 1e-6  # float32 gaps are only good to ~1e-8 (solver docstring)
    a_max = alpha_max(X_host, y, l1_ratio=l1_ratio, positive=positive)
    alpha = 0.1 * a_max
    reference = enet_coordinate_descent(X_host, y, alpha, l1_ratio=l1_ratio, positive=positive,
                                        tol=tol)
    Xd, yd = xp.asarray(X_host), xp.asarray(y)
    assert Xd.dtype == X_host.dtype
    # the device sums the same products in another order (float32: in float32 blocks)
    atol = np.max(reduction_atol(X_exact - X_exact.mean(0), y - y.mean(), dtype)) / len(y) / l1_ratio
    assert_allclose(alpha_max(Xd, yd, l1_ratio=l1_ratio, positive=positive), a_max, rtol=0,
                    atol=atol)
    result = enet_coordinate_descent(Xd, yd, alpha, l1_ratio=l1_ratio, positive=positive, tol=tol)
    assert get_namespace(result.w) is xp
    assert result.w.dtype == xp.float64
    w = to_numpy(result.w)
    assert np.all(w >= 0) or not positive
    scale = np.max(np.abs(reference.w))
    assert_allclose(w, reference.w, rtol=1e-6, atol=(1e-9 if is64 else 1e-4) * scale)
    assert_allclose(result.intercept, reference.intercept, rtol=1e-6,
                    atol=(1e-7 if is64 else 1e-4) * np.std(y))
    # suboptimality <= gap <= tol ||yc||^2 / n, against a tight float64 solve of the same data
    best = enet_coordinate_descent(X_exact, y, alpha, l1_ratio=l1_ratio, positive=positive,
                                   tol=1e-12)
    p_star = primal_objective(X_exact, y, best.w, alpha, best.intercept, l1_ratio=l1_ratio)
    p = primal_objective(X_exact, y, w, alpha, result.intercept, l1_ratio=l1_ratio)
    y_norm2 = _y_norm2(y, True)
    slack = 0.01 * tol if is64 else 1e-7  # the float32 gap itself is off by ~1e-8
    assert p_star - 1e-12 * y_norm2 <= p <= p_star + (tol + slack) * y_norm2
    gap = duality_gap(Xd, yd, result.w, alpha, l1_ratio=l1_ratio, positive=positive)
    assert isinstance(gap, float)
    # (a float32 X rounds the residual to float32 in the pass: ~1e-8 relative)
    assert gap == pytest.approx(duality_gap(X_exact, y, w, alpha, l1_ratio=l1_ratio,
                                            positive=positive),
                                rel=1e-6, abs=(1e-12 if is64 else 1e-7) * y_norm2)


def test_path_and_estimator_same_on_every_backend(problem, xp):
    X, y = problem
    Xd, yd = xp.asarray(X), xp.asarray(y)
    path = lasso_path(X, y, n_alphas=6, eps=1e-2, tol=TOL)
    path_d = lasso_path(Xd, yd, n_alphas=6, eps=1e-2, tol=TOL)
    a_max_rtol = np.max(reduction_atol(X - X.mean(0), y - y.mean(), X.dtype)) / len(y) / path.alpha_max
    assert_allclose(path_d.alphas, path.alphas, rtol=a_max_rtol)  # alpha_max summed in another order
    dense, dense_d = path.coefs.toarray(), path_d.coefs.toarray()
    scale = np.max(np.abs(dense))
    assert_allclose(dense_d, dense, rtol=1e-6, atol=1e-9 * scale)
    # same supports, up to coefficients at the rounding level
    assert_array_equal(np.abs(dense_d) > 1e-6 * scale, np.abs(dense) > 1e-6 * scale)

    alpha = path.alphas[3]
    est = CausalLasso(alpha=alpha, tol=TOL, standardize=True).fit(X, y)
    est_d = CausalLasso(alpha=alpha, tol=TOL, standardize=True).fit(Xd, yd)
    assert isinstance(est_d.coef_, np.ndarray) and est_d.n_features_in_ == X.shape[1]
    assert_allclose(est_d.coef_, est.coef_, rtol=1e-6, atol=1e-9 * np.max(np.abs(est.coef_)))
    pred = est_d.predict(Xd)
    assert get_namespace(pred) is xp
    assert_allclose(to_numpy(pred), est.predict(X), rtol=1e-6, atol=1e-7 * np.std(y))

    search = alpha_for_support(X, y, 5)
    search_d = alpha_for_support(Xd, yd, 5)
    assert search_d.n_support == search.n_support == 5
    assert search_d.alpha == pytest.approx(search.alpha, rel=1e-6)

    designs = [X, X[:, ::2].copy()]
    out = fit_shared_target(designs, y, alpha_ratio=0.1, tol=1e-8)
    out_d = fit_shared_target([xp.asarray(D) for D in designs], yd, alpha_ratio=0.1, tol=1e-8,
                              n_jobs=2)
    for (a, a_max), (b, b_max), D in zip(out, out_d, designs):
        atol = np.max(reduction_atol(D - D.mean(0), y - y.mean(), D.dtype)) / len(y)
        assert_allclose(b_max, a_max, rtol=0, atol=atol)
        assert_allclose(to_numpy(b.w), a.w, rtol=1e-6, atol=1e-9 * np.max(np.abs(a.w)))


@pytest.mark.gpu
def test_mixed_namespaces_are_refused(problem):
    import cupy

    X, y = problem
    with pytest.raises(TypeError, match="mix NumPy and CuPy"):
        enet_coordinate_descent(cupy.asarray(X), y, 0.1)
    with pytest.raises(TypeError, match="mix NumPy and CuPy"):
        CausalLasso(alpha=0.1).fit(cupy.asarray(X), y)
