"""Small models for the offline studies: an MLP and a CNN for 8×8 inputs."""

import math

from torch import nn


class MLP(nn.Sequential):
    """Flatten → [Linear → ReLU] × len(hidden) → Linear.

    Parameters
    ----------
    in_features : int
    hidden : sequence of int
        Widths of the hidden layers.
    n_classes : int
    """

    def __init__(self, in_features=64, hidden=(128, 64), n_classes=10):
        layers = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_classes))
        super().__init__(*layers)


class SmallCNN(nn.Sequential):
    """Two 3×3 conv blocks (conv → [BatchNorm] → ReLU, max-pool after the second),
    then an MLP head.

    For inputs of shape (in_channels, image_size, image_size): the feature map
    after pooling is ``channels[-1] × (image_size // 2)²``.  With
    ``batch_norm=True`` each convolution is followed by a BatchNorm2d, whose
    channels are pruned with the convolution's filters.
    """

    def __init__(self, in_channels=1, channels=(16, 32), hidden=64, n_classes=10, image_size=8,
                 batch_norm=False):
        c1, c2 = channels
        side = image_size // 2

        def block(c_in, c_out):
            norm = [nn.BatchNorm2d(c_out)] if batch_norm else []
            return [nn.Conv2d(c_in, c_out, 3, padding=1), *norm, nn.ReLU()]

        super().__init__(
            *block(in_channels, c1), *block(c1, c2), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * side * side, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )


MODELS = {"mlp": MLP, "cnn": SmallCNN}


def build_model(name, input_shape, n_classes, **kwargs):
    """Build a model by name (a key of ``MODELS``) for inputs of ``input_shape``."""
    if name == "mlp":
        return MLP(in_features=math.prod(input_shape), n_classes=n_classes, **kwargs)
    if name == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"the cnn needs image inputs (C, H, W), got input_shape={input_shape}")
        return SmallCNN(in_channels=input_shape[0], n_classes=n_classes,
                        image_size=input_shape[1], **kwargs)
    raise ValueError(f"model must be one of {tuple(MODELS)}, got {name!r}")
