"""What Algorithm 1 trains on and how it scores: data sources and the objective (torch).

A data source is either the package's in-memory
:class:`~granger_prune.zoo.TensorData` (minibatches drawn by the run's seed) or
:class:`DataLoaders`: a user's ``torch.utils.data.DataLoader`` (or any
re-iterable of ``(inputs, targets)`` batches) for training, with optional
validation and test loaders.  :class:`Objective` names the training loss and the
reported metric: cross-entropy and accuracy (classification, the default), mean
squared error (regression), or callables.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from .._checks import check_choice
from ..record.recorder import model_device
from ..zoo.datasets import Minibatches, TensorData

LOSSES = {"cross_entropy": nn.functional.cross_entropy, "mse": nn.functional.mse_loss}
METRICS = ("accuracy", "mse")


@dataclass(frozen=True)
class DataLoaders:
    """A user's data: a training loader and, optionally, validation and test loaders.

    Attributes
    ----------
    train : iterable of (inputs, targets)
        Iterated once per epoch (a ``DataLoader`` reshuffles itself); it must
        be re-iterable and have a ``len()`` (the steps per epoch, which the
        schedules and the recorded-steps check need): a ``DataLoader`` over a
        map-style dataset, or a list of batches.  Inputs and targets are tensors
        with the batch along the first dimension; each batch is moved to the model's device.
    test, validation : iterable of (inputs, targets), optional
        Evaluated in eval mode; the reported metric and loss are the
        batch-size-weighted means over all their batches.
    """

    train: Any
    test: Optional[Any] = None
    validation: Optional[Any] = None

    def __post_init__(self):
        for name in ("train", "test", "validation"):
            loader = getattr(self, name)
            if isinstance(loader, Iterator):
                raise ValueError(f"{name} must be re-iterable (a DataLoader or a list of batches), "
                                 "not an iterator that is used up after one epoch")


@dataclass(frozen=True)
class Objective:
    """The training loss and the metric a run reports.

    Parameters
    ----------
    loss : {"cross_entropy", "mse"} or callable(outputs, targets) -> scalar tensor
    metric : {"accuracy", "mse"} or callable(outputs, targets) -> float
        The batch mean of the metric (``"accuracy"``: the fraction of argmax
        predictions equal to the targets); weighted by batch size over a split.
    metric_name : str, optional
        The metric's name in tables; the metric's own name by default.
    greater_is_better : bool, optional
        Which way the metric improves, for choices made on the validation split
        (:attr:`Schedule.keep_best <granger_prune.training.Schedule>`): True for
        accuracy, False for mse; a callable metric needs it given to choose.
    """

    loss: Union[str, Callable] = "cross_entropy"
    metric: Union[str, Callable] = "accuracy"
    metric_name: Optional[str] = None
    greater_is_better: Optional[bool] = None

    def __post_init__(self):
        if not callable(self.loss):
            check_choice("loss", self.loss, tuple(LOSSES))
        if not callable(self.metric):
            check_choice("metric", self.metric, METRICS)
        elif self.metric_name is None:
            object.__setattr__(self, "metric_name", getattr(self.metric, "__name__", "metric"))
        if self.metric_name is None:
            object.__setattr__(self, "metric_name", self.metric)
        if self.greater_is_better is None and not callable(self.metric):
            object.__setattr__(self, "greater_is_better", self.metric == "accuracy")
        if self.greater_is_better is not None and not isinstance(self.greater_is_better, bool):
            raise ValueError(f"greater_is_better must be True or False, got {self.greater_is_better!r}")

    def improves(self, value, best):
        """Whether metric ``value`` is strictly better than ``best`` (None: nothing yet)."""
        if self.greater_is_better is None:
            raise ValueError(f"choosing on the metric {self.metric_name!r} needs "
                             "Objective(greater_is_better=True or False)")
        if best is None:
            return True
        return value > best if self.greater_is_better else value < best

    @property
    def loss_fn(self):
        """The training loss as a callable."""
        return self.loss if callable(self.loss) else LOSSES[self.loss]

    def batch_metric(self, outputs, targets):
        """The metric's mean over one batch, as a float."""
        if callable(self.metric):
            return float(self.metric(outputs, targets))
        if self.metric == "accuracy":
            return float((outputs.argmax(dim=1) == targets).float().mean())
        return float(nn.functional.mse_loss(outputs, targets))


#: ``device`` settings besides a torch device string: ``"auto"`` is CUDA when present.
AUTO_DEVICE = "auto"


def resolve_device(device=AUTO_DEVICE):
    """The ``torch.device`` of a ``device`` setting: ``"auto"`` (CUDA when
    ``torch.cuda.is_available()``, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...

    Raises ``ValueError`` for an unknown device or CUDA without a CUDA device.
    """
    if device is None or device == AUTO_DEVICE:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    unknown = f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}"
    if not isinstance(device, (str, torch.device)):
        raise ValueError(unknown)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(unknown) from error
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but torch finds no CUDA device "
                             "(torch.cuda.is_available() is False); use 'cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r} but there are {torch.cuda.device_count()} CUDA devices")
    elif resolved.type != "cpu":
        raise ValueError(unknown)
    return resolved


def on_device(batch, device):
    """``(inputs, targets)`` of ``batch`` moved to ``device`` (no copy when already there)."""
    x, y = batch
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def steps_per_epoch(batches):
    """``len(batches)``, or a ``ValueError`` saying the training batches need one."""
    try:
        return len(batches)
    except TypeError:
        raise ValueError("the training batches need a len(), the steps per epoch (a DataLoader over a "
                         "map-style dataset, or a list of batches)") from None


def training_batches(data, batch_size, seed):
    """The minibatches of one epoch of ``data``: the user's training loader, or the
    in-memory training set shuffled each epoch by a generator seeded with ``seed``."""
    if isinstance(data, DataLoaders):
        return data.train
    generator = torch.Generator().manual_seed(int(seed))
    return Minibatches(data.x_train, data.y_train, batch_size, generator)


def evaluation_batches(data, split="test"):
    """The batches of ``split`` (``"test"`` or ``"validation"``) of ``data``."""
    check_choice("split", split, ("test", "validation"))
    if isinstance(data, DataLoaders):
        batches = getattr(data, split)
        if batches is None:
            raise ValueError(f"the data has no {split} loader: pass DataLoaders({split}=...)")
        return batches
    if not isinstance(data, TensorData):
        raise TypeError(f"data must be DataLoaders or TensorData, got {type(data).__name__}")
    if split == "validation":
        if data.x_val is None:
            raise ValueError("the in-memory data has no validation split: use data.with_validation(fraction)")
        return [(data.x_val, data.y_val)]
    return [(data.x_test, data.y_test)]


def has_validation(data):
    """Whether ``data`` holds a validation split."""
    return (data.validation is not None) if isinstance(data, DataLoaders) else data.x_val is not None


@torch.no_grad()
def evaluate_batches(model, batches, objective=Objective()):
    """``(metric, mean loss)`` of ``model`` over ``batches`` in eval mode: the
    batch-size-weighted means of the batch means (one batch's own means exactly)."""
    was_training = model.training
    model.eval()
    means = []  # (metric, loss, batch size) of each batch
    try:
        device = model_device(model)
        for batch in batches:
            x, y = on_device(batch, device)
            outputs = model(x)
            means.append((objective.batch_metric(outputs, y), float(objective.loss_fn(outputs, y)), len(x)))
    finally:
        model.train(was_training)
    if not means:
        raise ValueError("the evaluation batches are empty")
    if len(means) == 1:
        return means[0][0], means[0][1]
    count = sum(n for _, _, n in means)
    return (sum(m * n for m, _, n in means) / count, sum(l * n for _, l, n in means) / count)
