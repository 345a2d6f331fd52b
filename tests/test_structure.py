"""Filters and layers as pruning units: group maps from models, structured masks,
ShrinkBench counts and the export of a physically smaller model."""

import numpy as np
import pytest
import torch
from torch import nn

from granger_prune import (Causal, DesignSpec, Magnitude, MaskEnforcer, ParameterGroups, Random, Rank,
                           RoundInputs, Significance, SmallCNN, MLP, Zero, criterion_from_dict,
                           select_causal, shrink_sequential, structured_parameters)
from granger_prune.network.costs import footprint, layer_flops, model_size
from granger_prune.selection.grouping import keep_highest_groups
from granger_prune.selection.masks import full_masks
from granger_prune.network.pruning import weights_numpy
from granger_prune.network.structure import prunable_layers, pruning_units
from granger_prune.record.trajectory import InMemoryTrajectory


def bn_cnn(seed=0):
    torch.manual_seed(seed)
    return SmallCNN(batch_norm=True)


def test_filter_groups_span_weight_bias_and_batchnorm_channel():
    model = bn_cnn()
    params, groups = structured_parameters(model, "filter")
    # the output layer (10) is left out; its channels are the model's outputs
    assert list(params) == ["0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias",
                            "4.weight", "4.bias", "8.weight", "8.bias"]
    assert params["1.weight"] is model[1].weight
    assert groups.kernels == ("0.weight", "3.weight", "8.weight")
    assert groups.n_groups == 16 + 32 + 64
    for c in (0, 7, 15):
        assert (groups["0.weight"][c] == c).all()
        assert groups["0.bias"][c] == groups["1.weight"][c] == groups["1.bias"][c] == c
    assert (groups["3.weight"][5] == 16 + 5).all() and groups["4.bias"][5] == 21
    assert groups["8.weight"][0, 0] == 48
    assert groups.layers() == [["0.weight", "0.bias", "1.weight", "1.bias"],
                               ["3.weight", "3.bias", "4.weight", "4.bias"], ["8.weight", "8.bias"]]
    with_output, _ = structured_parameters(model, "filter", include_output=True)
    assert "10.weight" in with_output and "10.bias" in with_output


def test_layer_groups_give_one_id_per_layer():
    params, groups = structured_parameters(bn_cnn(), "layer")
    assert groups.n_groups == 3
    assert {n: np.unique(g).tolist() for n, g in groups.items()} == {
        "0.weight": [0], "0.bias": [0], "1.weight": [0], "1.bias": [0],
        "3.weight": [1], "3.bias": [1], "4.weight": [1], "4.bias": [1],
        "8.weight": [2], "8.bias": [2]}
    weight_params, none = pruning_units(bn_cnn(), "weight")
    assert none is None and list(weight_params) == ["0.weight", "3.weight", "8.weight", "10.weight"]
    with pytest.raises(ValueError, match="granularity"):
        pruning_units(bn_cnn(), "channel")
    with pytest.raises(ValueError, match="output layer"):
        structured_parameters(nn.Sequential(nn.Linear(3, 2)))


def test_batchnorm_pairs_only_with_a_matching_preceding_layer():
    model = nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6),
                          nn.Linear(6, 3), nn.BatchNorm1d(5, affine=True), nn.Linear(3, 2))
    assert [(name, norm_name) for name, _, norm_name, _ in prunable_layers(model)] == [
        ("1", "3"), ("4", None), ("6", None)]


def test_parameter_groups_validate_and_sum():
    groups = ParameterGroups({"w": np.array([[0, 0], [1, 1]]), "b": np.array([0, 1])}, kernels=["w"])
    assert groups.sums({"w": np.array([[1.0, 2.0], [3.0, 4.0]]), "b": np.array([10.0, 20.0])}).tolist() == [13, 27]
    assert groups.sums({"w": np.ones((2, 2))}, groups.kernels).tolist() == [2, 2]
    assert groups.alive({"w": np.array([[False, False], [True, False]]),
                         "b": np.array([False, False])}).tolist() == [False, True]
    with pytest.raises(ValueError, match="group ids >= 0"):
        ParameterGroups({"w": np.array([-1, 0])})
    with pytest.raises(ValueError, match="kernels"):
        ParameterGroups({"w": np.array([0, 1])}, kernels=["v"])


def test_keep_highest_groups_counts_pruned_groups_and_never_revives():
    ids = {"a.w": np.repeat(np.arange(4)[:, None], 3, axis=1), "a.b": np.arange(4),
           "b.w": 4 + np.arange(2)[:, None].repeat(2, axis=1)}
    groups = ParameterGroups(ids)
    alive = {n: np.ones(g.shape, dtype=bool) for n, g in ids.items()}
    alive["a.w"][3] = False
    alive["a.b"][3] = False  # group 3 pruned earlier
    scores = np.array([0.1, 0.5, 0.3, 9.0, 1.0, 2.0])
    masks = keep_highest_groups(scores, alive, groups, density=0.5, scope="layer")
    # layer a: 2 of its 4 groups (counting the pruned one): 1 and 2; layer b: group 5
    assert masks["a.b"].tolist() == [False, True, True, False]
    assert masks["a.w"].all(axis=1).tolist() == [False, True, True, False]
    assert masks["b.w"].tolist() == [[False, False], [True, True]]
    glob = keep_highest_groups(scores, alive, groups, density=0.5, scope="global")
    assert glob["b.w"].all() and glob["a.b"].tolist() == [False, True, False, False]
    with pytest.raises(ValueError, match="alive covers tensors"):
        keep_highest_groups(scores, {**alive, "c.w": np.ones(2, bool)}, groups, 0.5)


def test_structured_masks_zero_exactly_the_selected_filters_with_bias_and_batchnorm():
    model = bn_cnn()
    params, groups = structured_parameters(model, "filter")
    before = weights_numpy(params)
    alive = full_masks(params)
    masks = Magnitude(granularity="filter").select(alive, 0.5, RoundInputs(before, groups=groups)).masks
    # L1-norm filter pruning (Li et al. 2017): the kernel's sum |W|, per layer
    for layer, norm, n in (("0", "1", 16), ("3", "4", 32), ("8", None, 64)):
        l1 = np.abs(before[f"{layer}.weight"]).reshape(n, -1).sum(axis=1)
        expected = np.zeros(n, dtype=bool)
        expected[np.argsort(-l1)[:n // 2]] = True
        assert masks[f"{layer}.bias"].tolist() == expected.tolist()
        assert (masks[f"{layer}.weight"] == expected.reshape((n,) + (1,) * (before[f"{layer}.weight"].ndim - 1))).all()
        if norm:
            assert masks[f"{norm}.weight"].tolist() == masks[f"{norm}.bias"].tolist() == expected.tolist()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    MaskEnforcer(params, masks).attach(optimizer)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    for name, p in params.items():
        value = p.detach().numpy()
        assert (value[~masks[name]] == 0).all(), name
        assert np.count_nonzero(value[masks[name]]) == masks[name].sum(), name
    # a pruned filter's channel is exactly zero after its BatchNorm, in both modes
    for mode in (True, False):
        model.train(mode)
        out = nn.Sequential(*list(model)[:3])(x)
        assert (out[:, ~masks["0.bias"]] == 0).all()
        assert (out[:, masks["0.bias"]] != 0).any()


def planted_filter_trajectory(seed=0, n_steps=300):
    """A layer of 6 filters (weight (6, 4), bias (6,)) whose filter 2 drives the loss."""
    rng = np.random.default_rng(seed)
    trajectory = InMemoryTrajectory({"w": (6, 4), "b": (6,)})
    for _ in range(n_steps):
        dw, db = rng.normal(size=(6, 4)), rng.normal(size=6)
        change = 3.0 * ((dw[2] ** 2).sum() + db[2] ** 2) + rng.normal()
        loss = rng.uniform(1, 2)
        trajectory.append(loss, loss + change, {"w": dw, "b": db})
    groups = ParameterGroups({"w": np.repeat(np.arange(6)[:, None], 4, axis=1), "b": np.arange(6)},
                             kernels=["w"])
    return trajectory, groups


@pytest.mark.parametrize("rule, options", [
    (Rank(), dict(density=1 / 6)),
    (Zero(alpha_ratio=0.5), {}),
    (Significance(q=0.01, correction="bonferroni"), {}),
    (Significance(q=0.01), dict(design=DesignSpec(features="momentum", lags=1))),
])
def test_causal_selection_on_filters_finds_the_planted_filter(rule, options):
    trajectory, groups = planted_filter_trajectory()
    alive = {"w": np.ones((6, 4), dtype=bool), "b": np.ones(6, dtype=bool)}
    result = select_causal(trajectory, alive, rule=rule, groups=groups, **options)
    assert result.masks["b"].tolist() == [i == 2 for i in range(6)]
    assert result.masks["w"].tolist() == [[i == 2] * 4 for i in range(6)]
    row = result.diagnostics.iloc[0]
    assert row["tensors"] == "w,b" and row["n_units"] == 6 and row["kept_units"] == 1 and row["kept"] == 5


def test_causal_selection_rejects_groups_that_miss_a_tensor():
    trajectory, groups = planted_filter_trajectory(n_steps=50)
    partial = ParameterGroups({"w": groups["w"]})
    alive = {"w": np.ones((6, 4), dtype=bool), "b": np.ones(6, dtype=bool)}
    with pytest.raises(ValueError, match="groups does not cover tensor 'b'"):
        select_causal(trajectory, alive, density=0.5, groups=partial, scope="global")
    with pytest.raises(ValueError, match=r"groups does not cover tensor\(s\) \['b'\]"):
        select_causal(trajectory, alive, density=0.5, groups=partial, scope="layer")


def test_structured_pruning_method_validation_and_labels():
    assert Magnitude(granularity="filter").label == "magnitude-filter/layer"
    assert Causal(granularity="filter").label == "causal-rank-filter/layer"
    assert (Causal(scope="global", granularity="layer", design=DesignSpec(features="momentum")).label
            == "causal-rank-layer(features=momentum)/global")
    with pytest.raises(ValueError, match="granularity"):
        Magnitude(granularity="channel")
    with pytest.raises(ValueError, match="scope='global'"):
        Random(granularity="layer")
    weights = {"w": np.ones((2, 2))}
    alive = {"w": np.ones((2, 2), dtype=bool)}
    with pytest.raises(ValueError, match="pass groups"):
        Magnitude(granularity="filter").select(alive, 0.5, RoundInputs(weights))
    with pytest.raises(ValueError, match="pass groups"):
        Magnitude().select(alive, 0.5, RoundInputs(weights, groups=ParameterGroups({"w": np.zeros((2, 2), int)})))


def random_filter_masks(model, seed=0, density=0.5):
    params, groups = structured_parameters(model, "filter")
    masks = Random(granularity="filter").select(
        full_masks(params), density, RoundInputs(weights_numpy(params), rng=seed, groups=groups)).masks
    MaskEnforcer(params, masks).apply()
    return masks


def with_running_stats(model, x):
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    return model.eval()


@pytest.mark.parametrize("build, shape", [
    (lambda: MLP(64, (32, 16), 10), (64,)),
    (lambda: SmallCNN(), (1, 8, 8)),
    (lambda: SmallCNN(batch_norm=True), (1, 8, 8)),
    (lambda: nn.Sequential(nn.Conv1d(2, 8, 3, padding=1), nn.BatchNorm1d(8), nn.Tanh(),
                           nn.Sequential(nn.AvgPool1d(2), nn.Conv1d(8, 6, 3), nn.GELU()),
                           nn.Dropout(0.3), nn.Flatten(), nn.Linear(6 * 2, 5), nn.LeakyReLU(0.1),
                           nn.Linear(5, 3), nn.LogSoftmax(dim=1)), (2, 8)),
])
def test_exported_smaller_model_outputs_equal_the_masked_model(build, shape):
    torch.manual_seed(1)
    model = build()
    x = torch.randn(16, *shape)
    masks = random_filter_masks(model)
    model = with_running_stats(model, x)
    smaller = shrink_sequential(model)
    assert not smaller.training
    torch.testing.assert_close(smaller(x), model(x), rtol=0, atol=1e-5)
    # every pruned filter is gone: each layer but the output keeps its unpruned filters
    kept = [int(masks[f"{name}.bias"].sum()) for name, *_ in prunable_layers(model)[:-1]]
    widths = [m.weight.shape[0] for m in smaller.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    assert widths[:-1] == kept and min(kept) > 0
    assert model_size(smaller)[0] < model_size(model)[0]
    assert model_size(model)[0] == sum(p.numel() for p in model.parameters())  # model untouched


def test_export_keeps_channels_that_are_constant_but_not_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Sigmoid(), nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 2))
    with torch.no_grad():
        model[0].weight[:3] = 0
        model[0].bias[:3] = 0   # sigmoid(0) = 0.5: these channels still feed layer 2
        model[2].weight[:2] = 0
        model[2].bias[:2] = 0   # relu(0) = 0: dropped
    smaller = shrink_sequential(model)
    assert (smaller[0].out_features, smaller[2].out_features) == (6, 3)
    x = torch.randn(10, 4)
    torch.testing.assert_close(smaller(x), model(x), rtol=0, atol=1e-6)


def test_export_of_a_fully_pruned_layer_keeps_one_zero_channel():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    smaller = shrink_sequential(model)
    assert smaller[0].out_features == 1 and smaller[2].in_features == 1
    x = torch.randn(5, 4)
    torch.testing.assert_close(smaller(x), model(x), rtol=0, atol=0)


def test_export_rejects_what_it_cannot_shrink_exactly():
    class NotSequential(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(ValueError, match="nn.Sequential"):
        shrink_sequential(NotSequential())
    with pytest.raises(ValueError, match="grouped convolution"):
        shrink_sequential(nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 2, 1)))
    with pytest.raises(ValueError, match="PReLU"):
        shrink_sequential(nn.Sequential(nn.Linear(3, 4), nn.PReLU(4), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="does not act on the 4 channels"):
        shrink_sequential(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(5), nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="no Linear or Conv"):
        shrink_sequential(nn.Sequential(nn.ReLU()))


def test_shrinkbench_counts_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(128, 3))
    with torch.no_grad():
        model[0].weight[1] = 0                    # half the conv's weight entries
        model[3].weight[:, :32] = 0               # a quarter of the linear's
    x = torch.randn(4, 1, 8, 8)
    table = layer_flops(model, x)
    assert table["flops"].tolist() == [2 * 64 * 1 * 9, 128 * 3]
    assert table["weight_density"].tolist() == [0.5, 0.75]
    counts = footprint(model, x)
    assert counts["flops"] == 1152 + 384 and counts["nonzero_flops"] == 576 + 288
    assert counts["speedup"] == pytest.approx((1152 + 384) / (576 + 288), rel=1e-12)
    total = 18 + 2 + 384 + 3
    assert counts["params"] == total and counts["nonzero_params"] == total - 9 - 96
    assert counts["compression"] == pytest.approx(total / (total - 105), rel=1e-12)


def test_every_layer_keeps_at_least_one_filter():
    trajectory, groups = planted_filter_trajectory(n_steps=60)
    alive = {"w": np.ones((6, 4), dtype=bool), "b": np.ones(6, dtype=bool)}
    result = select_causal(trajectory, alive, density=0.05, groups=groups)  # round(0.3) = 0
    assert result.masks["b"].sum() == 1
    masks = keep_highest_groups(np.arange(6.0), alive, groups, density=0.05)
    assert masks["b"].tolist() == [False] * 5 + [True]


def test_magnitude_tie_breaker_scores_filters_by_their_kernels():
    trajectory, groups = planted_filter_trajectory(n_steps=60)
    alive = {"w": np.ones((6, 4), dtype=bool), "b": np.ones(6, dtype=bool)}
    weights = {"w": np.arange(1.0, 7.0)[:, None].repeat(4, axis=1), "b": np.array([100.0, 0, 0, 0, 0, 0])}
    # alpha = alpha_max leaves every gamma at zero: the tie-breaker alone ranks the filters
    result = select_causal(trajectory, alive, density=1 / 6, groups=groups, weights=weights,
                           rule=Rank(alpha_ratio=1.0, tie_breaker="magnitude"))
    assert result.masks["b"].tolist() == [False] * 5 + [True]  # the largest kernel, not bias 100


def test_parameter_groups_check_shapes_and_stay_read_only():
    groups = ParameterGroups({"w": np.array([[0, 0], [1, 1]])})
    with pytest.raises(ValueError, match="shape"):
        groups.sums({"w": np.ones(4)})
    with pytest.raises(ValueError, match="keep must have shape"):
        groups.expand(np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="scores must have shape"):
        keep_highest_groups(np.ones(3), {"w": np.ones((2, 2), bool)}, groups, 0.5)
    with pytest.raises(ValueError, match="empty"):
        ParameterGroups({"w": np.zeros(0, dtype=int)})
    with pytest.raises(ValueError, match="read-only"):
        groups["w"][0, 0] = 5


def test_export_refuses_sequential_subclasses_that_override_forward():
    class Residual(nn.Sequential):
        def forward(self, x):
            return x + super().forward(x)

    with pytest.raises(ValueError, match="override"):
        shrink_sequential(nn.Sequential(nn.Linear(6, 8), Residual(nn.Linear(8, 8), nn.ReLU()),
                                        nn.Linear(8, 3)))
    with pytest.raises(ValueError, match="override"):
        shrink_sequential(Residual(nn.Linear(3, 3)))


def test_export_refuses_channel_layouts_it_cannot_follow():
    with pytest.raises(ValueError, match="more than two dimensions"):
        shrink_sequential(nn.Sequential(nn.Linear(6, 4), nn.ReLU(), nn.Flatten(), nn.Linear(20, 3)))
    with pytest.raises(ValueError, match="without an nn.Flatten"):
        shrink_sequential(nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.Linear(6, 3)))


def test_export_and_counts_keep_each_modules_training_mode():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(16, 6)
    with_running_stats(model, x).train()
    model[1].eval()  # a frozen BatchNorm inside a model in training mode
    with torch.no_grad():
        for p in (model[0].weight, model[0].bias, model[1].weight, model[1].bias):
            p[:3] = 0
    footprint(model, x)
    assert model.training and not model[1].training
    smaller = shrink_sequential(model)
    assert smaller.training and not smaller[1].training and smaller[1].num_features == 5
    torch.testing.assert_close(smaller(x), model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["causal", "magnitude", "random"])
def test_a_global_filter_ranking_keeps_a_filter_in_every_layer(name):
    """Issue 13's example: MLP 64-32-32-10 at density 0.05 kept {'1.weight': 3, '3.weight': 0}."""
    torch.manual_seed(0)
    model = MLP(64, (32, 32), 10)
    params, groups = structured_parameters(model, "filter")
    x, y = torch.randn(64, 64), torch.randint(0, 10, (64,))
    trajectory = None
    if name == "causal":
        from granger_prune.record.recorder import TrajectoryRecorder
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        recorder = TrajectoryRecorder(model, params)
        for t in range(40):
            recorder.step(optimizer, nn.functional.cross_entropy, x[t % 4 * 16:][:16], y[t % 4 * 16:][:16])
        trajectory = recorder.trajectory
    method = criterion_from_dict(dict(name=name, scope="global", granularity="filter"))
    masks = method.select(full_masks(params), 0.05, RoundInputs(weights_numpy(params), trajectory=trajectory,
                                                                 rng=0, groups=groups)).masks
    kept = {layer[0]: int(masks[layer[0]].any(axis=1).sum()) for layer in groups.layers()}
    assert set(kept) == {"1.weight", "3.weight"} and min(kept.values()) >= 1, kept
    assert sum(kept.values()) == max(2, round(64 * 0.05))  # the budget, or the floor when larger


def test_the_layer_floor_keeps_the_best_filter_of_each_layer_then_the_best_of_the_rest():
    ids = {"a.w": np.arange(4)[:, None].repeat(2, axis=1), "b.w": 4 + np.arange(3)}
    groups = ParameterGroups(ids)
    alive = {n: np.ones(g.shape, dtype=bool) for n, g in ids.items()}
    scores = np.array([5.0, 6.0, 7.0, 8.0, 0.1, 0.3, 0.2])  # layer b scores low everywhere
    masks = keep_highest_groups(scores, alive, groups, density=3 / 7, scope="global")
    assert masks["b.w"].tolist() == [False, True, False]  # b's best survives the global ranking
    assert masks["a.w"].all(axis=1).tolist() == [False, False, True, True]
    # a layer that is a single unit (layers as units) is ranked like any other unit
    layer_groups = ParameterGroups({"a.w": np.zeros((4, 2), int), "b.w": np.ones(3, int)})
    masks = keep_highest_groups(np.array([1.0, 0.5]), alive, layer_groups, density=0.5,
                                scope="global")
    assert masks["a.w"].all() and not masks["b.w"].any()
