"""Tests of granger_prune.lasso: scikit-learn's Lasso as reference, optimality conditions."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning as SklearnConvergenceWarning
from sklearn.linear_model import Lasso
from sklearn.utils.estimator_checks import parametrize_with_checks

from granger_prune.exceptions import ConvergenceWarning
from granger_prune.lasso import (
    CausalLasso,
    WorkingSetCD,
    LassoResult,
    alpha_max,
    duality_gap,
    lasso_coordinate_descent,
    primal_objective,
    soft_threshold,
)

from _tolerances import reduction_atol

EPS = np.finfo(np.float64).eps


def trajectory_problem(n_samples=100, n_features=300, seed=0, n_causal=15, noise=0.3):
    """Granger design resembling an SGD trajectory.

    ``X[t, k] = (dtheta_k^t)^2`` with a decaying step size and a few shared
    factors (strongly correlated, non-negative columns) and log-normal
    per-parameter scales; ``y = X @ gamma + noise`` with a sparse negative
    ``gamma`` (a step along the gradient lowers the loss).
    """
    rng = np.random.default_rng(seed)
    step = 1.0 / (1.0 + np.arange(n_samples) / (n_samples / 4))
    shared = rng.standard_normal((n_samples, 4)) @ rng.standard_normal((4, n_features)) / 2.0
    scale = rng.lognormal(mean=0.0, sigma=1.0, size=n_features)
    own = rng.standard_normal((n_samples, n_features))
    dtheta = step[:, None] * scale[None, :] * (0.8 * shared + 0.6 * own)
    X = dtheta**2
    gamma = np.zeros(n_features)
    causal = rng.choice(n_features, n_causal, replace=False)
    gamma[causal] = -rng.uniform(0.5, 2.0, n_causal)
    signal = X @ gamma
    y = signal + noise * np.std(signal) * rng.standard_normal(n_samples)
    return X, y


@pytest.fixture(scope="module")
def problem():
    return trajectory_problem()


def _centred(X, y, fit_intercept):
    if fit_intercept:
        return X - X.mean(axis=0), y - y.mean()
    return X, y


# ----------------------------------------------------------------------------
# scikit-learn estimator contract
# ----------------------------------------------------------------------------


@parametrize_with_checks([CausalLasso()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------
# reference: sklearn.linear_model.Lasso
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("rho", [0.5, 0.1, 0.01])
def test_matches_sklearn_lasso(problem, rho, fit_intercept):
    X, y = problem
    alpha = rho * alpha_max(X, y, fit_intercept=fit_intercept)
    ref = Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-10, max_iter=100000).fit(X, y)
    ours = CausalLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-10).fit(X, y)

    obj_ref = primal_objective(X, y, ref.coef_, alpha, intercept=ref.intercept_)
    obj_ours = primal_objective(X, y, ours.coef_, alpha, intercept=ours.intercept_)
    assert_allclose(obj_ours, obj_ref, rtol=1e-6)
    assert obj_ours <= obj_ref * (1 + 1e-9)

    scale = np.max(np.abs(ref.coef_))
    assert_allclose(ours.coef_, ref.coef_, rtol=1e-3, atol=1e-3 * scale)
    assert_array_equal(ours.support_, ref.coef_ != 0)
    assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-4, atol=1e-6 * np.std(y))
    assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-4, atol=1e-5 * np.std(y))
    y_norm2 = np.sum(_centred(X, y, fit_intercept)[1] ** 2) / X.shape[0]
    # non-negative up to the rounding of a difference of two O(||y||^2) terms
    assert -1e-13 * y_norm2 <= ours.dual_gap_ <= 1e-10 * y_norm2


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_function_and_estimator_agree(problem, fit_intercept):
    X, y = problem
    alpha = 0.05 * alpha_max(X, y, fit_intercept=fit_intercept)
    result = lasso_coordinate_descent(X, y, alpha, fit_intercept=fit_intercept, tol=1e-8)
    est = CausalLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-8).fit(X, y)
    assert isinstance(result, LassoResult)
    w, intercept, gap, n_iter, n_passes, n_screened = result
    assert_allclose(w, est.coef_, rtol=0, atol=0)
    assert intercept == est.intercept_
    assert gap == est.dual_gap_ and n_iter == est.n_iter_ >= 1
    if not fit_intercept:
        assert intercept == 0.0
    else:
        rounding = 1e3 * EPS * (abs(y.mean()) + np.abs(X.mean(axis=0)) @ np.abs(w))
        assert_allclose(intercept, y.mean() - X.mean(axis=0) @ w, rtol=0, atol=rounding)


# ----------------------------------------------------------------------------
# alpha_max, optimality conditions, duality gap
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_alpha_max_definition(problem, fit_intercept):
    X, y = problem
    Xc, yc = _centred(X, y, fit_intercept)
    expected = np.max(np.abs(Xc.T @ yc)) / X.shape[0]
    atol = np.max(reduction_atol(Xc, yc, np.float64)) / X.shape[0]  # another summation order
    assert_allclose(alpha_max(X, y, fit_intercept=fit_intercept), expected, rtol=0, atol=atol)


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("factor", [1.0, 1.5, 100.0])
def test_alpha_at_or_above_alpha_max_gives_zero(problem, fit_intercept, factor):
    X, y = problem
    a_max = alpha_max(X, y, fit_intercept=fit_intercept)
    est = CausalLasso(alpha=factor * a_max, fit_intercept=fit_intercept).fit(X, y)
    assert np.all(est.coef_ == 0.0)
    assert not est.support_.any()
    expected_intercept = y.mean() if fit_intercept else 0.0
    assert est.intercept_ == expected_intercept  # w = 0: the intercept is mean(y) exactly
    # warm start away from zero must still end exactly at zero
    result = lasso_coordinate_descent(
        X, y, factor * a_max, fit_intercept=fit_intercept, w_init=np.ones(X.shape[1])
    )
    assert np.all(result.w == 0.0)
    # and alpha_max is the smallest such alpha (tight tol: at 0.99 * alpha_max,
    # w = 0 is within the default relative gap tolerance of 1e-4)
    below = CausalLasso(alpha=0.99 * a_max, fit_intercept=fit_intercept, tol=1e-10).fit(X, y)
    assert below.support_.sum() >= 1


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("rho", [0.3, 0.02])
def test_kkt_conditions_at_solution(problem, rho, fit_intercept):
    X, y = problem
    n = X.shape[0]
    alpha = rho * alpha_max(X, y, fit_intercept=fit_intercept)
    est = CausalLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-12).fit(X, y)
    Xc, yc = _centred(X, y, fit_intercept)
    corr = Xc.T @ (yc - Xc @ est.coef_) / n
    on = est.support_
    assert on.any() and (~on).any()
    assert np.all(np.abs(corr[~on]) <= alpha * (1 + 1e-6))
    assert_allclose(corr[on], alpha * np.sign(est.coef_[on]), rtol=1e-6, atol=0)
    # the intercept makes the residual mean zero
    residual = y - est.predict(X)
    if fit_intercept:
        assert_allclose(residual.mean(), 0.0, rtol=0, atol=1e-10 * np.std(y))


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_duality_gap_properties(problem, fit_intercept):
    X, y = problem
    n, d = X.shape
    alpha = 0.1 * alpha_max(X, y, fit_intercept=fit_intercept)
    rng = np.random.default_rng(3)
    yc = _centred(X, y, fit_intercept)[1]
    for _ in range(5):
        w = rng.standard_normal(d) * (rng.random(d) < 0.05) * 0.1
        assert duality_gap(X, y, w, alpha, fit_intercept=fit_intercept) > 0.0
    ref = Lasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-10, max_iter=100000).fit(X, y)
    gap_ref = duality_gap(X, y, ref.coef_, alpha, fit_intercept=fit_intercept)
    assert 0.0 <= gap_ref <= 1e-9 * (yc @ yc) / n
    # same gap as scikit-learn reports for its own solution
    assert_allclose(gap_ref, ref.dual_gap_, rtol=0, atol=1e-12 * (yc @ yc) / n)
    # gap at zero: P(0) - D(alpha / alpha_max * yc)
    a_max = alpha_max(X, y, fit_intercept=fit_intercept)
    s = alpha / a_max
    expected = (yc @ yc) / (2 * n) - (s * (yc @ yc) - 0.5 * s**2 * (yc @ yc)) / n
    gap_zero = duality_gap(X, y, np.zeros(d), alpha, fit_intercept=fit_intercept)
    # both sides are differences of terms of size ||yc||^2 / n: round-off ~ n eps of that
    assert_allclose(gap_zero, expected, rtol=0, atol=100 * n * EPS * (yc @ yc) / n)


def test_duality_gap_bounds_suboptimality(problem):
    X, y = problem
    alpha = 0.05 * alpha_max(X, y)
    best = CausalLasso(alpha=alpha, tol=1e-12).fit(X, y)
    p_star = primal_objective(X, y, best.coef_, alpha, intercept=best.intercept_)
    rng = np.random.default_rng(5)
    for _ in range(5):
        step = 0.05 * np.max(np.abs(best.coef_)) * rng.standard_normal(X.shape[1])
        w = best.coef_ + step * (rng.random(X.shape[1]) < 0.1)
        intercept = y.mean() - X.mean(axis=0) @ w
        sub = primal_objective(X, y, w, alpha, intercept=intercept) - p_star
        assert sub > 0.0
        assert duality_gap(X, y, w, alpha) >= sub * (1 - 1e-8)


def test_primal_objective_formula(problem):
    X, y = problem
    rng = np.random.default_rng(7)
    w = rng.standard_normal(X.shape[1])
    value = primal_objective(X, y, w, 0.3, intercept=1.5)
    expected = np.sum((y - X @ w - 1.5) ** 2) / (2 * X.shape[0]) + 0.3 * np.sum(np.abs(w))
    assert_allclose(value, expected, rtol=4 * X.shape[0] * EPS)  # a sum of T squares


def test_soft_threshold():
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    assert_array_equal(soft_threshold(x, 1.0), [-2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0])
    assert soft_threshold(2.5, 1.0) == 1.5
    assert soft_threshold(-2.5, 1.0) == -1.5
    assert soft_threshold(0.7, 1.0) == 0.0
    assert_array_equal(soft_threshold(x, 0.0), x)


# ----------------------------------------------------------------------------
# trajectory-specific behaviour
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_zero_columns_get_zero_coefficient(problem, fit_intercept):
    X, y = problem
    X = X.copy()
    pruned = np.arange(0, X.shape[1], 7)
    X[:, pruned] = 0.0
    alpha = 0.01 * alpha_max(X, y, fit_intercept=fit_intercept)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (division by zero) nor ConvergenceWarning
        est = CausalLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-10).fit(X, y)
        keep = np.setdiff1d(np.arange(X.shape[1]), pruned)
        reduced = CausalLasso(alpha=alpha, fit_intercept=fit_intercept, tol=1e-10).fit(X[:, keep], y)
    assert np.all(est.coef_[pruned] == 0.0)
    assert np.all(np.isfinite(est.coef_))
    assert est.support_.any()
    scale = np.max(np.abs(reduced.coef_))
    assert_allclose(est.coef_[keep], reduced.coef_, rtol=1e-4, atol=1e-4 * scale)


def test_constant_columns_get_zero_coefficient_with_intercept(problem):
    X, y = problem
    X = X.copy()
    X[:, :5] = 3.7  # constant: no information once centred
    alpha = 1e-3 * alpha_max(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = CausalLasso(alpha=alpha, tol=1e-8).fit(X, y)
    assert np.all(est.coef_[:5] == 0.0)
    assert np.all(np.isfinite(est.coef_)) and np.isfinite(est.intercept_)


def test_all_zero_design(problem):
    X, y = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = CausalLasso(alpha=0.0).fit(np.zeros_like(X), y)
    assert np.all(est.coef_ == 0.0)
    assert est.intercept_ == y.mean()


def test_raw_trajectory_scale(problem):
    """(dtheta)^2 is ~1e-8..1e-14: the solution must scale exactly with X."""
    X, y = problem
    c = 1e-12
    base = CausalLasso(alpha=0.05 * alpha_max(X, y), tol=1e-10).fit(X, y)
    tiny = CausalLasso(alpha=0.05 * alpha_max(c * X, y), tol=1e-10).fit(c * X, y)
    assert_array_equal(tiny.support_, base.support_)
    scale = np.max(np.abs(base.coef_))
    assert_allclose(c * tiny.coef_, base.coef_, rtol=1e-6, atol=1e-8 * scale)
    Xc, yc = _centred(X, y, True)
    atol = 2 * c * np.max(reduction_atol(Xc, yc, np.float64)) / X.shape[0]  # c * X is rounded
    assert_allclose(alpha_max(c * X, y), c * alpha_max(X, y), rtol=0, atol=atol)


def test_warm_start_at_solution_needs_no_iteration(problem):
    X, y = problem
    alpha = 0.05 * alpha_max(X, y)
    first = lasso_coordinate_descent(X, y, alpha, tol=1e-8)
    again = lasso_coordinate_descent(X, y, alpha, tol=1e-8, w_init=first.w)
    assert again.n_iter == 0
    assert_array_equal(again.w, first.w)


def test_input_not_modified(problem):
    X, y = problem
    X = X.copy()
    y = y.copy()
    X.flags.writeable = False
    y.flags.writeable = False
    X_before, y_before = X.copy(), y.copy()
    CausalLasso(alpha=0.05 * alpha_max(X, y)).fit(X, y)
    lasso_coordinate_descent(X, y, 0.05 * alpha_max(X, y))
    assert_array_equal(X, X_before)
    assert_array_equal(y, y_before)


def test_support_at_most_n_samples():
    X, y = trajectory_problem(n_samples=40, n_features=400, seed=2, n_causal=200, noise=0.01)
    est = CausalLasso(alpha=1e-4 * alpha_max(X, y), tol=1e-6, max_iter=5000).fit(X, y)
    assert 1 <= est.support_.sum() <= X.shape[0]


# ----------------------------------------------------------------------------
# errors and warnings
# ----------------------------------------------------------------------------


def test_bad_input_raises_value_error_naming_argument(problem):
    X, y = problem
    X_nan = X.copy()
    X_nan[3, 4] = np.nan
    y_inf = y.copy()
    y_inf[2] = np.inf
    with pytest.raises(ValueError, match="X"):
        CausalLasso().fit(X_nan, y)
    with pytest.raises(ValueError, match="y"):
        CausalLasso().fit(X, y_inf)
    with pytest.raises(ValueError, match="samples"):
        CausalLasso().fit(X, y[:-1])
    with pytest.raises(ValueError, match=r"alpha.*-0\.5"):
        CausalLasso(alpha=-0.5).fit(X, y)
    with pytest.raises(ValueError, match=r"tol.*0"):
        CausalLasso(tol=0.0).fit(X, y)
    with pytest.raises(ValueError, match=r"tol=-0\.001"):
        CausalLasso(tol=-1e-3).fit(X, y)
    with pytest.raises(ValueError, match=r"max_iter.*0"):
        CausalLasso(max_iter=0).fit(X, y)
    with pytest.raises(ValueError, match=r"max_iter.*-3"):
        CausalLasso(max_iter=-3).fit(X, y)
    with pytest.raises(TypeError, match="max_iter"):
        CausalLasso(max_iter=2.5).fit(X, y)


def test_solver_functions_validate_arguments(problem):
    X, y = problem
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        lasso_coordinate_descent(X_nan, y, 0.1)
    with pytest.raises(ValueError, match="samples"):
        lasso_coordinate_descent(X, y[:-2], 0.1)
    with pytest.raises(ValueError, match=r"alpha.*-1"):
        lasso_coordinate_descent(X, y, -1.0)
    with pytest.raises(ValueError, match=r"tol.*0"):
        lasso_coordinate_descent(X, y, 0.1, tol=0)
    with pytest.raises(ValueError, match=r"max_iter.*0"):
        lasso_coordinate_descent(X, y, 0.1, max_iter=0)
    with pytest.raises(ValueError, match="w_init"):
        lasso_coordinate_descent(X, y, 0.1, w_init=np.zeros(3))
    with pytest.raises(ValueError, match="w"):
        duality_gap(X, y, np.zeros(X.shape[1] + 1), 0.1)
    with pytest.raises(ValueError, match=r"alpha.*-2"):
        primal_objective(X, y, np.zeros(X.shape[1]), -2.0)
    with pytest.raises(ValueError, match="X must be 2-D"):
        alpha_max(X[0], y[:1])


def test_convergence_warning_at_max_iter(problem):
    X, y = problem
    alpha = 0.01 * alpha_max(X, y)
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        result = lasso_coordinate_descent(X, y, alpha, tol=1e-12, max_iter=1, solver=WorkingSetCD(p0=5))
    assert result.n_iter == 1
    assert result.dual_gap > 1e-12 * np.sum((y - y.mean()) ** 2) / X.shape[0]
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        est = CausalLasso(alpha=alpha, tol=1e-14, max_iter=1).fit(X, y)
    assert est.n_iter_ == 1
    # a filter set for scikit-learn's solvers silences ours too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=SklearnConvergenceWarning)
        CausalLasso(alpha=alpha, tol=1e-14, max_iter=1).fit(X, y)


def test_no_warning_when_converged(problem):
    X, y = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = CausalLasso(alpha=0.01 * alpha_max(X, y)).fit(X, y)
    assert est.dual_gap_ <= 1e-4 * np.sum((y - y.mean()) ** 2) / X.shape[0]


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_solver_follows_the_input_namespace(problem, xp, fit_intercept):
    """The same solution from NumPy and (on a GPU machine) CuPy inputs."""
    from granger_prune.backend import to_numpy

    X, y = problem
    alpha = 0.1 * alpha_max(X, y, fit_intercept=fit_intercept)
    reference = lasso_coordinate_descent(X, y, alpha, fit_intercept=fit_intercept, tol=1e-10)
    result = lasso_coordinate_descent(xp.asarray(X), xp.asarray(y), alpha,
                                      fit_intercept=fit_intercept, tol=1e-10)
    assert_allclose(to_numpy(result.w), reference.w, rtol=1e-6, atol=1e-9)
    # both are within their duality gaps of the optimum (another backend sums in another order)
    p_device = primal_objective(X, y, to_numpy(result.w), alpha, float(result.intercept))
    p_host = primal_objective(X, y, reference.w, alpha, float(reference.intercept))
    yc = y - y.mean() if fit_intercept else y
    assert abs(p_device - p_host) <= (max(result.dual_gap, reference.dual_gap)
                                      + 1e-13 * float(yc @ yc) / len(y))


def test_solver_settings_are_validated_objects(problem):
    X, y = problem
    for bad, name in ((dict(p0=0), "p0"), (dict(max_epochs=0), "max_epochs"), (dict(anderson_m=-1), "anderson_m")):
        with pytest.raises(ValueError, match=name):
            WorkingSetCD(**bad)
    with pytest.raises(TypeError, match="screening"):
        WorkingSetCD(screening="yes")
    with pytest.raises(TypeError, match="solver must be a WorkingSetCD"):
        lasso_coordinate_descent(X, y, 0.1, solver={"p0": 5})
    # the settings reach the solver: inner solves cut to one epoch need more outer iterations
    alpha = 0.05 * alpha_max(X, y)
    full = lasso_coordinate_descent(X, y, alpha, tol=1e-8)
    truncated = lasso_coordinate_descent(X, y, alpha, tol=1e-8, solver=WorkingSetCD(max_epochs=1))
    assert truncated.n_iter > 2 * full.n_iter
