import numpy as np
import pytest
import torch
from torch import nn

from granger_prune.exceptions import GrangerPruneWarning, NonFiniteLossError
from granger_prune.network.pruning import prunable_parameters
from granger_prune.record import buffer as buffer_module
from granger_prune.record.recorder import TrajectoryRecorder, optimizer_step
from granger_prune.record.trajectory import InMemoryTrajectory


def mse(pred, target):
    return ((pred - target) ** 2).mean()


def tiny_linear(w):
    model = nn.Linear(2, 1, bias=False, dtype=torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w).reshape(1, 2))
    return model


X = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]], dtype=torch.float64)
Y = torch.tensor([[1.0], [0.0], [2.0]], dtype=torch.float64)


def loss_and_grad(w):
    """Hand-computed mean squared error of x @ w and its gradient."""
    r = X.numpy() @ w - Y.numpy()[:, 0]
    return float(np.mean(r ** 2)), 2 * X.numpy().T @ r / len(r)


def test_plain_sgd_records_hand_computed_losses_and_deltas():
    w0 = np.array([0.3, -0.2])
    model = tiny_linear(w0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = TrajectoryRecorder(model, {"weight": model.weight})
    loss = recorder.step(optimizer, mse, X, Y)

    loss0, g0 = loss_and_grad(w0)
    w1 = w0 - 0.1 * g0
    loss1, _ = loss_and_grad(w1)
    before, after = recorder.trajectory.losses()
    assert loss == pytest.approx(loss0, rel=1e-12)
    np.testing.assert_allclose(before, [loss0], rtol=1e-12)
    np.testing.assert_allclose(after, [loss1], rtol=1e-12)
    np.testing.assert_allclose(recorder.trajectory.deltas("weight")[0], w1 - w0, rtol=1e-6)


def test_momentum_records_the_optimizers_real_steps():
    w0 = np.array([0.3, -0.2])
    model = tiny_linear(w0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    recorder = TrajectoryRecorder(model, {"weight": model.weight})
    recorder.step(optimizer, mse, X, Y)
    recorder.step(optimizer, mse, X, Y)

    _, g0 = loss_and_grad(w0)
    w1 = w0 - 0.1 * g0
    _, g1 = loss_and_grad(w1)
    w2 = w1 - 0.1 * (0.9 * g0 + g1)
    deltas = recorder.trajectory.deltas("weight")
    np.testing.assert_allclose(deltas[0], w1 - w0, rtol=1e-6)
    np.testing.assert_allclose(deltas[1], w2 - w1, rtol=1e-6)
    assert recorder.trajectory.n_steps == 2


class NoisyNet(nn.Module):
    """Dropout and BatchNorm: the after-step pass must not disturb either."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 12), nn.BatchNorm1d(12), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Linear(12, 3))

    def forward(self, x):
        return self.body(x)


def train_noisy(record):
    torch.manual_seed(0)
    model = NoisyNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    data = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    target = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(2))
    recorder = TrajectoryRecorder(model, prunable_parameters(model)) if record else None
    for start in range(0, 40, 8):
        x, y = data[start:start + 8], target[start:start + 8]
        if record:
            recorder.step(optimizer, nn.functional.cross_entropy, x, y)
        else:
            optimizer_step(model, optimizer, nn.functional.cross_entropy, x, y)
    return model, recorder, torch.get_rng_state()


def test_recording_leaves_training_bit_identical():
    plain, _, plain_rng = train_noisy(record=False)
    recorded, recorder, recorded_rng = train_noisy(record=True)
    assert recorder.trajectory.n_steps == 5
    assert list(plain.state_dict()) == list(recorded.state_dict())
    for (name, a), (_, b) in zip(plain.state_dict().items(), recorded.state_dict().items()):
        assert torch.equal(a, b), name  # weights, BatchNorm running statistics and counters
    assert torch.equal(plain_rng, recorded_rng)


def test_after_step_pass_sees_the_same_dropout_mask():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-12)  # a step that barely moves
    recorder = TrajectoryRecorder(model, {"1.weight": model[1].weight})
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    recorder.step(optimizer, mse, x, y)
    before, after = recorder.trajectory.losses()
    # with another dropout mask the two losses would differ at order 1, not 1e-6
    np.testing.assert_allclose(after, before, rtol=1e-5)


def test_non_finite_loss_names_the_step():
    model = tiny_linear(np.array([0.3, -0.2]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = TrajectoryRecorder(model, {"weight": model.weight})
    recorder.step(optimizer, mse, X, Y)
    bad = Y.clone()
    bad[0] = float("nan")
    weight = model.weight.detach().clone()
    with pytest.raises(NonFiniteLossError, match="step 1"):
        recorder.step(optimizer, mse, X, bad)
    assert recorder.trajectory.n_steps == 1
    assert torch.equal(model.weight.detach(), weight)  # the bad step changed nothing


def test_non_finite_loss_after_the_step_names_the_step():
    model = tiny_linear(np.array([0.3, -0.2]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = TrajectoryRecorder(model, {"weight": model.weight})
    calls = []

    def blows_up_on_second_call(pred, target):
        calls.append(1)
        return mse(pred, target) * (1.0 if len(calls) == 1 else float("inf"))

    with pytest.raises(NonFiniteLossError, match="after step 0"):
        recorder.step(optimizer, blows_up_on_second_call, X, Y)
    assert recorder.trajectory.n_steps == 0


def test_consecutive_mode_skips_the_after_step_pass():
    model = tiny_linear(np.array([0.3, -0.2]))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    recorder = TrajectoryRecorder(model, {"weight": model.weight}, loss_change="consecutive")
    recorder.step(optimizer, mse, X, Y)
    _, after = recorder.trajectory.losses()
    assert np.isnan(after).all()


def test_bad_recorder_arguments():
    model = tiny_linear(np.array([0.3, -0.2]))
    with pytest.raises(ValueError, match="params is empty"):
        TrajectoryRecorder(model, {})
    with pytest.raises(ValueError, match="loss_change"):
        TrajectoryRecorder(model, {"weight": model.weight}, loss_change="later")


def test_in_memory_trajectory_checks_rows():
    traj = InMemoryTrajectory({"a": (2, 3)})
    with pytest.raises(ValueError, match="lacks"):
        traj.append(1.0, 0.5, {})
    with pytest.raises(ValueError, match="expected 6"):
        traj.append(1.0, 0.5, {"a": np.zeros(5)})
    traj.append(1.0, 0.5, {"a": np.arange(6.0).reshape(2, 3)})
    assert traj.deltas("a").shape == (1, 6)
    assert traj.deltas("a").dtype == np.float32
    with pytest.raises(ValueError, match="shapes is empty"):
        InMemoryTrajectory({})


def test_steps_a_grad_scaler_skips_are_not_recorded():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    params = prunable_parameters(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # at a scale near float32's largest value a loss of a few units overflows when scaled:
    # the scaler skips those steps and halves its scale until the scaled loss is finite
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)

    def loss_fn(output, target):
        return 4.0 * nn.functional.cross_entropy(output, target)

    recorder = TrajectoryRecorder(model, params, autocast_dtype=torch.bfloat16)
    x, y = torch.randn(80, 8), torch.randint(0, 3, (80,))
    taken = []
    for start in range(0, 80, 4):
        before = {n: p.detach().clone() for n, p in params.items()}
        n_before = recorder.trajectory.n_steps
        recorder.step(optimizer, loss_fn, x[start:start + 4], y[start:start + 4], scaler=scaler)
        moved = any(not torch.equal(before[n], p.detach()) for n, p in params.items())
        assert recorder.trajectory.n_steps - n_before == int(moved)  # recorded exactly when taken
        taken.append(moved)
    assert 0 < recorder.n_skipped == taken.count(False) < 20
    assert recorder.trajectory.n_steps == taken.count(True)
    assert not any(taken[:recorder.n_skipped]) and all(taken[recorder.n_skipped:])  # skips come first
    loss_before, loss_after = recorder.trajectory.losses()
    assert np.all(np.isfinite(loss_after))
    assert np.all(np.abs(recorder.trajectory.deltas("0.weight")).sum(axis=1) > 0)


def test_recorded_changes_exclude_steps_taken_outside_the_recorder_and_follow_a_new_optimizer():
    """The buffer keeps θ after every step and differences consecutive rows; a step taken
    outside the recorder, or a new optimizer, restarts the chain, so every recorded row is
    exactly the change around its own step."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2))
    params = {n: p for n, p in model.named_parameters() if p.dim() > 1}
    recorder = TrajectoryRecorder(model, params, chunk_steps=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    expected = []

    def recorded_step(opt):
        before = {n: p.detach().clone() for n, p in params.items()}
        recorder.step(opt, nn.functional.mse_loss, torch.randn(8, 5), torch.randn(8, 2))
        expected.append({n: (p.detach() - before[n]).reshape(-1).numpy() for n, p in params.items()})

    for _ in range(6):
        recorded_step(optimizer)
    optimizer_step(model, optimizer, nn.functional.mse_loss, torch.randn(8, 5), torch.randn(8, 2))
    for _ in range(3):
        recorded_step(optimizer)
    other = torch.optim.SGD(model.parameters(), lr=0.05)
    with pytest.warns(GrangerPruneWarning, match="learning rate changes"):
        for _ in range(5):
            recorded_step(other)
    assert recorder.n_steps == 14 and recorder.trajectory.n_steps == 14
    for name in params:
        np.testing.assert_array_equal(recorder.trajectory.deltas(name),
                                      np.stack([e[name] for e in expected]))
    np.testing.assert_array_equal(recorder.trajectory.step_sizes("0.weight")[-5:], 0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_a_block_of_steps_is_the_difference_of_its_rows_bit_for_bit(dtype):
    """The buffer's Δθ of a block: each row minus the one before (the first minus the
    parameters before the block) in the tensor's dtype, rounded to float32 once."""
    g = torch.Generator().manual_seed(0)
    blocks = [torch.randn(7, 33, generator=g).to(dtype), torch.randn(7, 5, generator=g).to(dtype)]
    before = [torch.randn(33, generator=g).to(dtype), torch.randn(5, generator=g).to(dtype)]
    for n in (1, 2, 7):
        for got, block, start in zip(buffer_module.StepBuffer._differences(blocks, before, n), blocks, before):
            rows = torch.cat([start[None], block[:n]])
            assert got.dtype == torch.float32
            assert torch.equal(got, (rows[1:] - rows[:-1]).to(torch.float32))
