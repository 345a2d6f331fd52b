import subprocess
import sys

import numpy as np
import pytest

from granger_prune.design import loss_changes, vanilla_design
from granger_prune.trajectory import InMemoryTrajectory


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
    np.testing.assert_array_equal(design.feature_tensor, [0] * 6 + [1] * 4)
    np.testing.assert_array_equal(design.feature_index, list(range(6)) + list(range(4)))


def test_alive_mask_drops_columns_and_maps_back():
    traj = make_trajectory()
    alive = {"a": np.array([[True, False, True], [False, True, True]]), "b": np.ones(4, bool)}
    design = vanilla_design(traj, ["a"], alive=alive, restricted="none")
    assert design.n_features == 4 and not design.fit_intercept and design.Z.shape == (6, 0)
    np.testing.assert_array_equal(design.feature_index, [0, 2, 4, 5])
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


def test_statistical_core_never_imports_torch_or_cupy():
    code = ("import sys, granger_prune, granger_prune.design, granger_prune.lasso, "
            "granger_prune.selection, granger_prune.masks, granger_prune.backend, granger_prune.stats; "
            "bad = [m for m in ('torch', 'cupy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
