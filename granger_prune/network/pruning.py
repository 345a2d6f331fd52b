"""Applying masks to a PyTorch model and keeping pruned weights at zero.

Masks act in place on the existing parameters (no re-parametrisation as in
``torch.nn.utils.prune``), so parameter identity survives: optimizers, hooks and
``state_dict`` keys keep working.  While a :class:`MaskEnforcer` is attached:

* the gradient of a pruned entry is zero (a tensor hook), so it gets no update
  from the loss;
* after every ``optimizer.step()`` the pruned entries are set to zero again and
  their momentum buffers cleared (an optimizer step post-hook), which keeps them
  exactly zero under momentum, weight decay and any other optimizer term.
"""

import numpy as np
import torch
from torch import nn

PRUNABLE_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def prunable_parameters(model):
    """The weights of the model's Linear and Conv layers, by qualified name.

    Biases and normalisation parameters are not prunable by default, as in the
    papers' baselines.

    Returns
    -------
    dict of str to torch.nn.Parameter
    """
    params = {}
    for module_name, module in model.named_modules():
        if isinstance(module, PRUNABLE_MODULES):
            params[f"{module_name}.weight" if module_name else "weight"] = module.weight
    return params


def named_parameters(model, names):
    """The parameters of ``model`` called ``names`` (qualified, as in ``named_parameters()``).

    Returns
    -------
    dict of str to torch.nn.Parameter
    """
    available = dict(model.named_parameters())
    missing = [n for n in names if n not in available]
    if missing:
        raise ValueError(f"the model has no parameters named {missing}")
    return {n: available[n] for n in names}


def weights_numpy(params):
    """Copy parameter values to NumPy, as the torch-free selection rules need them."""
    return {n: p.detach().cpu().numpy().copy() for n, p in params.items()}


class MaskEnforcer:
    """Zero pruned weights in place and keep them zero through training.

    Parameters
    ----------
    params : mapping of str to torch.nn.Parameter
    masks : mapping of str to bool ndarray
        A mask for every entry of ``params`` (``True`` keeps the weight).

    Examples
    --------
    >>> enforcer = MaskEnforcer(prunable_parameters(model), masks)  # doctest: +SKIP
    >>> enforcer.apply()                                          # zero pruned weights
    >>> enforcer.attach(optimizer)                                # keep them zero
    >>> ...                                                       # train
    >>> enforcer.detach()
    """

    def __init__(self, params, masks):
        params = dict(params)
        missing = set(params) - set(masks)
        if missing:
            raise ValueError(f"masks lack tensors {sorted(missing)}")
        self.params = params
        self.masks = {}
        for name, p in params.items():
            mask = np.asarray(masks[name], dtype=bool)
            if mask.shape != tuple(p.shape):
                raise ValueError(f"masks[{name!r}] has shape {mask.shape}, parameter has {tuple(p.shape)}")
            self.masks[name] = torch.as_tensor(mask, device=p.device).to(p.dtype)
        self._handles = []

    @torch.no_grad()
    def apply(self, optimizer=None):
        """Set pruned weights (and their momentum buffers in ``optimizer``) to zero."""
        for name, p in self.params.items():
            p.mul_(self.masks[name])
            if optimizer is not None:
                buf = optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None:
                    buf.mul_(self.masks[name])

    def attach(self, optimizer):
        """Enforce the masks on every gradient and every step of ``optimizer``."""
        self.detach()
        for name, p in self.params.items():
            mask = self.masks[name]
            if p.requires_grad:  # a frozen tensor has no gradient to mask; the step hook holds it
                self._handles.append(p.register_hook(lambda grad, mask=mask: grad * mask))
        self._handles.append(optimizer.register_step_post_hook(
            lambda opt, args, kwargs: self.apply(opt)))
        self.apply(optimizer)
        return self

    def detach(self):
        """Remove the hooks; the weights keep their current values."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
