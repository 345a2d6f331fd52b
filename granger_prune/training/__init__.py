"""Algorithm 1: pre-train, prune in rounds rewinding to the pre-trained weights, post-train (torch)."""

from .algorithm import (PostTraining, PruningResult, Schedule, SGDConfig, evaluate, post_train, pretrain,
                        prune_and_retrain, train_epochs)
from .optim import OptimizerSpec, TrainingConfig
from .task import DataLoaders, Objective, evaluate_batches, resolve_device

__all__ = ["DataLoaders", "Objective", "OptimizerSpec", "PostTraining", "PruningResult", "SGDConfig", "Schedule", "TrainingConfig", "evaluate",
           "evaluate_batches", "post_train", "pretrain", "prune_and_retrain", "resolve_device",
           "train_epochs"]
