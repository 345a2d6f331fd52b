"""Behaviour of masks on a live model, in the manner of torch.nn.utils.prune's tests."""

import io

import numpy as np
import pytest
import torch
from torch import nn

from granger_prune.zoo.models import MLP, SmallCNN
from granger_prune.network.pruning import MaskEnforcer, prunable_parameters


def random_masks(params, density=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return {n: rng.random(tuple(p.shape)) < density for n, p in params.items()}


def test_prunable_parameters_are_linear_and_conv_weights():
    assert list(prunable_parameters(MLP(64, (8,), 10))) == ["1.weight", "3.weight"]
    assert list(prunable_parameters(SmallCNN())) == ["0.weight", "2.weight", "6.weight", "8.weight"]


@pytest.mark.parametrize("nesterov", [False, True])
def test_masked_weights_stay_exactly_zero_under_momentum_and_weight_decay(nesterov):
    torch.manual_seed(0)
    model = SmallCNN()
    params = prunable_parameters(model)
    masks = random_masks(params)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01,
                                nesterov=nesterov)
    # momentum built up before pruning must not leak into pruned weights
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.randint(0, 10, (8,))).backward()
        optimizer.step()
    ids = {n: id(p) for n, p in params.items()}
    enforcer = MaskEnforcer(params, masks).attach(optimizer)
    for _ in range(5):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 1, 8, 8)), torch.randint(0, 10, (8,))).backward()
        for name, p in params.items():
            assert torch.all(p.grad[torch.from_numpy(~masks[name])] == 0), name
        optimizer.step()
        for name, p in params.items():
            pruned = torch.from_numpy(~masks[name])
            assert torch.all(p.detach()[pruned] == 0), name
            assert torch.all(optimizer.state[p]["momentum_buffer"][pruned] == 0), name
            assert torch.any(p.detach()[~pruned] != 0), name
    assert {n: id(p) for n, p in prunable_parameters(model).items()} == ids
    assert all(any(p is q for q in optimizer.param_groups[0]["params"]) for p in params.values())
    enforcer.detach()


def test_masked_model_state_dict_round_trips():
    torch.manual_seed(1)
    model = MLP(64, (16,), 10)
    params = prunable_parameters(model)
    masks = random_masks(params)
    MaskEnforcer(params, masks).apply()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = MLP(64, (16,), 10)
    fresh.load_state_dict(torch.load(buffer))
    assert list(fresh.state_dict()) == list(model.state_dict())
    fresh_params = prunable_parameters(fresh)
    for name, p in fresh_params.items():
        assert torch.all(p.detach()[torch.from_numpy(~masks[name])] == 0), name
    # masks re-attached after loading keep working
    optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    MaskEnforcer(fresh_params, masks).attach(optimizer)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(fresh(torch.randn(8, 64)), torch.randint(0, 10, (8,))).backward()
        optimizer.step()
    for name, p in fresh_params.items():
        assert torch.all(p.detach()[torch.from_numpy(~masks[name])] == 0), name


def test_detach_stops_enforcing():
    torch.manual_seed(2)
    model = MLP(4, (16,), 2)
    params = prunable_parameters(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    masks = random_masks(params)
    MaskEnforcer(params, masks).attach(optimizer).detach()
    assert all(torch.all(p.detach()[torch.from_numpy(~masks[n])] == 0) for n, p in params.items())
    optimizer.zero_grad()
    nn.functional.cross_entropy(model(torch.randn(6, 4)), torch.randint(0, 2, (6,))).backward()
    optimizer.step()
    assert any(torch.any(p.detach()[torch.from_numpy(~masks[n])] != 0) for n, p in params.items())


def test_mask_enforcer_checks_its_masks():
    model = MLP(4, (3,), 2)
    params = prunable_parameters(model)
    with pytest.raises(ValueError, match="lack"):
        MaskEnforcer(params, {})
    bad = {n: np.ones(3, bool) for n in params}
    with pytest.raises(ValueError, match="shape"):
        MaskEnforcer(params, bad)
