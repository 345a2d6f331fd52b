"""Recorded step sizes and gradient norms, and the schedule-aware design that divides by them."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from granger_prune.design import DesignSpec, granger_design
from granger_prune.record.recorder import TrajectoryRecorder
from granger_prune.record.trajectory import InMemoryTrajectory


def record_two_groups(n_steps=12, momentum=0.0, seed=0):
    """A two-layer net, SGD with a different rate per layer under a step schedule."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 1))
    params = {"0.weight": model[0].weight, "2.weight": model[2].weight}
    optimizer = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.1},
                                 {"params": model[2].parameters(), "lr": 0.02}], momentum=momentum)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    recorder = TrajectoryRecorder(model, params)
    grads = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rate changes within the recording, on purpose
        for _ in range(n_steps):
            recorder.step(optimizer, nn.functional.mse_loss, torch.randn(16, 5), torch.randn(16, 1))
            grads.append({n: p.grad.detach().double().clone() for n, p in params.items()})
            schedule.step()
    return recorder.trajectory, grads


def test_recorder_keeps_each_groups_rate_and_the_gradient_norm():
    traj, grads = record_two_groups()
    schedule = 0.5 ** (np.arange(12) // 4)
    np.testing.assert_array_equal(traj.step_sizes("0.weight"), 0.1 * schedule)
    np.testing.assert_array_equal(traj.step_sizes("2.weight"), 0.02 * schedule)
    expected = [np.sqrt(sum(float((g ** 2).sum()) for g in step.values())) for step in grads]
    # each tensor's norm is a float32 reduction (relative error below ~log2(n) eps32 = 1e-6)
    np.testing.assert_allclose(traj.grad_norms(), expected, rtol=1e-6)
    # plain SGD: Δθ = -η g, so Δθ / η is the gradient (up to float32 rounding of Δθ)
    for t in (0, 5, 11):
        np.testing.assert_allclose(traj.deltas("0.weight")[t] / traj.step_sizes("0.weight")[t],
                                   -grads[t]["0.weight"].numpy().ravel(), rtol=1e-4, atol=1e-6)


def test_divided_design_is_the_loss_rate_on_squared_gradients():
    traj, _ = record_two_groups()
    plain = granger_design(traj, ["0.weight"])
    divided = DesignSpec(step_size="divide").build(traj, ["0.weight"])
    eta = traj.step_sizes("0.weight")
    np.testing.assert_allclose(divided.y, plain.y / eta, rtol=1e-15)
    np.testing.assert_allclose(divided.X, plain.X / eta[:, None] ** 2, rtol=1e-12)
    # momentum features: the previous step is divided by its own rate
    traj, _ = record_two_groups(momentum=0.9)
    eta = traj.step_sizes("0.weight")
    d = traj.deltas("0.weight").astype(np.float64)
    design = granger_design(traj, ["0.weight"], features="momentum", step_size="divide")
    current, previous = d[1:] / eta[1:, None], d[:-1] / eta[:-1, None]
    np.testing.assert_allclose(design.X[:, 0::3], current ** 2, rtol=1e-12)
    np.testing.assert_allclose(design.X[:, 1::3], previous ** 2, rtol=1e-12)
    np.testing.assert_allclose(design.X[:, 2::3], current * previous, rtol=1e-12)


def test_divided_design_needs_one_known_rate_per_step():
    traj, _ = record_two_groups()
    with pytest.raises(ValueError, match="different rates"):
        granger_design(traj, step_size="divide")  # both layers in one problem
    unknown = InMemoryTrajectory({"w": (3,)})
    for _ in range(5):
        unknown.append(1.0, 0.9, {"w": np.ones(3)})
    assert np.isnan(unknown.step_sizes("w")).all() and np.isnan(unknown.grad_norms()).all()
    with pytest.raises(ValueError, match="positive learning rate"):
        granger_design(unknown, step_size="divide")
    with pytest.raises(ValueError, match="step_size"):
        DesignSpec(step_size="lr")
