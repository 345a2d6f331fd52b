"""The device setting: resolved, validated, and a no-op on the CPU."""

import pytest
import torch

from granger_prune.study import StudyConfig
from granger_prune.training import resolve_device
from granger_prune.zoo.datasets import digits


def test_resolve_device_picks_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected and resolve_device(None).type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    for bad in ("gpu", "tpu", 3):
        with pytest.raises(ValueError, match="device must be"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_data_moves_once_and_stays_when_already_there():
    data = digits().with_validation(0.2)
    assert data.to("cpu") is data
    if torch.cuda.is_available():
        moved = data.to("cuda")
        assert moved.x_train.is_cuda and moved.y_val.is_cuda and moved.n_classes == data.n_classes


def test_study_config_takes_a_device_and_the_cli_override():
    config = StudyConfig.from_dict({"device": "cpu"})
    assert config.device == "cpu" and config.to_dict()["device"] == "cpu"
    assert StudyConfig().device == "auto"
    assert StudyConfig().with_overrides(["device=cpu"]).device == "cpu"
    with pytest.raises(ValueError, match="device must be a string"):
        StudyConfig(device=0)
