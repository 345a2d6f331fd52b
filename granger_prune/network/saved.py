"""What a run leaves behind: masks as plain arrays, the pruned model's weights, the
exported smaller model; and applying saved masks to a fresh model (torch).

Files (all loadable without this package):

* ``masks.npz``: one boolean array per pruned tensor, named as in
  ``model.named_parameters()`` (``numpy.load``);
* ``state_dict.pt``: the pruned, post-trained model's ``state_dict``
  (``torch.load(path)``, weights only);
* ``exported.pt``: for structured runs of a sequential model, the physically
  smaller model, pickled whole (``torch.load(path, weights_only=False)``).
"""

from pathlib import Path

import numpy as np
import torch

from .export import shrink_sequential
from .pruning import MaskEnforcer, named_parameters

MASKS_FILE, STATE_FILE, EXPORTED_FILE = "masks.npz", "state_dict.pt", "exported.pt"


def save_masks(masks, path):
    """Write ``masks`` (name → bool array) to ``path`` as a compressed ``.npz``."""
    np.savez_compressed(path, **{name: np.asarray(mask, dtype=bool) for name, mask in masks.items()})


def load_masks(path):
    """The masks saved by :func:`save_masks`: dict of str to bool ndarray."""
    with np.load(path) as saved:
        return {name: saved[name].astype(bool) for name in saved.files}


def apply_masks(model, masks):
    """Zero the entries of ``model``'s parameters that ``masks`` prune, in place.

    Returns the :class:`~granger_prune.network.MaskEnforcer`; attach it to an
    optimizer (``enforcer.attach(optimizer)``) to keep them zero while training.
    ``ValueError`` names a mask whose parameter the model lacks or whose shape differs.
    """
    enforcer = MaskEnforcer(named_parameters(model, masks), masks)
    enforcer.apply()
    return enforcer


def save_pruned_model(model, masks, folder, *, export=False):
    """Write ``masks.npz`` and ``state_dict.pt`` (and with ``export``, ``exported.pt``,
    the smaller model of :func:`~granger_prune.network.shrink_sequential`) to ``folder``.

    Returns
    -------
    list of pathlib.Path
        The files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_masks(masks, folder / MASKS_FILE)
    torch.save(model.state_dict(), folder / STATE_FILE)
    written = [folder / MASKS_FILE, folder / STATE_FILE]
    if export:
        torch.save(shrink_sequential(model), folder / EXPORTED_FILE)
        written.append(folder / EXPORTED_FILE)
    return written


def load_pruned_model(model, folder):
    """Load a folder written by :func:`save_pruned_model` into ``model`` (same
    architecture): its weights, with the masks applied.

    Returns
    -------
    masks : dict of str to bool ndarray

    Raises
    ------
    ValueError
        When ``state_dict.pt`` cannot be read as weights (truncated, or a file that
        would execute code), or its tensors do not fit ``model``; the message
        names the file.
    """
    folder = Path(folder)
    try:
        state = torch.load(folder / STATE_FILE, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception as error:  # a truncated or foreign file: torch says why in its own words
        raise ValueError(f"{folder / STATE_FILE} cannot be read as a state_dict (weights only): "
                         f"{error}") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(f"{folder / STATE_FILE} does not fit the model: {error}") from None
    masks = load_masks(folder / MASKS_FILE)
    apply_masks(model, masks)
    return masks
