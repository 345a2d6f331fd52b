"""Costs of a model: parameter and FLOP counts, dense and with its zeros skipped.

The definitions are ShrinkBench's (Blalock et al. 2020, "What is the state of
neural network pruning?"):

* **size**: every parameter of the model (weights, biases, norms); the
  *compression ratio* is ``size / nonzero size``;
* **FLOPs**: the multiply-adds of the Conv and Linear layers for one input
  (a Conv layer: ``out_channels · prod(output spatial shape) ·
  in_channels / groups · prod(kernel)``; a Linear layer: ``in · out`` per
  input row); a layer's *nonzero FLOPs* are its FLOPs times the fraction of its
  weight entries that are non-zero, and the *theoretical speed-up* is
  ``FLOPs / nonzero FLOPs``.

ShrinkBench derives a convolution's output shape from its input assuming
"same" padding; here it is read from the real output, which agrees for the
stride-1 "same" convolutions of the package's models.  Zeroed filters also
leave the next layer's matching input weights useless, which these per-layer
counts do not see: :func:`granger_prune.network.shrink_sequential` removes them,
and the footprint of the smaller model is the speed-up a dense runtime gets.
"""

import math

import pandas as pd
import torch
from torch import nn

from .pruning import PRUNABLE_MODULES


def model_size(model):
    """``(total, nonzero)`` number of parameters of ``model``, all parameters counted."""
    total = nonzero = 0
    for p in model.parameters():
        total += p.numel()
        nonzero += int(torch.count_nonzero(p.detach()))
    return total, nonzero


@torch.no_grad()
def layer_flops(model, example_input):
    """Multiply-adds of every Conv/Linear layer for one input, dense and nonzero.

    Parameters
    ----------
    model : torch.nn.Module
    example_input : torch.Tensor
        A batch of inputs of shape ``(n, ...)`` (the leading batch dimension
        is required); counts are per input.  The model runs once in eval mode
        and every module gets its own training mode back.

    Returns
    -------
    pandas.DataFrame
        One row per layer that ran: ``layer``, ``flops``, ``weight_density``
        (fraction of non-zero weight entries) and ``nonzero_flops``.
    """
    rows, handles = [], []

    def count(module, inputs, output):
        weight = module.weight.detach()
        if isinstance(module, nn.Linear):
            positions = output.numel() // output.shape[-1] // len(output)  # rows per input
            flops = module.in_features * module.out_features * positions
        else:
            flops = (output[0].numel() * (module.in_channels // module.groups)
                     * math.prod(module.kernel_size))
        density = int(torch.count_nonzero(weight)) / weight.numel()
        rows.append(dict(layer=names[module], flops=int(flops), weight_density=density,
                         nonzero_flops=flops * density))

    names = {}
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_MODULES):
            names[module] = name
            handles.append(module.register_forward_hook(count))
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        model(example_input)
    finally:
        for module, mode in modes.items():
            module.training = mode
        for handle in handles:
            handle.remove()
    return pd.DataFrame(rows, columns=["layer", "flops", "weight_density", "nonzero_flops"])


def model_flops(model, example_input):
    """``(total, nonzero)`` multiply-adds per input (see :func:`layer_flops`)."""
    table = layer_flops(model, example_input)
    return int(table["flops"].sum()), float(table["nonzero_flops"].sum())


def footprint(model, example_input):
    """Size and FLOPs of ``model`` with ShrinkBench's ratios.

    Returns
    -------
    dict
        ``params``, ``nonzero_params``, ``compression`` (params / nonzero
        params), ``flops``, ``nonzero_flops`` and ``speedup`` (flops / nonzero
        flops).
    """
    params, nonzero_params = model_size(model)
    flops, nonzero_flops = model_flops(model, example_input)
    return dict(params=params, nonzero_params=nonzero_params,
                compression=params / nonzero_params if nonzero_params else math.inf,
                flops=flops, nonzero_flops=nonzero_flops,
                speedup=flops / nonzero_flops if nonzero_flops else math.inf)
