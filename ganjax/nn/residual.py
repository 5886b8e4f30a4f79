"""Residual blocks of the ResNet G and D (Gulrajani et al. 2017; Miyato et al. 2018)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from ganjax.nn.conv import Conv
from ganjax.nn.resample import nearest_upsample


def _avg_pool2(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class ResBlockG(nn.Module):
    """Upsampling block: ``BN-ReLU-up-conv3-BN-ReLU-conv3`` plus the shortcut ``up-conv1`` (Gulrajani et al. 2017).

    Upsampling is 2x nearest-neighbour. ``(N, H, W, C) -> (N, 2H, 2W, features)``.

    Attributes:
      features: output channels.
      momentum: BatchNorm decay.
      kernel_init: initializer of the convs.
      axis_name: mapped axis for cross-replica BatchNorm, or None.
    """

    features: int
    momentum: float = 0.9
    kernel_init: Any = nn.initializers.lecun_normal()
    axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        def norm(name):
            return nn.BatchNorm(
                use_running_average=not train, momentum=self.momentum, axis_name=self.axis_name, name=name
            )

        def conv(size, name):
            return Conv(self.features, (size, size), kernel_init=self.kernel_init, name=name)

        h = conv(3, "conv1")(nearest_upsample(nn.relu(norm("norm1")(x)), 2))
        h = conv(3, "conv2")(nn.relu(norm("norm2")(h)))
        return h + conv(1, "shortcut")(nearest_upsample(x, 2))


class ResBlockD(nn.Module):
    """Downsampling block: ``ReLU-conv3-ReLU-conv3-avgpool`` plus the shortcut ``conv1-avgpool`` (Miyato et al. 2018).

    ``(N, H, W, C) -> (N, H/2, W/2, features)``, or the same size with ``downsample=False``.

    Attributes:
      features: output channels.
      downsample: halve H and W with 2x2 average pooling.
      preactivate: apply ReLU to the input; False for the first block, which sees images.
      kernel_init: initializer of the convs.
    """

    features: int
    downsample: bool = True
    preactivate: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def conv(size, name):
            return Conv(self.features, (size, size), kernel_init=self.kernel_init, name=name)

        pool = _avg_pool2 if self.downsample else (lambda t: t)
        h = conv(3, "conv1")(nn.relu(x) if self.preactivate else x)
        h = pool(conv(3, "conv2")(nn.relu(h)))
        return h + pool(conv(1, "shortcut")(x))
