"""The first-order Taylor criterion |θ·ḡ|, per weight and per filter, alone and in Algorithm 1."""

import numpy as np
import pytest
import torch
from torch import nn

from granger_prune import (MLP, RoundInputs, Schedule, SGDConfig, SmallCNN, Taylor, criterion_from_dict,
                           prunable_parameters, pretrain, prune_and_retrain, structured_parameters)
from granger_prune.network.gradients import mean_gradients
from granger_prune.network.pruning import weights_numpy
from granger_prune.selection import full_masks
from granger_prune.zoo.datasets import digits

LOSS = nn.functional.cross_entropy


def batches_of(n, batch_size=16, seed=0, image=False):
    torch.manual_seed(seed)
    x = torch.randn(n * batch_size, *((1, 8, 8) if image else (64,)))
    y = torch.randint(0, 10, (n * batch_size,))
    return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]


def hand_mean_gradient(model, params, batches):
    """ḡ by one backward pass per minibatch into .grad, averaged in float64."""
    total = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in params.items()}
    for x, y in batches:
        model.zero_grad()
        LOSS(model(x), y).backward()
        for n, p in params.items():
            total[n] += p.grad.to(torch.float64)
    model.zero_grad()
    return {n: (t / len(batches)).numpy() for n, t in total.items()}


def test_weight_scores_are_theta_times_the_mean_gradient_of_the_first_batches():
    torch.manual_seed(0)
    model = MLP(64, (16,), 10)
    params = prunable_parameters(model)
    batches = batches_of(12)
    expected = hand_mean_gradient(model, params, batches[:10])  # the default: 10 minibatches
    weights = weights_numpy(params)
    selection = Taylor().select(full_masks(params), 0.25,
                                RoundInputs(weights, model=model, params=params, batches=batches, loss_fn=LOSS))
    for name in params:
        score = np.abs(weights[name].astype(np.float64) * expected[name])
        # float32 gradients of the same minibatches, summed in float64 in the same order
        np.testing.assert_allclose(selection.scores[name], score, rtol=1e-6, atol=0)
        kept = selection.masks[name]
        assert kept.sum() == round(0.25 * kept.size)
        assert score[kept].min() >= score[~kept].max()
    assert selection.diagnostics["n_batches"].tolist() == [10]


def test_filter_scores_are_the_absolute_sum_over_all_members():
    torch.manual_seed(0)
    model = SmallCNN(batch_norm=True)
    params, groups = structured_parameters(model, "filter")
    batches = batches_of(3, image=True)
    gradients = hand_mean_gradient(model, params, batches)
    weights = weights_numpy(params)
    selection = Taylor(n_batches=3, granularity="filter").select(
        full_masks(params), 0.5, RoundInputs(weights, groups=groups, model=model, params=params,
                                             batches=batches, loss_fn=LOSS))
    # filter 0 of the first convolution: its kernel, its bias and its BatchNorm channel
    members = {"0.weight": np.s_[0], "0.bias": np.s_[0], "1.weight": np.s_[0], "1.bias": np.s_[0]}
    by_hand = abs(sum(np.sum(weights[n][i].astype(np.float64) * gradients[n][i]) for n, i in members.items()))
    assert by_hand > 0
    for name in members:
        assert np.all(selection.scores[name][0] == selection.scores["0.weight"][0].flat[0])
    # summing over the filter's entries adds rounding of the order of the largest term
    terms = sum(np.sum(np.abs(weights[n][i] * gradients[n][i])) for n, i in members.items())
    np.testing.assert_allclose(selection.scores["0.bias"][0], by_hand, rtol=0, atol=1e-6 * terms)
    for layer in ("0.bias", "3.bias"):  # half the filters of each layer, whole
        assert selection.masks[layer].sum() == selection.masks[layer].size // 2
    kept = selection.masks["0.bias"]
    assert (selection.masks["0.weight"].all(axis=(1, 2, 3)) == kept).all()
    assert (selection.masks["1.weight"] == kept).all()


def test_gradients_leave_the_model_its_buffers_and_the_random_state_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
    params = prunable_parameters(model)
    batches = batches_of(4)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng_state = torch.get_rng_state()
    gradients, n_used = mean_gradients(model, params, batches, LOSS, n_batches=10)
    assert n_used == 4  # fewer minibatches than asked for: all of them
    assert all(np.any(g != 0) for g in gradients.values())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key  # running statistics restored
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng_state)  # dropout drew from a forked generator
    with pytest.raises(ValueError, match="no minibatch"):
        mean_gradients(model, params, [], LOSS, n_batches=2)


def test_options_labels_and_what_a_round_must_give():
    assert Taylor().label == "taylor/layer"
    assert Taylor(n_batches=5, granularity="filter", scope="global").label == "taylor-filter(n_batches=5)/global"
    assert criterion_from_dict({"name": "taylor", "n_batches": 5}) == Taylor(n_batches=5)
    assert Taylor().needs == {"model"}
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=f"n_batches must be a positive integer, got {bad!r}"):
            Taylor(n_batches=bad)
    weights = {"w": np.ones(4)}
    with pytest.raises(ValueError, match=r"taylor/layer needs \['model', 'params', 'batches', 'loss_fn'\]"):
        Taylor().select({"w": np.ones(4, bool)}, 0.5, RoundInputs(weights))
    with pytest.raises(ValueError, match=r"needs \['batches', 'loss_fn'\]"):
        Taylor().select({"w": np.ones(4, bool)}, 0.5, RoundInputs(weights, model=MLP(4, (2,), 2), params={}))
    from granger_prune.criteria import Taylor as from_the_registry
    assert from_the_registry is Taylor


@pytest.mark.parametrize("granularity", ["weight", "filter"])
def test_taylor_pruning_in_algorithm_1(granularity):
    data = digits()
    torch.manual_seed(0)
    model = MLP(64, (32,), 10)
    schedule = Schedule(n_pre=1, n_iter=2, n_prune=1, n_post=1)
    sgd = SGDConfig(batch_size=64)
    state = pretrain(model, data, schedule, sgd, seed=0)
    result = prune_and_retrain(model, data, Taylor(granularity=granularity), 0.75, schedule=schedule,
                               sgd=sgd, seed=0, pretrained_state=state)
    assert result.diagnostics["round"].tolist() == [0, 1]
    assert (result.diagnostics["n_batches"] == 10).all()
    assert result.accuracy > 0.5  # 10 classes: chance is 0.1
    if granularity == "weight":
        assert result.sparsity == pytest.approx(0.75, abs=2e-3)
        for name, p in prunable_parameters(model).items():
            assert torch.all(p.detach()[torch.from_numpy(~result.masks[name])] == 0)
    else:
        assert int(result.masks["1.bias"].sum()) == 8  # a quarter of the 32 hidden filters
    # the same run again gives the same masks: the gradient batches come from the run's seed
    again = prune_and_retrain(model, data, Taylor(granularity=granularity), 0.75, schedule=schedule,
                              sgd=sgd, seed=0, pretrained_state=state)
    assert all(np.array_equal(again.masks[n], m) for n, m in result.masks.items())
