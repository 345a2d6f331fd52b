"""Data sources and objectives of Algorithm 1: a user's loaders, losses and metrics."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from granger_prune import DataLoaders, Magnitude, Objective, Schedule, SGDConfig, pretrain, prune_and_retrain
from granger_prune.training import evaluate, evaluate_batches
from granger_prune.training.task import evaluation_batches, training_batches
from granger_prune.zoo import MLP
from granger_prune.zoo.datasets import digits


def test_evaluation_over_batches_is_the_size_weighted_mean():
    torch.manual_seed(0)
    model = MLP(64, (8,), 10)
    data = digits()
    x, y = data.x_test, data.y_test
    whole = evaluate(model, x, y)
    loader = DataLoader(TensorDataset(x, y), batch_size=64)  # 360 = 5 x 64 + 40
    batched = evaluate_batches(model, loader)
    # the reference from the same batches' outputs, in float64, so no BLAS kernel choice
    # for another batch shape enters: correct predictions counted, per-sample losses averaged
    model.eval()
    with torch.no_grad():
        outputs = [(model(bx), by) for bx, by in loader]
    correct = sum(int((o.argmax(dim=1) == by).sum()) for o, by in outputs)
    losses = torch.cat([nn.functional.cross_entropy(o, by, reduction="none").double() for o, by in outputs])
    # a float32 batch accuracy is one rounding (2^-25 relative) of the exact k/n
    assert batched[0] == pytest.approx(correct / len(y), abs=2.0 ** -24)
    # a float32 mean of <= 64 non-negative terms: pairwise sums, then a division, each rounded
    assert batched[1] == pytest.approx(float(losses.mean()), rel=8 * 2.0 ** -24)
    assert evaluate_batches(model, [(x, y)]) == whole  # one batch: its own means exactly
    regression = Objective(loss="mse", metric="mse")
    out = model(x).detach()
    target = torch.randn_like(out)
    metric, loss = evaluate_batches(nn.Identity(), [(out, target)], regression)
    # float32 squares of 3,600 differences summed pairwise (12 levels): within 15 roundings
    exact = float(((out.double() - target.double()) ** 2).mean())
    assert metric == loss == pytest.approx(exact, rel=15 * 2.0 ** -24)
    custom = Objective(metric=lambda o, t: float((o - t).abs().max()), metric_name="max_error", loss="mse")
    assert evaluate_batches(nn.Identity(), [(out, target)], custom)[0] == pytest.approx(
        float((out - target).abs().max()), rel=1e-6)


def test_sources_and_objectives_validate():
    data = digits()
    with pytest.raises(ValueError, match="re-iterable"):
        DataLoaders(train=iter([(data.x_train, data.y_train)]))
    with pytest.raises(ValueError, match="no validation loader"):
        evaluation_batches(DataLoaders(train=[(data.x_train, data.y_train)]), "validation")
    with pytest.raises(ValueError, match="has no validation split"):
        evaluation_batches(data, "validation")
    with pytest.raises(ValueError, match="loss"):
        Objective(loss="hinge")
    with pytest.raises(ValueError, match="metric"):
        Objective(metric="f1")
    assert Objective(metric=lambda o, t: 0.0).metric_name == "<lambda>"
    loader = [(data.x_train[:10], data.y_train[:10])]
    assert training_batches(DataLoaders(train=loader), 32, 0) is loader  # the user's own batches


def test_algorithm_1_on_dataloaders_matches_the_in_memory_source_batch_for_batch():
    """The same minibatches, given as a user's list of batches, train to the same weights."""
    data = digits()
    schedule, sgd = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1), SGDConfig(batch_size=64)
    results = []
    for source in ("memory", "loaders"):
        torch.manual_seed(0)
        model = MLP(64, (16,), 10)
        if source == "memory":
            chosen = data
        else:  # the exact batches the in-memory source draws for seed 0: pre-training and the
            # round each start a fresh generator (first order), post-training continues it
            drawn = training_batches(data, 64, 0)
            first, second = list(drawn), list(drawn)
            epochs = iter([first, first, second])

            class Epochs:  # each epoch of the run iterates the next epoch's batches
                def __iter__(self):
                    yield from next(epochs)

                def __len__(self):
                    return len(training_batches(data, 64, 0))

            chosen = DataLoaders(train=Epochs(), test=[(data.x_test, data.y_test)])
        state = pretrain(model, chosen, schedule, sgd, seed=0)
        results.append(prune_and_retrain(model, chosen, Magnitude(), 0.5, schedule=schedule, sgd=sgd, seed=0,
                                         pretrained_state=state))
    assert results[0].metric == results[1].metric and results[0].loss == results[1].loss
    assert all(np.array_equal(results[0].masks[n], results[1].masks[n]) for n in results[0].masks)
    with pytest.raises(AttributeError, match="read .metric"):
        prune_and_retrain(MLP(64, (4,), 10), DataLoaders(train=[(data.x_train, data.y_train.float())],
                                                          test=[(data.x_test, data.y_test.float())]),
                          Magnitude(), 0.5, schedule=schedule, sgd=sgd, seed=0,
                          pretrained_state=MLP(64, (4,), 10).state_dict(),
                          objective=Objective(loss=lambda o, t: ((o[:, 0] - t) ** 2).mean(),
                                              metric=lambda o, t: 0.0, metric_name="zero")).accuracy


def test_a_validation_split_is_held_out_of_the_training_data_and_reported(tmp_path):
    data = digits()
    split = data.with_validation(0.25, seed=3)
    assert len(split.y_train) + len(split.y_val) == len(data.y_train)
    assert torch.equal(split.x_test, data.x_test)
    # stratified: every class keeps its share in both parts; seeded: the same split again
    assert np.bincount(split.y_val.numpy(), minlength=10).min() > 0
    assert torch.equal(data.with_validation(0.25, seed=3).y_val, split.y_val)
    assert not torch.equal(data.with_validation(0.25, seed=4).y_val, split.y_val)
    assert data.with_validation(0.0) is data
    schedule, sgd = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1), SGDConfig(batch_size=64)
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    state = pretrain(model, split, schedule, sgd, seed=0)
    result = prune_and_retrain(model, split, Magnitude(), 0.5, schedule=schedule, sgd=sgd, seed=0,
                               pretrained_state=state)
    assert (result.val_metric, result.val_loss) == evaluate(model, split.x_val, split.y_val)
    assert (result.metric, result.loss) == evaluate(model, split.x_test, split.y_test)
    no_split = prune_and_retrain(model, data, Magnitude(), 0.5, schedule=schedule, sgd=sgd, seed=0,
                                 pretrained_state=state)
    assert np.isnan(no_split.val_metric) and np.isnan(no_split.val_loss)
    # a study reports both splits
    from granger_prune.study import StudyConfig, resolve_study, run_study
    config = StudyConfig.from_toml(resolve_study("digits_phase_shift")).with_overrides(
        ["seeds=[0]", "sparsities=[0.5]", "model_options.hidden=[8]", "schedule.n_pre=1", "schedule.n_iter=1",
         "schedule.n_prune=1", "schedule.n_post=1", "sgd.batch_size=64", 'methods=[{"name": "magnitude"}]',
         "validation_fraction=0.2", "validation_seed=1"])
    table = run_study(config, tmp_path / "run", progress=None)
    assert table["val_accuracy"].between(0, 1).all() and (table["val_loss"] > 0).all()
    assert not table["val_accuracy"].equals(table["accuracy"])
    with pytest.raises(ValueError, match="validation_fraction"):
        StudyConfig(validation_fraction=1.0)


def test_validation_of_regression_targets_and_too_small_fractions():
    from granger_prune.zoo.datasets import TensorData
    x, y = torch.randn(100, 3), torch.randn(100)
    regression = TensorData(x, y, x[:10], y[:10], n_classes=0).with_validation(0.2, seed=0)
    assert len(regression.y_val) == 20 and len(regression.y_train) == 80  # not stratified
    with pytest.raises(ValueError, match="cannot hold out a validation fraction of 0.001"):
        digits().with_validation(0.001)


@pytest.mark.gpu
def test_a_cuda_model_trains_and_evaluates_on_cpu_loaders():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    data = digits()
    torch.manual_seed(0)
    model = MLP(64, (16,), 10).cuda()
    loaders = DataLoaders(train=DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=64, shuffle=True),
                          test=DataLoader(TensorDataset(data.x_test, data.y_test), batch_size=128))
    schedule, sgd = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1), SGDConfig()
    state = pretrain(model, loaders, schedule, sgd, seed=0)
    result = prune_and_retrain(model, loaders, Magnitude(), 0.5, schedule=schedule, sgd=sgd, seed=0,
                               pretrained_state=state)
    assert result.metric > 0.5 and next(model.parameters()).is_cuda
