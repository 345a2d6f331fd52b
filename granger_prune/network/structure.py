"""The structure of a PyTorch model as pruning units: weights, filters or layers.

A *filter* of a Conv or Linear layer is one output channel: a row ``weight[c]``,
the bias entry ``bias[c]`` and, when a BatchNorm follows the layer, its channel
``c`` (``weight[c]`` and ``bias[c]`` of the norm).  Zeroing all of them makes the
channel's output exactly zero after the norm, so the next layer can drop it (see
:func:`granger_prune.network.shrink_sequential`).

A BatchNorm belongs to the Conv/Linear layer registered before it when nothing
prunable comes between them and its ``num_features`` equals the layer's output
channels: the order of a sequential model, and of most models written as
``conv → bn → act``.

A zeroed filter is removable only when its channel stays zero on the way to the
next layer: after a BatchNorm without affine parameters, or an activation with
``f(0) ≠ 0`` (sigmoid, softplus), it is a constant channel, which the masked
model still computes and the export keeps.
"""

import numpy as np
from torch import nn

from .._checks import check_choice
from ..selection.grouping import GRANULARITIES, ParameterGroups
from .pruning import PRUNABLE_MODULES, prunable_parameters

NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def prunable_layers(model):
    """The model's Conv/Linear layers with their BatchNorm, in registration order.

    Returns
    -------
    list of (str, torch.nn.Module, str or None, torch.nn.Module or None)
        ``(layer name, layer, norm name, norm)``; the norm is None when no
        affine BatchNorm matches the layer.
    """
    layers = []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_MODULES):
            layers.append([name, module, None, None])
        elif isinstance(module, NORM_MODULES) and module.affine and layers:
            last = layers[-1]
            if last[2] is None and module.num_features == out_channels(last[1]):
                last[2], last[3] = name, module
    return [tuple(layer) for layer in layers]


def out_channels(layer):
    """Output channels (filters) of a Conv or Linear layer."""
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def _qualified(module_name, attribute):
    return f"{module_name}.{attribute}" if module_name else attribute


def structured_parameters(model, granularity="filter", *, include_output=False):
    """The parameters of the model's filters (or layers) and their group ids.

    Parameters
    ----------
    model : torch.nn.Module
    granularity : {"filter", "layer"}
        One group per output channel of every Conv/Linear layer (with its bias
        and BatchNorm channel), or one group per layer.
    include_output : bool
        Whether the last Conv/Linear layer (the output layer of a sequential
        model, whose channels are the model's outputs) is prunable too.

    Returns
    -------
    params : dict of str to torch.nn.Parameter
        Weights, biases and BatchNorm weights and biases, by qualified name.
    groups : ParameterGroups
        Group id of every entry; the layer weights are its ``kernels``.
    """
    check_choice("granularity", granularity, ("filter", "layer"))
    layers = prunable_layers(model)
    if not include_output:
        layers = layers[:-1]
    if not layers:
        raise ValueError("the model has no prunable Conv/Linear layer besides its output layer; "
                         "pass include_output=True to prune the output layer's channels")
    params, ids, kernels = {}, {}, []
    offset = 0
    for index, (name, layer, norm_name, norm) in enumerate(layers):
        n = out_channels(layer)
        channel_ids = offset + np.arange(n) if granularity == "filter" else np.full(n, index)
        members = [(name, layer, "weight"), (name, layer, "bias"),
                   (norm_name, norm, "weight"), (norm_name, norm, "bias")]
        for module_name, module, attribute in members:
            p = getattr(module, attribute, None) if module is not None else None
            if p is None:
                continue
            qualified = _qualified(module_name, attribute)
            params[qualified] = p
            shape = (n,) + (1,) * (p.dim() - 1)
            ids[qualified] = np.broadcast_to(channel_ids.reshape(shape), tuple(p.shape)).copy()
        kernels.append(_qualified(name, "weight"))
        offset += n if granularity == "filter" else 1
    return params, ParameterGroups(ids, kernels=kernels)


def pruning_units(model, granularity="weight"):
    """What a pruning method selects on at ``granularity``.

    Returns
    -------
    params : dict of str to torch.nn.Parameter
    groups : ParameterGroups or None
        None for ``"weight"``: every Linear/Conv weight entry is its own unit.
    """
    check_choice("granularity", granularity, GRANULARITIES)
    if granularity == "weight":
        return prunable_parameters(model), None
    return structured_parameters(model, granularity)
