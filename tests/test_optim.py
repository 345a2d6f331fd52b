"""Optimizers and learning-rate schedules per phase of Algorithm 1."""

import numpy as np
import pytest
import torch
from torch import nn

from granger_prune import (Magnitude, OptimizerSpec, Schedule, SGDConfig, TrainingConfig, TrajectoryRecorder,
                           prunable_parameters, pretrain, prune_and_retrain)
from granger_prune.exceptions import GrangerPruneWarning
from granger_prune.study import StudyConfig, resolve_study
from granger_prune.training.algorithm import minibatches, train_epochs
from granger_prune.zoo import MLP
from granger_prune.zoo.datasets import digits


def learning_rates(spec, steps_per_epoch=5, n_epochs=4):
    model = nn.Linear(3, 2)
    optimizer, scheduler = TrainingConfig(optimizer=spec).build(model, "pre", steps_per_epoch, n_epochs)
    rates = []
    for _ in range(steps_per_epoch * n_epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return np.array(rates)


def test_each_schedule_follows_its_formula_over_the_phase():
    np.testing.assert_array_equal(learning_rates(OptimizerSpec(lr=0.1)), np.full(20, 0.1))
    step = learning_rates(OptimizerSpec(lr=0.1, schedule="step", step_epochs=2, gamma=0.5))
    np.testing.assert_allclose(step, np.repeat([0.1, 0.05], 10), rtol=1e-12)
    cosine = learning_rates(OptimizerSpec(lr=0.1, schedule="cosine", final_lr=0.001))
    t = np.arange(20)
    np.testing.assert_allclose(cosine, 0.001 + (0.1 - 0.001) * (1 + np.cos(np.pi * t / 20)) / 2, rtol=1e-9)
    cycle = learning_rates(OptimizerSpec(lr=0.1, schedule="one_cycle", final_lr=0.001, warmup=0.25))
    assert cycle[0] == pytest.approx(0.1 / 25) and cycle.max() == pytest.approx(0.1)
    assert np.argmax(cycle) == 4  # the peak after a quarter of the 20 steps
    assert cycle[-1] == pytest.approx(0.001, rel=0.05)  # annealed to final_lr at the last step


def test_optimizer_specs_build_the_torch_optimizers_and_validate():
    model = nn.Linear(3, 2)
    sgd = OptimizerSpec(momentum=0.9, nesterov=True).optimizer(model.parameters())
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] is True
    adamw = OptimizerSpec("adamw", lr=1e-3, weight_decay=0.01, betas=[0.8, 0.99]).optimizer(model.parameters())
    assert isinstance(adamw, torch.optim.AdamW) and adamw.defaults["betas"] == (0.8, 0.99)
    assert isinstance(OptimizerSpec("adam").optimizer(model.parameters()), torch.optim.Adam)
    for bad, name in ((dict(algorithm="lion"), "algorithm"), (dict(lr=0), "lr"), (dict(momentum=1.0), "momentum"),
                      (dict(schedule="linear"), "schedule"), (dict(betas=(0.9,)), "betas"),
                      (dict(algorithm="adam", nesterov=True), "nesterov"), (dict(warmup=1.0), "warmup")):
        with pytest.raises(ValueError, match=name):
            OptimizerSpec(**bad)
    with pytest.raises(ValueError, match="post"):
        TrainingConfig(post="adam")
    # phases fall back to the shared optimizer; a factory callable stands for a spec
    config = TrainingConfig(optimizer=OptimizerSpec(lr=0.2), post=lambda p: torch.optim.Adam(p, lr=1e-4))
    assert config.phase("pre").lr == 0.2 and config.phase("prune").lr == 0.2
    optimizer, scheduler = config.build(model, "post", 3, 2)
    assert isinstance(optimizer, torch.optim.Adam) and scheduler is None


def test_sgd_config_is_plain_constant_sgd_in_every_phase():
    data = digits()
    schedule = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1)
    plain = SGDConfig(lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=64)
    spelled = TrainingConfig(batch_size=64, optimizer=OptimizerSpec(lr=0.05, momentum=0.9, weight_decay=1e-4))
    results = []
    for config in (plain, spelled):
        torch.manual_seed(0)
        model = MLP(64, (16,), 10)
        state = pretrain(model, data, schedule, config, seed=0)
        results.append(prune_and_retrain(model, data, Magnitude(), 0.5, schedule=schedule, sgd=config, seed=0,
                                         pretrained_state=state))
        results[-1].state = {k: v.clone() for k, v in model.state_dict().items()}
    assert results[0].accuracy == results[1].accuracy and results[0].loss == results[1].loss
    assert all(torch.equal(results[0].state[k], results[1].state[k]) for k in results[0].state)


def tiny_algorithm_1(config, method):
    """Pre-train and one pruning round of a small MLP on digits at 50 % sparsity."""
    data = digits()
    schedule = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1)
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    state = pretrain(model, data, schedule, config, seed=0)
    result = prune_and_retrain(model, data, method, 0.5, schedule=schedule, sgd=config, seed=0,
                               pretrained_state=state)
    assert result.accuracy > 0.5 and result.sparsity == pytest.approx(0.5, abs=2e-3)
    return data, model, state, result


def test_adamw_with_a_cosine_schedule_in_algorithm_1_and_a_warning_when_recording_it():
    config = TrainingConfig(batch_size=64, optimizer=OptimizerSpec("adamw", lr=1e-3, schedule="cosine"),
                            pre=OptimizerSpec(lr=0.05))
    data, model, _, _ = tiny_algorithm_1(config, Magnitude())
    # the recorder records AdamW's real steps, with their step sizes, and says the design approximates
    optimizer, scheduler = config.build(model, "prune", len(minibatches(data, config, 0)), 1)
    recorder = TrajectoryRecorder(model, prunable_parameters(model))
    with pytest.warns(GrangerPruneWarning) as caught:
        train_epochs(model, minibatches(data, config, 0), optimizer, 1, recorder=recorder, scheduler=scheduler)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2  # each said once in the round
    assert messages[0].startswith("recording AdamW steps: the Granger designs are derived for SGD")
    assert messages[1].startswith("the learning rate changes within the recorded steps (0.001 at the first")
    steps = recorder.trajectory.n_steps
    assert steps == len(recorder.step_sizes) == len(minibatches(data, config, 0))
    assert recorder.step_sizes[0] == pytest.approx(1e-3) and recorder.step_sizes[-1] < recorder.step_sizes[0]


def test_a_study_trains_with_the_optimizers_of_its_training_table():
    raw = StudyConfig.from_toml(resolve_study("digits_phase_shift")).to_dict()
    raw.pop("sgd")
    raw["training"] = {"batch_size": 16, "optimizer": {"algorithm": "sgd", "lr": 0.1, "schedule": "cosine",
                                                       "final_lr": 0.001},
                       "post": {"algorithm": "adamw", "lr": 1e-3}}
    config = StudyConfig.from_dict(raw)
    assert config.optimization.phase("prune") == OptimizerSpec(lr=0.1, schedule="cosine", final_lr=0.001)
    assert config.optimization.phase("post").algorithm == "adamw"
    assert StudyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="not both"):
        StudyConfig.from_dict(dict(raw, sgd={"lr": 0.2}))
    with pytest.raises(ValueError, match="momentun"):
        StudyConfig.from_dict(dict(raw, training={"optimizer": {"momentun": 0.9}}))


def test_review_edges_numpy_numbers_schedules_and_loaders():
    assert OptimizerSpec(lr=np.float32(0.05), step_epochs=np.int64(2)).lr == np.float32(0.05)
    SGDConfig(lr=np.float32(0.05), momentum=np.float32(0.9)).make(nn.Linear(2, 2))  # NumPy numbers train
    with pytest.raises(ValueError, match="final_lr must be below lr"):
        OptimizerSpec(lr=0.01, schedule="cosine", final_lr=0.1)
    # a schedule inside a recorded round: the recorder says the design assumes one step size
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    optimizer, scheduler = TrainingConfig(optimizer=OptimizerSpec(lr=0.1, schedule="cosine")).build(
        model, "prune", 4, 1)
    recorder = TrajectoryRecorder(model, prunable_parameters(model))
    batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(4)]
    with pytest.warns(GrangerPruneWarning, match="learning rate changes within the recorded steps"):
        train_epochs(model, batches, optimizer, 1, recorder=recorder, scheduler=scheduler)
    # training batches need a len(); a missing test loader fails before any training
    from granger_prune import DataLoaders

    class NoLength:
        def __iter__(self):
            return iter(batches)

    data = digits()
    with pytest.raises(ValueError, match="need a len"):
        prune_and_retrain(MLP(4, (3,), 3), DataLoaders(train=NoLength(), test=batches), Magnitude(), 0.5,
                          schedule=Schedule(n_iter=1, n_prune=1, n_post=0), sgd=SGDConfig(), seed=0,
                          pretrained_state=MLP(4, (3,), 3).state_dict())
    with pytest.raises(ValueError, match="no test loader"):
        prune_and_retrain(MLP(64, (3,), 10), DataLoaders(train=[(data.x_train, data.y_train)]), Magnitude(), 0.5,
                          schedule=Schedule(n_iter=1, n_prune=1, n_post=0), sgd=SGDConfig(), seed=0,
                          pretrained_state=MLP(64, (3,), 10).state_dict())
    # building DataLoaders draws nothing from torch's random state (a shuffling loader is not iterated)
    from torch.utils.data import DataLoader, TensorDataset
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    DataLoaders(train=DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=8, shuffle=True))
    assert torch.equal(torch.rand(1), expected)


def test_a_training_study_writes_only_its_training_table():
    raw = StudyConfig.from_toml(resolve_study("digits_phase_shift")).to_dict()
    raw.pop("sgd")
    raw["training"] = {"batch_size": 16}
    config = StudyConfig.from_dict(raw)
    written = config.to_dict()
    assert "sgd" not in written and written["training"]["batch_size"] == 16
    assert StudyConfig.from_dict(written) == config
    assert StudyConfig.from_dict(dict(raw, sgd={"lr": 0.05})).training is not None  # the default [sgd]: fine
    with pytest.raises(ValueError, match="training must be a TrainingConfig"):
        StudyConfig(training="adamw")


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_through_algorithm_1(precision):
    from granger_prune import Causal
    config = TrainingConfig(batch_size=64, optimizer=OptimizerSpec(lr=0.05), precision=precision)
    data, _, state, result = tiny_algorithm_1(config, Causal())
    assert (result.diagnostics["n_steps"] <= len(minibatches(data, config, 0))).all()
    with pytest.raises(ValueError, match="precision"):
        TrainingConfig(precision="float8")
    # the half-precision forward passes change the training: not the full-precision weights
    torch.manual_seed(0)
    full = MLP(64, (16,), 10)
    full_state = pretrain(full, data, Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1),
                          TrainingConfig(batch_size=64, optimizer=OptimizerSpec(lr=0.05)), seed=0)
    assert any(not torch.equal(full_state[k], state[k]) for k in state)
