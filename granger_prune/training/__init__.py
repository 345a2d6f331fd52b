"""Algorithm 1: pre-train, prune in rounds rewinding to the pre-trained weights, post-train (torch)."""

from .algorithm import (PruningResult, Schedule, SGDConfig, evaluate, post_train, pretrain,
                        prune_and_retrain, train_epochs)
from .optim import OptimizerSpec, TrainingConfig

__all__ = ["OptimizerSpec", "PruningResult", "SGDConfig", "Schedule", "TrainingConfig", "evaluate",
           "post_train", "pretrain", "prune_and_retrain", "train_epochs"]
