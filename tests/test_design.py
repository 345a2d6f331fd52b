
import numpy as np
import pytest

from granger_prune.design.granger import granger_design, loss_changes, momentum_design, vanilla_design
from granger_prune.record.trajectory import InMemoryTrajectory


def make_trajectory(n_steps=6, seed=0):
    rng = np.random.default_rng(seed)
    traj = InMemoryTrajectory({"a": (2, 3), "b": (4,)})
    for _ in range(n_steps):
        before = rng.uniform(1, 2)
        traj.append(before, before - rng.uniform(0, 0.1),
                    {"a": rng.normal(size=(2, 3)) * 1e-3, "b": rng.normal(size=4) * 1e-2})
    return traj


def test_vanilla_design_is_loss_change_on_squared_steps():
    traj = make_trajectory()
    design = vanilla_design(traj)
    before, after = traj.losses()
    np.testing.assert_allclose(design.y, after - before, rtol=1e-15)
    expected = np.hstack([traj.deltas("a").astype(np.float64) ** 2,
                          traj.deltas("b").astype(np.float64) ** 2])
    np.testing.assert_allclose(design.X, expected, rtol=1e-15)
    assert design.fit_intercept and design.Z.shape == (6, 1)
    assert design.tensor_names == ("a", "b")
    assert design.n_units == 10 and design.restricted_names == ("const",)
    np.testing.assert_array_equal(design.unit_map["a"], np.arange(6))
    np.testing.assert_array_equal(design.unit_map["b"], np.arange(6, 10))
    np.testing.assert_array_equal(design.rows, np.arange(6))


def test_alive_mask_drops_columns_and_maps_back():
    traj = make_trajectory()
    alive = {"a": np.array([[True, False, True], [False, True, True]]), "b": np.ones(4, bool)}
    design = vanilla_design(traj, ["a"], alive=alive, restricted="none")
    assert design.n_features == 4 and not design.fit_intercept and design.Z.shape == (6, 0)
    np.testing.assert_array_equal(design.unit_map["a"], [0, -1, 1, -1, 2, 3])
    np.testing.assert_allclose(design.X[:, 1], traj.deltas("a")[:, 2].astype(np.float64) ** 2, rtol=1e-15)
    back = design.to_tensors(np.arange(1.0, 5.0))
    np.testing.assert_array_equal(back["a"], [[1, 0, 2], [0, 3, 4]])


def test_column_scale_gives_unit_rms_and_layer_scale_one_factor():
    traj = make_trajectory(20)
    raw = vanilla_design(traj)
    column = vanilla_design(traj, scale="column")
    layer = vanilla_design(traj, scale="layer")
    np.testing.assert_allclose(np.sqrt(np.mean(column.X ** 2, axis=0)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(column.X * column.column_scale, raw.X, rtol=1e-12)
    assert np.unique(layer.column_scale).size == 1
    np.testing.assert_allclose(np.sqrt(np.mean(layer.X ** 2)), 1.0, rtol=1e-12)


def test_consecutive_loss_changes():
    before = np.array([3.0, 2.5, 2.4, 2.0])
    y = loss_changes(before, np.full(4, np.nan), "consecutive")
    np.testing.assert_allclose(y, [-0.5, -0.1, -0.4], rtol=1e-12)
    with pytest.raises(ValueError, match="not finite"):
        loss_changes(before, np.full(4, np.nan), "same_batch")


def test_bad_design_input():
    with pytest.raises(ValueError, match="n_steps=2"):
        vanilla_design(make_trajectory(2))
    traj = make_trajectory()
    with pytest.raises(ValueError, match="'c'"):
        vanilla_design(traj, ["c"])
    with pytest.raises(ValueError, match="scale"):
        vanilla_design(traj, scale="unit")
    with pytest.raises(ValueError, match="restricted"):
        vanilla_design(traj, restricted="lags")
    with pytest.raises(ValueError, match="no alive parameters"):
        vanilla_design(traj, ["b"], alive={"b": np.zeros(4, bool)})
    with pytest.raises(ValueError, match="shape"):
        vanilla_design(traj, ["b"], alive={"b": np.ones(5, bool)})


def tiny_trajectory():
    """Two parameters, five steps with hand-picked values."""
    traj = InMemoryTrajectory({"w": (2,)})
    steps = [(1.0, 2.0), (-1.0, 0.5), (2.0, -1.0), (0.5, 0.0), (-2.0, 1.0)]
    before = [5.0, 4.0, 3.5, 3.0, 2.0]
    for t, (a, b) in enumerate(steps):
        traj.append(before[t], before[t] - 0.1 * (t + 1), {"w": np.array([a, b])})
    return traj, np.array(steps), np.array(before)


def test_momentum_features_and_lagged_losses_by_hand():
    traj, steps, before = tiny_trajectory()
    design = momentum_design(traj)  # lags=2: rows t = 1..4
    np.testing.assert_array_equal(design.rows, [1, 2, 3, 4])
    assert design.restricted_names == ("const", "loss_lag1", "loss_lag2")
    assert design.feature_kinds == ("dtheta_sq", "dtheta_prev_sq", "dtheta_cross")
    expected = []
    for t in range(1, 5):
        row = []
        for k in range(2):
            cur, prev = steps[t, k], steps[t - 1, k]
            row += [cur * cur, prev * prev, cur * prev]
        expected.append(row)
    np.testing.assert_allclose(design.X, expected, rtol=1e-6)  # float32 storage of the steps
    np.testing.assert_allclose(design.Z, [[1, before[t], before[t - 1]] for t in range(1, 5)],
                               rtol=1e-15)
    np.testing.assert_allclose(design.y, [-0.2, -0.3, -0.4, -0.5], rtol=1e-12)
    np.testing.assert_array_equal(design.column_unit, [0, 0, 0, 1, 1, 1])
    np.testing.assert_allclose(design.unit_norms([3.0, 4.0, 0.0, 0.0, 0.0, 1.0]), [5.0, 1.0],
                               rtol=1e-15)


def test_lag_depth_sets_the_first_row_and_too_deep_lags_fail():
    traj, _, before = tiny_trajectory()
    design = vanilla_design(traj, lags=3, restricted="none")
    np.testing.assert_array_equal(design.rows, [2, 3, 4])
    np.testing.assert_allclose(design.Z[:, 2], before[[0, 1, 2]], rtol=1e-15)
    assert design.restricted_names == ("loss_lag1", "loss_lag2", "loss_lag3")
    with pytest.raises(ValueError, match=r"n_steps=5.*lags=4"):
        vanilla_design(traj, lags=4)
    with pytest.raises(ValueError, match="lags"):
        vanilla_design(traj, lags=-1)
    with pytest.raises(ValueError, match="features"):
        granger_design(traj, features="adam")
    with pytest.raises(ValueError, match="lags"):
        vanilla_design(traj, lags=True)
    with pytest.raises(ValueError, match="twice"):
        vanilla_design(traj, ["w", "w"])
    with pytest.raises(ValueError, match="string"):
        vanilla_design(traj, "w")


def test_group_features_are_the_sums_of_their_members():
    traj = make_trajectory(8)
    # filters: rows of "a" (2 groups of 3) and "b" shared with them pairwise (ids 0, 0, 1, 1)
    groups = {"a": np.array([[0, 0, 0], [1, 1, 1]]), "b": np.array([0, 0, 1, 1])}
    alive = {"a": np.array([[True, False, True], [True, True, True]]), "b": np.ones(4, bool)}
    for features in ("vanilla", "momentum"):
        design = granger_design(traj, features=features, groups=groups, alive=alive)
        per_param = granger_design(traj, features=features, alive=alive)
        m = design.features_per_unit
        assert design.n_units == 2 and design.n_features == 2 * m
        member_units = [np.r_[per_param.unit_map["a"][[0, 2]], per_param.unit_map["b"][[0, 1]]],
                        np.r_[per_param.unit_map["a"][[3, 4, 5]], per_param.unit_map["b"][[2, 3]]]]
        for g, members in enumerate(member_units):
            for i in range(m):
                parts = per_param.X[:, members * m + i]  # momentum cross terms may cancel
                np.testing.assert_allclose(design.X[:, g * m + i], parts.sum(axis=1), rtol=0,
                                           atol=np.abs(parts).sum(axis=1).max() * len(members) * 2e-16)
    back = design.to_tensors(np.array([7.0, 9.0]))
    np.testing.assert_array_equal(back["a"], [[7, 0, 7], [9, 9, 9]])
    np.testing.assert_array_equal(back["b"], [7, 7, 9, 9])
    sums = design.unit_sums({"a": np.ones((2, 3)), "b": np.ones(4)})
    np.testing.assert_array_equal(sums, [4, 5])  # dead members do not count


def test_bad_group_maps():
    traj = make_trajectory()
    with pytest.raises(ValueError, match="does not cover tensor 'b'"):
        granger_design(traj, groups={"a": np.zeros((2, 3), int)})
    with pytest.raises(ValueError, match=r"groups\['b'\]"):
        granger_design(traj, groups={"a": np.zeros((2, 3), int), "b": np.zeros(5, int)})
    with pytest.raises(ValueError, match="negative"):
        granger_design(traj, groups={"a": np.zeros((2, 3), int), "b": -np.ones(4, int)})


def test_partialled_design_gives_the_unpenalised_restricted_fit():
    traj = make_trajectory(30, seed=3)
    design = vanilla_design(traj, ["b"], lags=2)
    X, y, fit_intercept = design.partialled()
    assert not fit_intercept
    # zero up to the rounding of a least-squares fit, relative to the columns' own size
    rounding = 1e3 * np.finfo(float).eps * np.linalg.cond(design.Z)
    assert np.all(np.abs(design.Z.T @ X) <= rounding * (np.abs(design.Z).T @ np.abs(design.X)))
    full = np.linalg.lstsq(np.hstack([design.Z, design.X]), design.y, rcond=None)[0]
    fwl = np.linalg.lstsq(X, y, rcond=None)[0]
    np.testing.assert_allclose(fwl, full[design.Z.shape[1]:], rtol=1e-6)
    only_intercept = vanilla_design(traj, ["b"])
    assert only_intercept.partialled()[0] is only_intercept.X
