"""MSG-GAN generator and discriminator (Karnewar and Wang 2020, MSG-GAN: Multi-Scale Gradients for GANs).

G emits an image at every scale of its upsampling path; D takes each scale in
at the matching depth (the paper's simple combine: the image's channels are
concatenated to D's features of the same size), so D's gradient reaches every
layer of G directly. Scales are ordered coarsest first, e.g. sides
``[7, 14, 28]`` or ``[4, 8, 16, 32]`` (:func:`scales`); real images are brought to
the same scales by average pooling (:func:`pyramid`). The layers are those of
ProGAN (LeakyReLU(0.2), pixel norm in G, minibatch stddev at the end of D).

Between G and D the scales travel packed into one array (:func:`pack`: each
scale nearest-upsampled to the finest side, stacked along channels;
:func:`unpack` undoes it exactly by strided slicing). So fakes and reals are
ordinary ``(N, S, S, n_scales * C)`` batches, and the GAN phases
(:mod:`ganjax.training.gan`) with all their options (critic updates, penalties, instance noise, replay,
labels) train MSG-GAN unchanged.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.models.dcgan import layout
from ganjax.nn.conv import Conv
from ganjax.nn.minibatch import MinibatchStdDev
from ganjax.nn.names import FEATURES
from ganjax.nn.normalization import PixelNorm
from ganjax.nn.resample import nearest_upsample


def scales(image_size: int) -> list[int]:
    """The sides of the images G emits, coarsest first: 28 -> [7, 14, 28]; 32 -> [4, 8, 16, 32]."""
    base, n_up = layout(image_size)
    return [base * 2**i for i in range(n_up + 1)]


def pyramid(images: jax.Array, n_scales: int) -> list[jax.Array]:
    """``images`` ``(N, S, S, C)`` and its 2x, 4x, ... average-pooled versions, ``n_scales`` in all, coarsest first."""
    out = [images]
    for _ in range(n_scales - 1):
        out.append(nn.avg_pool(out[-1], (2, 2), strides=(2, 2)))
    return out[::-1]


def pack(images: list[jax.Array]) -> jax.Array:
    """Scales ``[(N, s_i, s_i, C)]``, coarsest first -> ``(N, S, S, n * C)``, each nearest-upsampled to side S."""
    side = images[-1].shape[1]
    return jnp.concatenate([nearest_upsample(x, side // x.shape[1]) for x in images], axis=-1)


def unpack(packed: jax.Array, sides: list[int]) -> list[jax.Array]:
    """The inverse of :func:`pack` for scales of ``sides``: exact, by taking every ``(S / s)``-th pixel."""
    channels = packed.shape[-1] // len(sides)
    return [
        packed[:, :: sides[-1] // s, :: sides[-1] // s, i * channels : (i + 1) * channels] for i, s in enumerate(sides)
    ]


def real_scales(images: jax.Array) -> jax.Array:
    """Real images ``(N, S, S, C)`` as D takes them: the packed :func:`pyramid` of :func:`scales` ``(S)``."""
    return pack(pyramid(images, len(scales(images.shape[1]))))


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, 0.2)


class Generator(nn.Module):
    """z ``(N, latent_dim)`` -> images in [-1, 1] at every side of :func:`scales`, packed: ``(N, S, S, n * channels)``.

    ``unpack(G(z), scales(S))`` gives the list ``[(N, s, s, channels)]``.

    Attributes:
      image_size: the side of the finest image.
      channels: image channels.
      width: channels of the finest block; each coarser block has twice as many.
      latent_dim: size of z.
      dtype: the computation dtype (:mod:`ganjax.nn.precision`); params stay float32, the images are float32.
    """

    image_size: int = 28
    channels: int = 1
    width: int = 16
    latent_dim: int = 64
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        del train  # no statistics: pixel norm only
        sides = scales(self.image_size)
        n = len(sides)

        def block(x, features):
            for _ in range(2):
                x = PixelNorm()(_lrelu(Conv(features, (3, 3))(x)))
            return x

        features = self.width * 2 ** (n - 1)
        x = nn.Dense(sides[0] * sides[0] * features, dtype=self.dtype)(PixelNorm()(z))
        x = PixelNorm()(_lrelu(x.reshape(z.shape[0], sides[0], sides[0], features)))
        images = []
        for i in range(n):
            if i:
                x = nearest_upsample(x, 2)
            x = block(x, self.width * 2 ** (n - 1 - i))
            images.append(jnp.tanh(Conv(self.channels, (1, 1), name=f"to_rgb_{i}")(x)))
        return pack(images).astype(jnp.float32)


class Discriminator(nn.Module):
    """Packed scales ``(N, S, S, n * C)`` (from :class:`Generator` or :func:`real_scales`) -> logits ``(N,)``.

    Attributes:
      image_size: the side of the finest image.
      width: channels of the finest block; each coarser block has twice as many.
      dtype: the computation dtype of the blocks (:mod:`ganjax.nn.precision`); params stay float32, the
        features and the logit are float32.
    """

    image_size: int = 28
    width: int = 16
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, packed: jax.Array, train: bool = True) -> jax.Array:
        del train
        sides = scales(self.image_size)
        n = len(sides)
        if packed.ndim != 4 or packed.shape[1:3] != (sides[-1],) * 2 or packed.shape[-1] % n:
            raise ValueError(f"msggan.Discriminator expects {n} packed scales of side {sides[-1]}, got {packed.shape}")
        images = unpack(packed.astype(self.dtype), sides)
        x = _lrelu(Conv(self.width, (1, 1), name="from_rgb")(images[-1]))
        for i in reversed(range(n)):
            features = self.width * 2 ** (n - 1 - i)
            if i < n - 1:
                x = jnp.concatenate([x, images[i]], axis=-1)
            if i == 0:
                x = MinibatchStdDev()(x)
            x = _lrelu(Conv(features, (3, 3))(x))
            x = _lrelu(Conv(features, (3, 3))(x))
            if i:
                x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        h = x.reshape(x.shape[0], -1).astype(jnp.float32)
        self.sow("intermediates", FEATURES, h)  # the layer feature matching compares
        return nn.Dense(1)(h)[:, 0]
