"""Datasets as in-memory tensors and a seeded minibatch iterator.

The offline default is scikit-learn's bundled handwritten digits (1,797 images of
8×8 pixels, 10 classes), which needs no download.
"""

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@dataclass
class TensorData:
    """A train/test split (and optionally a validation split) held as tensors.

    Attributes
    ----------
    x_train, x_test, x_val : torch.Tensor of shape ``(n, *input_shape)``, float32
    y_train, y_test, y_val : torch.Tensor of shape (n,), int64
    n_classes : int
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int
    x_val: Optional[torch.Tensor] = None
    y_val: Optional[torch.Tensor] = None

    @property
    def input_shape(self):
        """Shape of one input, e.g. ``(64,)`` or ``(1, 8, 8)``."""
        return tuple(self.x_train.shape[1:])

    def to(self, device):
        """A copy with every split on ``device`` (the same object when already there):
        minibatches are then cut on the device, with no copy per step."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        moved = {name: value.to(device) for name, value in fields.items()
                 if isinstance(value, torch.Tensor) and value.device != torch.device(device)}
        return dataclasses.replace(self, **moved) if moved else self

    def with_validation(self, fraction, seed=0):
        """A copy whose training set keeps ``1 - fraction`` of this one's, the rest
        held out as the validation split (stratified by class for integer targets,
        seeded by ``seed``).

        ``fraction=0`` returns this data unchanged."""
        if not 0 <= fraction < 1:
            raise ValueError(f"the validation fraction must lie in [0, 1), got {fraction!r}")
        if fraction == 0:
            return self
        index = np.arange(len(self.y_train))
        classes = self.y_train.numpy() if not torch.is_floating_point(self.y_train) else None
        try:
            train, val = train_test_split(index, test_size=fraction, random_state=seed, stratify=classes)
        except ValueError as error:  # e.g. fewer held-out examples than classes
            raise ValueError(f"cannot hold out a validation fraction of {fraction!r} of "
                             f"{len(index)} training examples: {error}") from None
        train, val = torch.from_numpy(np.sort(train)), torch.from_numpy(np.sort(val))
        return dataclasses.replace(self, x_train=self.x_train[train], y_train=self.y_train[train],
                                   x_val=self.x_train[val], y_val=self.y_train[val])


def digits(*, image=False, test_size=0.2, split_seed=0):
    """scikit-learn's digits, pixels scaled to [0, 1], stratified split.

    Parameters
    ----------
    image : bool
        Inputs of shape (1, 8, 8) for a CNN instead of (64,).
    test_size : float
        Fraction held out for testing.
    split_seed : int
        Seed of the train/test split (fixed across training seeds by default).
    """
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, bunch.target, test_size=test_size, random_state=split_seed, stratify=bunch.target)
    return TensorData(torch.from_numpy(x_tr), torch.from_numpy(y_tr).long(),
                      torch.from_numpy(x_te), torch.from_numpy(y_te).long(), n_classes=10)


DATASETS = {"digits": digits}


def load_dataset(name, **kwargs):
    """Load a dataset by name (one of ``DATASETS``)."""
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[name](**kwargs)


class Minibatches:
    """Iterate over ``(x, y)`` minibatches in a seeded random order.

    Parameters
    ----------
    x, y : torch.Tensor
        Inputs and targets, first dimension n.
    batch_size : int
    generator : torch.Generator, optional
        Source of the shuffling; ``None`` iterates in order.
    """

    def __init__(self, x, y, batch_size, generator=None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.x, self.y, self.batch_size, self.generator = x, y, int(batch_size), generator

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __iter__(self):
        n = len(self.x)
        order = (torch.randperm(n, generator=self.generator) if self.generator is not None
                 else torch.arange(n))
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            yield self.x[idx], self.y[idx]
