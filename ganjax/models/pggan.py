"""Progressive growing GAN generator and discriminator (Karras, Aila, Laine and Lehtinen 2018).

Both networks are built for ``num_stages`` resolutions ``4, 8, ..., 4 * 2^(num_stages - 1)``
and called at one ``stage`` (a Python int) with a fade-in weight ``alpha`` (an
array, so it can change every step without recompiling). At stage ``s > 0``
the new layers are blended in:

* G: ``alpha * to_rgb_s(block_s(h)) + (1 - alpha) * upsample(to_rgb_{s-1}(h))``;
* D: ``alpha * block_s(from_rgb_s(x)) + (1 - alpha) * from_rgb_{s-1}(avgpool(x))``.

At ``alpha = 1`` the output is the new branch alone; at ``alpha = 0`` G's output is
its previous stage's output upsampled. Every layer has an equalized learning rate
(:class:`ganjax.nn.EqualizedConv`, :class:`ganjax.nn.EqualizedDense`); G
pixel-normalizes every feature map (:class:`ganjax.nn.PixelNorm`) and D ends
with minibatch stddev (:class:`ganjax.nn.MinibatchStdDev`). Layers are named
``block_i``, ``to_rgb_i``, ``from_rgb_i``, so one parameter tree (the union
over stages, :func:`init_all_stages`) serves every stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.nn.equalized import EqualizedConv
from ganjax.nn.equalized import EqualizedDense
from ganjax.nn.minibatch import MinibatchStdDev
from ganjax.nn.normalization import PixelNorm
from ganjax.nn.resample import nearest_upsample


def resolution(stage: int) -> int:
    """The image side at ``stage``: ``4 * 2^stage``."""
    return 4 * 2 ** stage


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, 0.2)


def _avg_pool2(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _features(stage: int, num_stages: int, width: int, max_width: int) -> int:
    """Channels at ``stage``: ``width`` at the finest, doubling towards 4x4, at most ``max_width``."""
    return min(max_width, width * 2 ** (num_stages - 1 - stage))


def _check_stage(stage: int, num_stages: int, who: str) -> None:
    if not 0 <= stage < num_stages:
        raise ValueError(f"{who}: stage must be in [0, {num_stages}), got {stage}")


def fade(alpha: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """``alpha * new + (1 - alpha) * old``; exactly ``new`` at ``alpha = 1``."""
    return alpha * new + (1.0 - alpha) * old


class GBlock(nn.Module):
    """Stage 0: z -> dense 4x4 -> conv3. Stage > 0: 2x nearest upsampling -> conv3 -> conv3.

    LeakyReLU(0.2) and pixel norm after each layer.
    """

    features: int
    first: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.first:
            x = EqualizedDense(16 * self.features, gain=math.sqrt(2.0) / 4)(PixelNorm()(x))
            x = PixelNorm()(_lrelu(x.reshape(x.shape[0], 4, 4, self.features)))
        else:
            x = nearest_upsample(x, 2)
            x = PixelNorm()(_lrelu(EqualizedConv(self.features)(x)))
        return PixelNorm()(_lrelu(EqualizedConv(self.features)(x)))


class DBlock(nn.Module):
    """Stage > 0: conv3 -> conv3 -> 2x avgpool. Stage 0: minibatch stddev -> conv3 -> conv4 'VALID' -> dense 1."""

    features: int
    out_features: int
    last: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.last:
            x = _lrelu(EqualizedConv(self.features)(MinibatchStdDev()(x)))
            x = _lrelu(EqualizedConv(self.features, (4, 4), padding="VALID")(x))
            return EqualizedDense(1, gain=1.0)(x.reshape(x.shape[0], -1))[:, 0]
        x = _lrelu(EqualizedConv(self.features)(x))
        return _avg_pool2(_lrelu(EqualizedConv(self.out_features)(x)))


class Generator(nn.Module):
    """``(z, alpha, stage)`` -> images ``(N, r, r, channels)`` with ``r = resolution(stage)``.

    Attributes:
      num_stages: resolutions 4 up to ``4 * 2^(num_stages - 1)``.
      channels: image channels.
      width: channels at the finest stage; coarser stages double them up to ``max_width``.
      max_width: the most channels of any stage.
      latent_dim: size of z.
    """

    num_stages: int = 4
    channels: int = 1
    width: int = 16
    max_width: int = 128
    latent_dim: int = 128

    @nn.compact
    def __call__(self, z: jax.Array, alpha: jax.Array, stage: int, train: bool = True) -> jax.Array:
        del train  # no statistics
        _check_stage(stage, self.num_stages, "pggan.Generator")

        def to_rgb(i, h):
            return EqualizedConv(self.channels, (1, 1), gain=1.0, name=f"to_rgb_{i}")(h)

        h = z
        previous = None
        for i in range(stage + 1):
            previous = h
            h = GBlock(_features(i, self.num_stages, self.width, self.max_width), first=i == 0, name=f"block_{i}")(h)
        if stage == 0:
            return to_rgb(0, h)
        return fade(alpha, to_rgb(stage, h), nearest_upsample(to_rgb(stage - 1, previous), 2))


class Discriminator(nn.Module):
    """``(images (N, r, r, C), alpha, stage)`` -> critic scores ``(N,)`` with ``r = resolution(stage)``.

    Attributes:
      num_stages: as for :class:`Generator`.
      width: channels at the finest stage; coarser stages double them up to ``max_width``.
      max_width: the most channels of any stage.
    """

    num_stages: int = 4
    width: int = 16
    max_width: int = 128

    @nn.compact
    def __call__(self, x: jax.Array, alpha: jax.Array, stage: int, train: bool = True) -> jax.Array:
        del train
        _check_stage(stage, self.num_stages, "pggan.Discriminator")
        if x.ndim != 4 or x.shape[1:3] != (resolution(stage),) * 2:
            raise ValueError(f"pggan.Discriminator at stage {stage} expects NHWC images of side "
                             f"{resolution(stage)}, got {x.shape}")
        features = lambda i: _features(i, self.num_stages, self.width, self.max_width)

        def from_rgb(i, images):
            return _lrelu(EqualizedConv(features(i), (1, 1), name=f"from_rgb_{i}")(images))

        def block(i, h):
            return DBlock(features(i), features(max(i - 1, 0)), last=i == 0, name=f"block_{i}")(h)

        if stage == 0:
            return block(0, from_rgb(0, x))
        h = fade(alpha, block(stage, from_rgb(stage, x)), from_rgb(stage - 1, _avg_pool2(x)))
        for i in reversed(range(stage)):
            h = block(i, h)
        return h


def init_all_stages(module: nn.Module, key: jax.Array, inputs_at: Callable[[int], jax.Array]) -> dict:
    """The union over every stage of ``module``'s params, from one key; ``inputs_at(stage)`` is z or images.

    Layers shared by several stages get the values of the last stage that has
    them; every stage's call then finds all of its layers in the one tree.
    """
    params = {}
    for stage in range(module.num_stages):
        params.update(module.init(key, inputs_at(stage), jnp.ones(()), stage)["params"])
    return params
