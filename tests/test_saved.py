"""Masks and pruned models saved as plain files, and loaded back into a fresh model."""

import numpy as np
import pytest
import torch

from granger_prune import MLP, SmallCNN, apply_masks, load_masks, load_pruned_model, structured_parameters
from granger_prune.criteria import Random, RoundInputs
from granger_prune.network.pruning import weights_numpy
from granger_prune.network.saved import save_masks, save_pruned_model
from granger_prune.selection import full_masks


def test_masks_round_trip_as_plain_numpy_arrays(tmp_path):
    masks = {"0.weight": np.array([[True, False], [False, True]]), "3.weight": np.zeros(3, bool)}
    save_masks(masks, tmp_path / "masks.npz")
    with np.load(tmp_path / "masks.npz") as plain:  # no package needed to read them
        assert sorted(plain.files) == ["0.weight", "3.weight"]
        assert plain["0.weight"].dtype == bool
    loaded = load_masks(tmp_path / "masks.npz")
    assert all(np.array_equal(loaded[n], m) for n, m in masks.items())


def test_apply_masks_zeros_the_pruned_entries_and_checks_names_and_shapes():
    torch.manual_seed(0)
    model = MLP(4, (3,), 2)
    mask = np.array([[True, False, True, False]] * 3)
    apply_masks(model, {"1.weight": mask})
    assert torch.all(model[1].weight[torch.from_numpy(~mask)] == 0)
    assert torch.all(model[1].weight[torch.from_numpy(mask)] != 0)
    with pytest.raises(ValueError, match="no parameters named"):
        apply_masks(model, {"9.weight": mask})
    with pytest.raises(ValueError, match="shape"):
        apply_masks(model, {"1.weight": mask[:2]})


def test_a_filter_pruned_model_round_trips_with_its_exported_smaller_model(tmp_path):
    torch.manual_seed(0)
    model = SmallCNN(batch_norm=True)
    params, groups = structured_parameters(model, "filter")
    masks = Random(granularity="filter").select(full_masks(params), 0.5,
                                                RoundInputs(weights_numpy(params), rng=0, groups=groups)).masks
    apply_masks(model, masks)
    model.eval()
    written = save_pruned_model(model, masks, tmp_path / "run", export=True)
    assert sorted(p.name for p in written) == ["exported.pt", "masks.npz", "state_dict.pt"]
    torch.manual_seed(1)
    fresh = SmallCNN(batch_norm=True).eval()
    loaded = load_pruned_model(fresh, tmp_path / "run")
    assert loaded.keys() == masks.keys()
    x = torch.randn(16, 1, 8, 8)
    assert torch.equal(fresh(x), model(x))
    smaller = torch.load(tmp_path / "run" / "exported.pt", weights_only=False)
    assert smaller[0].out_channels == int(masks["0.bias"].sum())
    torch.testing.assert_close(smaller(x), model(x), rtol=0, atol=1e-5)
