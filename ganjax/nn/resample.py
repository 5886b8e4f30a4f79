"""Up- and downsampling layers for G and D (NHWC)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.nn.conv import Conv


def pixel_shuffle(x: jax.Array, scale: int) -> jax.Array:
    """Depth to space: ``(N, H, W, r * r * C) -> (N, r * H, r * W, C)`` (TensorFlow's ``depth_to_space`` order).

    Output pixel ``(r * h + i, r * w + j, c)`` is input channel ``(i * r + j) * C + c`` at ``(h, w)``.
    """
    n, h, w, depth = x.shape
    if depth % (scale * scale):
        raise ValueError(f"pixel_shuffle: channels {depth} not divisible by scale**2 = {scale * scale}")
    x = x.reshape(n, h, w, scale, scale, depth // (scale * scale))
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(n, h * scale, w * scale, -1)


def nearest_upsample(x: jax.Array, scale: int) -> jax.Array:
    """Repeats every pixel ``scale`` times along H and W."""
    n, h, w, c = x.shape
    return jnp.broadcast_to(x[:, :, None, :, None], (n, h, scale, w, scale, c)).reshape(n, h * scale, w * scale, c)


class PixelShuffle(nn.Module):
    """Sub-pixel convolution: a conv to ``scale**2 * features`` channels, then depth to space (Shi et al. 2016).

    Attributes:
      features: output channels.
      scale: upsampling factor.
      kernel_size: of the conv.
      use_bias: add a learned bias.
      kernel_init: kernel initializer.
    """

    features: int
    scale: int = 2
    kernel_size: Sequence[int] = (3, 3)
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv(self.features * self.scale ** 2, self.kernel_size, use_bias=self.use_bias,
                    kernel_init=self.kernel_init)(x)
        return pixel_shuffle(x, self.scale)


class NearestUpsampleConv(nn.Module):
    """Nearest-neighbour upsampling then a stride-1 conv, free of checkerboard artifacts (Odena et al. 2016).

    Attributes:
      features: output channels.
      scale: upsampling factor.
      kernel_size: of the conv.
      use_bias: add a learned bias.
      kernel_init: kernel initializer.
    """

    features: int
    scale: int = 2
    kernel_size: Sequence[int] = (3, 3)
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return Conv(self.features, self.kernel_size, use_bias=self.use_bias,
                       kernel_init=self.kernel_init)(nearest_upsample(x, self.scale))


class AvgPoolDown(nn.Module):
    """A stride-1 conv then ``scale x scale`` average pooling, as in the residual D of Gulrajani et al. 2017.

    Attributes:
      features: output channels.
      scale: downsampling factor.
      kernel_size: of the conv.
      use_bias: add a learned bias.
      kernel_init: kernel initializer.
    """

    features: int
    scale: int = 2
    kernel_size: Sequence[int] = (3, 3)
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = Conv(self.features, self.kernel_size, use_bias=self.use_bias, kernel_init=self.kernel_init)(x)
        window = (self.scale, self.scale)
        return nn.avg_pool(x, window, strides=window)


class StridedConvDown(nn.Module):
    """A strided conv in place of pooling (Springenberg et al. 2015; DCGAN, Radford et al. 2015).

    Attributes:
      features: output channels.
      scale: downsampling factor (the stride).
      kernel_size: of the conv (4 x 4 for stride 2, as in DCGAN).
      use_bias: add a learned bias.
      kernel_init: kernel initializer.
    """

    features: int
    scale: int = 2
    kernel_size: Sequence[int] = (4, 4)
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return Conv(self.features, self.kernel_size, strides=self.scale, use_bias=self.use_bias,
                       kernel_init=self.kernel_init)(x)
