"""Up- and downsampling layers for G and D (NHWC)."""

from __future__ import annotations

import functools
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


def _windows(x: jax.Array, size: int) -> jax.Array:
    """``(N, H, W, C) -> (N, H / size, W / size, size * size, C)``: each window's pixels in row-major order."""
    n, h, w, c = x.shape
    if h % size or w % size:
        raise ValueError(f"max_pool: window {size} does not divide the image sides {h} x {w}")
    x = x.reshape(n, h // size, size, w // size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // size, w // size, size * size, c)


def _from_windows(windows: jax.Array, size: int) -> jax.Array:
    """The inverse of :func:`_windows`: ``(N, H / size, W / size, size * size, C) -> (N, H, W, C)``."""
    n, rows, cols, _, c = windows.shape
    windows = windows.reshape(n, rows, cols, size, size, c).transpose(0, 1, 3, 2, 4, 5)
    return windows.reshape(n, rows * size, cols * size, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool(x: jax.Array, size: int) -> jax.Array:
    """``flax.linen.max_pool(x, (size, size), strides=(size, size))`` on NHWC images, with a fast gradient.

    XLA:CPU runs max-pooling's gradient (select-and-scatter) about ten times
    slower than its forward pass. This pools each window by a reshape and a
    max, and sends the window's gradient to its first maximum in row-major
    order, the pixel select-and-scatter picks; values and gradients equal
    flax's bit for bit, ties included.

    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> max_pool(x, 2)[0, ..., 0]
    Array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    return _windows(x, size).max(axis=3)


def _max_pool_fwd(x, size):
    pooled = max_pool(x, size)
    return pooled, (x, pooled)


def _max_pool_bwd(size, residuals, g):
    x, pooled = residuals
    hit = _windows(x, size) == pooled[:, :, :, None]
    first = hit & (jnp.cumsum(hit, axis=3) == 1)
    return (_from_windows(jnp.where(first, g[:, :, :, None], jnp.zeros((), g.dtype)), size),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


class _ResampleConv(nn.Module):
    """A conv and a change of resolution by ``scale``; the subclasses say in which order and how.

    Attributes:
      features: output channels.
      scale: the resampling factor.
      kernel_size: of the conv.
      use_bias: add a learned bias.
      kernel_init: kernel initializer.
    """

    features: int
    scale: int = 2
    kernel_size: Sequence[int] = (3, 3)
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()

    def conv(self, features: int, strides: int = 1) -> Conv:
        return Conv(features, self.kernel_size, strides, use_bias=self.use_bias, kernel_init=self.kernel_init)


class PixelShuffle(_ResampleConv):
    """Sub-pixel convolution: a conv to ``scale**2 * features`` channels, then depth to space (Shi et al. 2016)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return pixel_shuffle(self.conv(self.features * self.scale**2)(x), self.scale)


class NearestUpsampleConv(_ResampleConv):
    """Nearest-neighbour upsampling then a stride-1 conv, free of checkerboard artifacts (Odena et al. 2016)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(self.features)(nearest_upsample(x, self.scale))


class AvgPoolDown(_ResampleConv):
    """A stride-1 conv then ``scale x scale`` average pooling, as in the residual D of Gulrajani et al. 2017."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        window = (self.scale, self.scale)
        return nn.avg_pool(self.conv(self.features)(x), window, strides=window)


class StridedConvDown(_ResampleConv):
    """A strided conv in place of pooling (Springenberg et al. 2015; DCGAN, Radford et al. 2015).

    ``scale`` is the stride; the kernel is 4 x 4 for stride 2, as in DCGAN.
    """

    kernel_size: Sequence[int] = (4, 4)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return self.conv(self.features, strides=self.scale)(x)
