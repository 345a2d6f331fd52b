"""Algorithm 1: pre-train, prune in rounds rewinding to the pre-trained weights, post-train (torch)."""

from .algorithm import (PruningResult, Schedule, SGDConfig, evaluate, post_train, pretrain,
                        prune_and_retrain, train_epochs)

__all__ = ["PruningResult", "SGDConfig", "Schedule", "evaluate", "post_train", "pretrain",
           "prune_and_retrain", "train_epochs"]
