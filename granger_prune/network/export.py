"""Export a filter-pruned sequential model as a physically smaller one.

A channel of a Conv/Linear layer is *dead* when its output is exactly zero for
every input: its weight row and bias are zero and, when a BatchNorm follows, the
norm's weight and bias of that channel are zero too (then the norm outputs zero
in training and in eval mode, whatever its running statistics).  Activations
with ``f(0) = 0`` (ReLU, tanh, GELU, ...), pooling, dropout and flattening keep a
dead channel zero, so the layer can drop the channel's row and the next layer
the matching input columns without changing the model's output.  Channels that
are constant but not zero (after an activation with ``f(0) ≠ 0``, or a norm with
a non-zero bias) are kept: the exported model is exact, not approximate.
"""

import copy

import torch
from torch import nn

from .pruning import PRUNABLE_MODULES
from .structure import NORM_MODULES, out_channels

#: Element-wise activations; a dead channel stays dead after one when ``f(0) = 0``.
ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Softsign, nn.Tanhshrink, nn.Softshrink,
    nn.Hardshrink, nn.Sigmoid, nn.Hardsigmoid, nn.Softplus, nn.LogSigmoid,
)
#: Modules that keep the channel layout and map an all-zero channel to zero.
ZERO_PRESERVING = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.Identity,
)


def is_plain_sequential(module):
    """Whether ``module`` is an ``nn.Sequential`` that runs its children in order
    (a subclass that overrides ``forward`` may do anything else)."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def sequential_layers(model):
    """The modules of a (nested) plain ``nn.Sequential``, flattened, in order."""
    if not is_plain_sequential(model):
        raise ValueError(f"shrink_sequential needs an nn.Sequential model that does not override "
                         f"forward, got {type(model).__name__}")
    layers = []
    for module in model:
        layers.extend(sequential_layers(module) if isinstance(module, nn.Sequential) else [module])
    return layers


@torch.no_grad()
def shrink_sequential(model):
    """A smaller copy of ``model`` without its dead channels; the outputs are unchanged.

    Supported modules: Linear (on ``(n, features)`` inputs), Conv1d/2d/3d with
    ``groups=1``, BatchNorm1d/2d/3d on channels, ``nn.Flatten()``, element-wise
    activations, pooling and dropout; anything after the last Conv/Linear layer
    is copied as it is.  The last Conv/Linear layer keeps all its outputs; a
    layer whose channels are all dead keeps one (zero) channel.

    Parameters
    ----------
    model : torch.nn.Sequential
        The pruned model, pruned parameters exactly zero (as a
        :class:`granger_prune.MaskEnforcer` leaves them); it is not modified.

    Returns
    -------
    torch.nn.Sequential
        Every module in the training mode it had in ``model``.  In eval mode
        its outputs equal ``model``'s for every input up to floating-point
        summation order; in training mode too, unless the model has dropout
        (whose random draws depend on the tensor shapes).

    Raises
    ------
    ValueError
        For a model that is not a plain ``nn.Sequential`` (a nested subclass
        that overrides ``forward`` included), a grouped convolution, a module
        this export does not know between two Conv/Linear layers, or a channel
        layout it cannot follow (a Linear layer on inputs with more than two
        dimensions feeding a flattened layer, a Conv layer feeding a Linear
        one without ``nn.Flatten()``).

    Examples
    --------
    >>> smaller = shrink_sequential(pruned_cnn)                    # doctest: +SKIP
    >>> torch.allclose(smaller.eval()(x), pruned_cnn.eval()(x), atol=1e-5)  # doctest: +SKIP
    True
    """
    layers = [copy.deepcopy(m) for m in sequential_layers(model)]
    positions = [i for i, m in enumerate(layers) if isinstance(m, PRUNABLE_MODULES)]
    if not positions:
        raise ValueError("the model has no Linear or Conv layer to shrink")
    for i in positions:
        if getattr(layers[i], "groups", 1) != 1:
            raise ValueError(f"layer {i} is a grouped convolution (groups={layers[i].groups}); "
                             "shrink_sequential supports groups=1 only")
    for start, stop in zip(positions, positions[1:]):
        _drop_dead_channels(layers, start, stop)
    smaller = nn.Sequential(*layers)
    smaller.training = model.training  # the copied modules keep their own modes
    return smaller


def _drop_dead_channels(layers, start, stop):
    """Remove the dead output channels of ``layers[start]`` from it, the norms
    after it and the inputs of ``layers[stop]``, the next Conv/Linear layer."""
    layer, n = layers[start], out_channels(layers[start])
    weight = layer.weight.detach()
    dead = ~weight.reshape(n, -1).any(dim=1)
    if layer.bias is not None:
        dead &= layer.bias.detach() == 0
    norms, flattened = [], False
    for i in range(start + 1, stop):
        module = layers[i]
        if isinstance(module, NORM_MODULES):
            if flattened or module.num_features != n:
                raise ValueError(f"layer {i} ({type(module).__name__}({module.num_features})) does "
                                 f"not act on the {n} channels of layer {start}")
            dead &= (module.weight == 0) & (module.bias == 0) if module.affine else False
            norms.append(module)
        elif isinstance(module, nn.Flatten):
            if flattened or module.start_dim != 1 or module.end_dim != -1:
                raise ValueError(f"layer {i}: only one nn.Flatten() (start_dim=1) may follow a "
                                 "pruned layer")
            flattened = True
        elif isinstance(module, ACTIVATIONS):
            if module(torch.zeros(1, dtype=weight.dtype, device=weight.device)).item() != 0:
                dead[:] = False  # f(0) != 0: the channel is constant, not zero
        elif not isinstance(module, ZERO_PRESERVING):
            raise ValueError(f"layer {i} ({type(module).__name__}) between Conv/Linear layers "
                             "is not supported by shrink_sequential")
    _check_layout(layers, start, stop, n, flattened)
    keep = torch.nonzero(~dead).flatten()
    if keep.numel() == n:
        return
    if keep.numel() == 0:
        keep = torch.zeros(1, dtype=torch.long, device=weight.device)
    _keep_outputs(layer, keep)
    for norm in norms:
        _keep_norm_channels(norm, keep)
    _keep_inputs(layers[stop], keep, n)


def _check_layout(layers, start, stop, n_channels, flattened):
    """``ValueError`` unless channel ``c`` of ``layers[start]`` reaches ``layers[stop]``
    as its input channel ``c`` (Conv, Linear) or as block ``c`` of a flattened input."""
    producer, consumer = layers[start], layers[stop]
    if isinstance(consumer, nn.Linear) and not isinstance(producer, nn.Linear) and not flattened:
        raise ValueError(f"layer {stop} (Linear) takes the output of convolution {start} without "
                         "an nn.Flatten() between them; shrink_sequential cannot follow its channels")
    if isinstance(producer, nn.Linear) and not isinstance(consumer, nn.Linear):
        raise ValueError(f"layer {stop} ({type(consumer).__name__}) takes the output of Linear "
                         f"layer {start}; shrink_sequential cannot follow its channels")
    if isinstance(producer, nn.Linear) and flattened and consumer.in_features != n_channels:
        raise ValueError(f"Linear layer {start} acts on inputs with more than two dimensions "
                         f"(layer {stop} takes {consumer.in_features} flattened inputs from its "
                         f"{n_channels} channels); shrink_sequential supports (n, features) inputs")


def _keep_outputs(layer, keep):
    layer.weight = nn.Parameter(layer.weight[keep].clone(), requires_grad=layer.weight.requires_grad)
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias[keep].clone(), requires_grad=layer.bias.requires_grad)
    if isinstance(layer, nn.Linear):
        layer.out_features = keep.numel()
    else:
        layer.out_channels = keep.numel()


def _keep_inputs(layer, keep, n_channels):
    """Keep the inputs of ``layer`` that come from channels ``keep`` of ``n_channels``
    (a flattened channel spans ``in_features / n_channels`` consecutive inputs)."""
    n_inputs = layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels
    if n_inputs % n_channels:
        raise ValueError(f"{type(layer).__name__} has {n_inputs} inputs, not a multiple of the "
                         f"{n_channels} channels before it")
    block = n_inputs // n_channels
    index = (keep[:, None] * block + torch.arange(block, device=keep.device)).flatten()
    weight = layer.weight
    layer.weight = nn.Parameter(weight[:, index].clone(), requires_grad=weight.requires_grad)
    if isinstance(layer, nn.Linear):
        layer.in_features = index.numel()
    else:
        layer.in_channels = index.numel()


def _keep_norm_channels(norm, keep):
    norm.num_features = keep.numel()
    if norm.affine:
        norm.weight = nn.Parameter(norm.weight[keep].clone(), requires_grad=norm.weight.requires_grad)
        norm.bias = nn.Parameter(norm.bias[keep].clone(), requires_grad=norm.bias.requires_grad)
    if norm.running_mean is not None:
        norm.running_mean = norm.running_mean[keep].clone()
        norm.running_var = norm.running_var[keep].clone()
