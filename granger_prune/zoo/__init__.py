"""The package's models and datasets, each one registry entry (torch)."""

from .datasets import DATASETS, Minibatches, TensorData, load_dataset
from .models import MLP, MODELS, SmallCNN, build_model

__all__ = ["DATASETS", "MLP", "MODELS", "Minibatches", "SmallCNN", "TensorData", "build_model",
           "load_dataset"]
