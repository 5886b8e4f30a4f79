"""Residual blocks of the spectrally normalized ResNet G and D (Miyato et al. 2018; Zhang et al. 2019, SAGAN).

Every convolution is a :class:`ganjax.nn.SpectralConv`, initialised Xavier-uniform. G's block normalizes
with BatchNorm, or with :class:`ganjax.nn.ConditionalBatchNorm` when it is given classes; D's has no
normalization.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.nn.normalization import ConditionalBatchNorm, SpectralConv
from ganjax.nn.resample import nearest_upsample

weight_init = nn.initializers.xavier_uniform()


def _avg_pool2(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


class _Norm(nn.Module):
    """BatchNorm, or conditional BatchNorm with ``num_classes > 0``; output in ``dtype``, statistics float32."""

    num_classes: int
    axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        if self.num_classes:
            return ConditionalBatchNorm(self.num_classes, axis_name=self.axis_name, dtype=self.dtype)(x, labels, train)
        return nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.axis_name, dtype=self.dtype)(x)


class ResBlockG(nn.Module):
    """``norm-ReLU-up-SNconv3-norm-ReLU-SNconv3`` plus the shortcut ``up-SNconv1``: ``(N, H, W, C) -> (N, 2H, 2W, F)``.

    Upsampling is 2x nearest-neighbour. Spectral norm keeps its power-iteration vectors in ``batch_stats``.

    Attributes:
      features: output channels ``F``.
      num_classes: classes of conditional BatchNorm; 0 for plain BatchNorm.
      axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: the computation dtype of its norms (its convolutions follow the input's).
    """

    features: int
    num_classes: int = 0
    axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, train: bool) -> jax.Array:
        def conv(size, name):
            return SpectralConv(self.features, (size, size), kernel_init=weight_init, name=name)

        h = nn.relu(_Norm(self.num_classes, self.axis_name, self.dtype, name="norm1")(x, labels, train))
        h = conv(3, "conv1")(nearest_upsample(h, 2), train)
        h = nn.relu(_Norm(self.num_classes, self.axis_name, self.dtype, name="norm2")(h, labels, train))
        h = conv(3, "conv2")(h, train)
        return h + conv(1, "shortcut")(nearest_upsample(x, 2), train)


class ResBlockD(nn.Module):
    """``[ReLU]-SNconv3-ReLU-SNconv3-avgpool`` plus the shortcut ``SNconv1-avgpool``: halves H and W.

    ``(N, H, W, C) -> (N, H/2, W/2, F)``.

    Attributes:
      features: output channels ``F``.
      preactivate: ReLU on the input; False for the first block, which sees images.
    """

    features: int
    preactivate: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        def conv(size, name):
            return SpectralConv(self.features, (size, size), kernel_init=weight_init, name=name)

        h = conv(3, "conv1")(nn.relu(x) if self.preactivate else x, train)
        h = _avg_pool2(conv(3, "conv2")(nn.relu(h), train))
        return h + _avg_pool2(conv(1, "shortcut")(x, train))
