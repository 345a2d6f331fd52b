"""What Algorithm 1 needs to continue after a crash: the random states and the state
between pruning rounds.

After a round the model is rewound to θ_pre, so a round's state is small: the
masks alive, the random states (torch's global generator and CUDA's, the
minibatch order's generator, the criterion's NumPy generator), the rounds'
diagnostics and the seconds spent.  Restoring them and running the remaining
rounds gives, on the CPU, the same masks and weights bit for bit as running
without a stop (tested).
"""

from dataclasses import dataclass, field

import numpy as np
import torch

from ..record.recorder import rng_states, set_rng_states


def torch_random_state(device=None):
    """torch's global random states (:func:`~granger_prune.record.recorder.rng_states`) as
    plain ``uint8`` arrays: ``{"cpu": ..., "cuda": ...}`` (``"cuda"`` only for a CUDA ``device``)."""
    cpu, cuda = rng_states(torch.device(device or "cpu"))
    state = {"cpu": cpu.numpy().copy()}
    if cuda is not None:
        state["cuda"] = cuda.numpy().copy()
    return state


def set_torch_random_state(state, device=None):
    """Restore what :func:`torch_random_state` captured."""
    device = torch.device(device or "cpu")
    if "cuda" in state and device.type != "cuda":
        raise ValueError("the saved random state is of a CUDA run; resume it on a CUDA device")
    cuda = _uint8_tensor(state["cuda"]) if "cuda" in state else None
    set_rng_states((_uint8_tensor(state["cpu"]), cuda), device)


def _uint8_tensor(array):
    return torch.from_numpy(np.asarray(array, dtype=np.uint8).copy())


def batch_generator(batches):
    """The ``torch.Generator`` that orders ``batches``: an in-memory ``Minibatches``'s, a
    ``DataLoader``'s ``generator=``, or its sampler's (``RandomSampler(generator=)``); None
    when there is none, and a loader without one draws its order from torch's global
    generator, which :func:`torch_random_state` holds.  A sampler or dataset with other
    random state of its own is not captured."""
    for owner in (batches, getattr(batches, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator):
            return generator
    return None


@dataclass
class RoundState:
    """Algorithm 1 between two pruning rounds of one (method, sparsity, seed).

    Attributes
    ----------
    next_round : int
        The round to run next (0-based); ``n_iter`` when every round is done.
    alive : dict of str to bool ndarray
        The masks after the rounds done.
    numpy_state : dict
        The criterion generator's ``bit_generator.state`` (JSON-serialisable).
    torch_state : dict of str to uint8 ndarray
        :func:`torch_random_state`.
    batch_state : uint8 ndarray or None
        The minibatch order's generator state (:func:`batch_generator`).
    diagnostics : list of pandas.DataFrame
        One table per round done that reported any.
    seconds : float
        Wall time spent on the rounds so far, over every attempt.
    """

    next_round: int
    alive: dict
    numpy_state: dict
    torch_state: dict
    batch_state: object = None
    diagnostics: list = field(default_factory=list)
    seconds: float = 0.0

    @classmethod
    def capture(cls, next_round, alive, rng, batches, device, diagnostics, seconds):
        generator = batch_generator(batches)
        return cls(next_round=next_round, alive={k: np.array(v, dtype=bool) for k, v in alive.items()},
                   numpy_state=rng.bit_generator.state, torch_state=torch_random_state(device),
                   batch_state=None if generator is None else generator.get_state().numpy().copy(),
                   diagnostics=list(diagnostics), seconds=float(seconds))

    def restore(self, rng, batches, device):
        """Put the random states back: ``rng``'s, torch's and the minibatch order's."""
        rng.bit_generator.state = self.numpy_state
        set_torch_random_state(self.torch_state, device)
        generator = batch_generator(batches)
        if (generator is None) != (self.batch_state is None):
            raise ValueError("the saved round state and the training batches disagree on whether "
                             "the minibatch order has its own generator: a different data source")
        if generator is not None:
            generator.set_state(_uint8_tensor(self.batch_state))
