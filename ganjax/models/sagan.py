"""SAGAN generator and discriminator (Zhang, Goodfellow, Metaxas and Odena 2019, Self-Attention GANs).

Both players are residual networks (:mod:`ganjax.nn.residual`, the blocks of Miyato et al. 2018) with
every convolution and dense layer spectrally normalized, and a
:class:`ganjax.nn.SelfAttention` block at a middle resolution: after G's
middle upsampling block and after D's first downsampling block. Spectral norm
keeps its power-iteration vectors in ``batch_stats``, so both players train
through ``mutable=['batch_stats']`` (as :class:`ganjax.training.state.Player` does).

With ``num_classes > 0`` the model is class-conditional: G's BatchNorms become
:class:`ganjax.nn.ConditionalBatchNorm` and D adds the projection term
``<embed(y), h>`` of Miyato and Koyama 2018 to its logit. Train with the hinge
loss and the two time-scale update rule (Heusel et al. 2017): Adam lr_D 4e-4, lr_G 1e-4, b1 0, b2 0.9
(``experiments/sagan.py``'s optimizers).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.models.dcgan import layout
from ganjax.nn.attention import SelfAttention
from ganjax.nn.names import FEATURES
from ganjax.nn.normalization import SpectralConv, SpectralDense
from ganjax.nn.residual import ResBlockD, ResBlockG, weight_init


def _check_labels(num_classes: int, labels: jax.Array | None, who: str) -> None:
    if (labels is None) != (num_classes == 0):
        raise ValueError(
            f"{who}: labels are needed exactly when num_classes > 0 "
            f"(num_classes={num_classes}, labels {'missing' if labels is None else 'given'})"
        )


class Generator(nn.Module):
    """z ``(N, latent_dim)`` (and labels ``(N,)`` when conditional) -> images ``(N, S, S, channels)`` in [-1, 1].

    Attributes:
      image_size: output side S, ``4 * 2^k`` or ``7 * 2^k`` (see :func:`ganjax.models.dcgan.layout`).
      channels: output channels.
      width: channels of the last block; each block closer to z has twice as many.
      latent_dim: size of z.
      num_classes: classes of the conditional BatchNorms; 0 for an unconditional G.
      bn_axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: the computation dtype (:mod:`ganjax.nn.precision`); params and statistics stay float32, images
        are float32.
    """

    image_size: int = 28
    channels: int = 1
    width: int = 32
    latent_dim: int = 128
    num_classes: int = 0
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array | None = None, train: bool = True) -> jax.Array:
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"sagan.Generator expects z of shape (N, {self.latent_dim}), got {z.shape}")
        _check_labels(self.num_classes, labels, "sagan.Generator")
        base, n_up = layout(self.image_size)
        features = self.width * 2 ** (n_up - 1)
        x = SpectralDense(base * base * features, kernel_init=weight_init, dtype=self.dtype)(z, train)
        x = x.reshape(z.shape[0], base, base, features)
        for i in range(n_up):
            features = self.width * 2 ** (n_up - 1 - i)
            block = ResBlockG(features, self.num_classes, self.bn_axis_name, self.dtype, name=f"GBlock_{i}")
            x = block(x, labels, train)
            if i == (n_up - 1) // 2:
                x = SelfAttention(dtype=self.dtype)(x)
        norm = nn.BatchNorm(use_running_average=not train, momentum=0.9, axis_name=self.bn_axis_name, dtype=self.dtype)
        x = nn.relu(norm(x))
        return jnp.tanh(SpectralConv(self.channels, (3, 3), kernel_init=weight_init)(x, train)).astype(jnp.float32)


class Discriminator(nn.Module):
    """Images ``(N, S, S, C)`` (and labels ``(N,)`` when conditional) -> logits ``(N,)``.

    Attributes:
      image_size: input side S; one downsampling block per G upsampling block.
      width: channels of the first block; each later block doubles them.
      num_classes: classes of the projection embedding; 0 for an unconditional D.
      dtype: the computation dtype of the blocks (:mod:`ganjax.nn.precision`); params stay float32, the
        features and the heads on them are float32.
    """

    image_size: int = 28
    width: int = 32
    num_classes: int = 0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, train: bool = True) -> jax.Array:
        if x.ndim != 4 or x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"sagan.Discriminator expects NHWC images of side {self.image_size}, got {x.shape}")
        _check_labels(self.num_classes, labels, "sagan.Discriminator")
        _, n_down = layout(self.image_size)
        x = x.astype(self.dtype)
        for i in range(n_down):
            x = ResBlockD(self.width * 2**i, preactivate=i > 0, name=f"DBlock_{i}")(x, train)
            if i == 0:
                x = SelfAttention(dtype=self.dtype)(x)
        h = jnp.sum(nn.relu(x).astype(jnp.float32), axis=(1, 2))
        self.sow("intermediates", FEATURES, h)  # the layer feature matching compares
        logits = SpectralDense(1, kernel_init=weight_init)(h, train)[:, 0]
        if self.num_classes:
            embedding = nn.Embed(self.num_classes, h.shape[-1], embedding_init=weight_init, name="projection")
            logits = logits + jnp.sum(embedding(labels) * h, axis=-1)
        return logits
