import numpy as np
import pytest
import torch

from granger_prune.zoo.datasets import Minibatches, digits, load_dataset
from granger_prune.zoo.models import MLP, build_model
from granger_prune.network.pruning import prunable_parameters
from granger_prune.criteria import Causal, Magnitude, Random
from granger_prune.design import DesignSpec
from granger_prune.selection import Rank, Significance, Zero
from granger_prune.training.algorithm import Schedule, SGDConfig, evaluate, pretrain, prune_and_retrain

SGD = SGDConfig(lr=0.05, momentum=0.9, weight_decay=1e-4, batch_size=64)


@pytest.fixture(scope="module")
def data():
    return digits()


def test_digits_split(data):
    assert data.input_shape == (64,)
    assert len(data.x_train) + len(data.x_test) == 1797
    assert float(data.x_train.max()) <= 1.0
    assert digits(image=True).input_shape == (1, 8, 8)
    with pytest.raises(ValueError, match="'mnist'"):
        load_dataset("mnist")


def test_minibatches_cover_the_data_once_per_epoch(data):
    batches = Minibatches(data.x_train, data.y_train, 100, torch.Generator().manual_seed(0))
    seen = torch.cat([y for _, y in batches])
    assert len(batches) == len(seen) // 100 + 1
    assert torch.equal(seen.sort().values, data.y_train.sort().values)


def test_schedule_validation():
    with pytest.raises(ValueError, match="n_iter"):
        Schedule(n_iter=0)
    with pytest.raises(ValueError, match="n_post"):
        Schedule(n_post=-1)
    with pytest.raises(ValueError, match="lr"):
        SGDConfig(lr=0)


@pytest.mark.parametrize("method", [Causal(rule=Rank(alpha_ratio=0.1)),
                                    Magnitude(scope="global"), Random()])
def test_surviving_weights_are_rewound_to_pretrained_values(data, method):
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    schedule = Schedule(n_pre=1, n_iter=2, n_prune=1, n_post=0)
    state = pretrain(model, data, schedule, SGD, seed=0)
    result = prune_and_retrain(model, data, method, 0.75, schedule=schedule, sgd=SGD, seed=0,
                               pretrained_state=state)
    for name, p in prunable_parameters(model).items():
        mask = torch.from_numpy(result.masks[name])
        assert torch.equal(p.detach()[mask], state[name][mask]), name
        assert torch.all(p.detach()[~mask] == 0), name
    for name in ("1.bias", "3.bias"):
        assert torch.equal(model.state_dict()[name], state[name])
    assert result.sparsity == pytest.approx(0.75, abs=2e-3)


def test_causal_pruning_end_to_end_learns(data):
    torch.manual_seed(0)
    model = build_model("mlp", data.input_shape, data.n_classes, hidden=(32,))
    schedule = Schedule(n_pre=3, n_iter=2, n_prune=1, n_post=3)
    state = pretrain(model, data, schedule, SGD, seed=0)
    result = prune_and_retrain(model, data, Causal(), 0.5, schedule=schedule,
                               sgd=SGD, seed=0, pretrained_state=state)
    assert result.accuracy > 0.8  # 10 classes: chance is 0.1
    assert set(result.diagnostics["round"]) == {0, 1}
    assert (result.diagnostics["n_steps"] == len(data.x_train) // 64 + 1).all()
    accuracy, loss = evaluate(model, data.x_test, data.y_test)
    assert accuracy == pytest.approx(result.accuracy) and np.isfinite(loss)


def test_small_cnn_runs_causal_pruning_on_digit_images():
    data = digits(image=True)
    torch.manual_seed(0)
    model = build_model("cnn", data.input_shape, data.n_classes, channels=(4, 8), hidden=16)
    schedule = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1)
    state = pretrain(model, data, schedule, SGD, seed=0)
    result = prune_and_retrain(model, data, Causal(scope="global"), 0.6,
                               schedule=schedule, sgd=SGD, seed=0, pretrained_state=state)
    assert set(result.masks) == {"0.weight", "2.weight", "6.weight", "8.weight"}
    assert result.masks["0.weight"].shape == (4, 1, 3, 3)
    assert result.sparsity == pytest.approx(0.6, abs=1e-3)
    assert len(result.diagnostics) == 1  # one global lasso problem
    assert result.accuracy > 0.1


def test_consecutive_loss_change_and_zero_rule_in_algorithm_1(data):
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    schedule = Schedule(n_pre=1, n_iter=2, n_prune=1, n_post=1)
    state = pretrain(model, data, schedule, SGD, seed=0)
    method = Causal(design=DesignSpec(loss_change="consecutive"), rule=Zero(alpha_ratio=0.05))
    result = prune_and_retrain(model, data, method, None, schedule=schedule, sgd=SGD, seed=0,
                               pretrained_state=state)
    n_batches = len(data.x_train) // 64 + 1
    assert (result.diagnostics["n_steps"] == n_batches - 1).all()  # consecutive: T - 1 rows
    kept = result.diagnostics.groupby("round")["kept"].sum()
    assert kept[1] <= kept[0]
    # the zero rule keeps exactly the lasso's support of the last round
    last = result.diagnostics[result.diagnostics["round"] == 1]
    assert (last["kept"] == last["lasso_support"]).all()
    assert 0 < result.sparsity < 1


def test_significance_rule_with_momentum_in_algorithm_1(data):
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    schedule = Schedule(n_pre=1, n_iter=2, n_prune=2, n_post=1)
    state = pretrain(model, data, schedule, SGD, seed=0)
    method = Causal(design=DesignSpec(features="momentum", lags=2), rule=Significance(q=0.2))
    result = prune_and_retrain(model, data, method, None, schedule=schedule, sgd=SGD, seed=0,
                               pretrained_state=state)
    n_batches = len(data.x_train) // 64 + 1
    diag = result.diagnostics
    assert (diag["n_steps"] == 2 * n_batches - 1).all()  # momentum and two lags: first row 1
    # round 2 tests only the survivors of round 1 and keeps what is significant
    assert (diag[diag["round"] == 1]["n_tested"].to_numpy()
            == diag[diag["round"] == 0]["n_significant"].to_numpy()).all()
    last = diag[diag["round"] == 1]
    assert (last["kept"] == last["n_significant"]).all()
    assert 0 < result.sparsity < 1


def test_too_few_recorded_steps_fail_before_training(data):
    model = MLP(64, (8,), 10)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    big_batches = SGDConfig(batch_size=len(data.x_train))  # one step per epoch
    with pytest.raises(ValueError, match="n_steps=1"):
        prune_and_retrain(model, data, Causal(), 0.5, schedule=Schedule(n_prune=1),
                          sgd=big_batches, seed=0, pretrained_state=state)
    lagged = Causal(design=DesignSpec(lags=3), rule=Significance())
    with pytest.raises(ValueError, match="n_steps=2 steps, 0 design rows"):
        prune_and_retrain(model, data, lagged, None, schedule=Schedule(n_prune=2),
                          sgd=big_batches, seed=0, pretrained_state=state)
    with pytest.raises(ValueError, match="sparsity"):
        prune_and_retrain(model, data, Magnitude(), None, schedule=Schedule(),
                          sgd=SGD, seed=0, pretrained_state=state)


def test_no_prunable_parameters(data):
    model = torch.nn.Sequential(torch.nn.Flatten())
    with pytest.raises(ValueError, match="no prunable parameters"):
        prune_and_retrain(model, data, Random(), 0.5, schedule=Schedule(),
                          sgd=SGD, seed=0, pretrained_state={})


@pytest.mark.parametrize("method", [
    Causal(granularity="filter"),
    Causal(granularity="filter", rule=Significance(q=0.2)),
    Magnitude(granularity="filter"),
])
def test_filter_pruning_in_algorithm_1_removes_whole_filters(method):
    from granger_prune import shrink_sequential
    data = digits(image=True)
    torch.manual_seed(0)
    model = build_model("cnn", data.input_shape, data.n_classes, channels=(8, 8), hidden=16,
                        batch_norm=True)
    schedule = Schedule(n_pre=1, n_iter=2, n_prune=1, n_post=1)
    state = pretrain(model, data, schedule, SGD, seed=0)
    result = prune_and_retrain(model, data, method, 0.5, schedule=schedule, sgd=SGD, seed=0,
                               pretrained_state=state)
    assert set(result.masks) == {"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
                                 "4.weight", "4.bias", "8.weight", "8.bias"}
    for conv, norm in (("0", "1"), ("3", "4")):
        kept = result.masks[f"{conv}.bias"]
        assert (result.masks[f"{conv}.weight"].all(axis=(1, 2, 3)) == kept).all()
        assert (~result.masks[f"{conv}.weight"].any(axis=(1, 2, 3)) == ~kept).all()
        assert (result.masks[f"{norm}.weight"] == kept).all() and (result.masks[f"{norm}.bias"] == kept).all()
        # after post-training the pruned filters are still exactly zero
        assert (model[int(conv)].weight[torch.as_tensor(~kept)] == 0).all()
        assert (model[int(norm)].bias[torch.as_tensor(~kept)] == 0).all()
    if method.targets_sparsity:
        assert [int(result.masks[f"{c}.bias"].sum()) for c in ("0", "3", "8")] == [4, 4, 8]
    model.eval()
    smaller = shrink_sequential(model)
    x = data.x_test[:64]
    torch.testing.assert_close(smaller(x), model(x), rtol=0, atol=1e-5)
    assert smaller[0].out_channels == int(result.masks["0.bias"].sum()) or not result.masks["0.bias"].any()


def test_keep_best_restores_the_epoch_of_best_validation_accuracy(data):
    """keep_best's choice equals what separate runs of 1, 2, 3 post-training epochs measure."""
    from granger_prune.selection.masks import full_masks
    from granger_prune.training.algorithm import minibatches, post_train

    split = data.with_validation(0.3, seed=0)
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    state = pretrain(model, split, Schedule(n_pre=1), SGD, seed=0)
    masks = full_masks(prunable_parameters(model))
    masks["1.weight"][:, ::2] = False
    per_epoch = []
    for n_post in (1, 2, 3):
        model.load_state_dict(state)
        per_epoch.append(post_train(model, split, masks, schedule=Schedule(n_post=n_post), sgd=SGD,
                                    batches=minibatches(split, SGD, 0)))
    assert [p.best_epoch for p in per_epoch] == [1, 2, 3]
    model.load_state_dict(state)
    best = post_train(model, split, masks, schedule=Schedule(n_post=3, keep_best=True), sgd=SGD,
                      batches=minibatches(split, SGD, 0))
    val = [p.val_metric for p in per_epoch]
    assert best.best_epoch == int(np.argmax(val)) + 1  # the first of equals
    chosen = per_epoch[best.best_epoch - 1]
    assert (best.metric, best.loss, best.val_metric) == (chosen.metric, chosen.loss, chosen.val_metric)
    assert torch.all(model[1].weight.detach()[:, ::2] == 0)  # the restored weights keep the masks
    with pytest.raises(ValueError, match="validation split"):
        post_train(model, data, masks, schedule=Schedule(n_post=1, keep_best=True), sgd=SGD,
                   batches=minibatches(data, SGD, 0))
    with pytest.raises(ValueError, match="keep_best"):
        Schedule(keep_best=1)


def test_objective_knows_which_way_its_metric_improves():
    from granger_prune.training import Objective

    assert Objective().improves(0.9, 0.8) and not Objective().improves(0.8, 0.8)
    assert Objective("mse", "mse").improves(0.1, 0.2)
    assert Objective(metric=lambda o, t: 0.0).greater_is_better is None
    with pytest.raises(ValueError, match="greater_is_better"):
        Objective(metric=lambda o, t: 0.0).improves(1.0, None)
    assert Objective(metric=lambda o, t: 0.0, greater_is_better=False).improves(1.0, 2.0)


def test_a_round_tells_the_criterion_its_device(data, monkeypatch):
    """Causal selection runs where the model trained (here the CPU: the host)."""
    from granger_prune.criteria import causal

    seen = []
    original = causal.select_causal

    def spy(*args, device=None, **kwargs):
        seen.append(device)
        return original(*args, device=device, **kwargs)

    monkeypatch.setattr(causal, "select_causal", spy)
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    schedule = Schedule(n_pre=1, n_iter=1, n_prune=1, n_post=1)
    state = pretrain(model, data, schedule, SGD, seed=0)
    prune_and_retrain(model, data, Causal(), 0.5, schedule=schedule, sgd=SGD, seed=0, pretrained_state=state)
    assert seen == ["cpu"]
