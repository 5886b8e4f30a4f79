"""Class-conditional DCGAN players: label embeddings, a projection D and an AC-GAN D.

G takes the class through a low-dimensional embedding concatenated with z;
D takes it as extra image channels, the embedding broadcast (upsampled from
1x1) to the image size (ganhacks #16 "Discrete variables in Conditional GANs": "use an embedding layer,
add it as additional channels to images, keep the embedding dimensionality low
and upsample to match the image channel size"; Mirza and Osindero 2014,
Conditional GANs). The alternative D adds the projection ``<embed(y), h>`` of
its features ``h`` to its logit (Miyato and Koyama 2018, cGANs with Projection
Discriminator), and the AC-GAN D takes no labels but predicts them with a
class head beside its real/fake logit (Odena, Olah and Shlens 2017; ganhacks
#12 "If you have labels, use them").

Every :class:`Discriminator` sows its penultimate features as
``intermediates/features``, the hidden layer that feature matching
(``Objective(g_objective='feature_matching')``) and the VAE-GAN's reconstruction loss
(:mod:`ganjax.models.vaegan`) compare.

D's body is :class:`ganjax.models.dcgan.Features` and G's body is
:class:`ganjax.models.dcgan.Generator` itself; both compute in ``dtype``
(:mod:`ganjax.nn.precision`), D's heads in float32 on the body's float32 features.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.models import dcgan
from ganjax.nn.names import FEATURES
from ganjax.nn.normalization import SpectralDense

CONDITIONINGS = ("none", "channels", "projection", "auxiliary")


def projection(features: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """The projection term ``<embed(y), h>`` per example (Miyato and Koyama 2018): ``(N, F), (N,) -> (N,)``."""
    embedding = nn.Embed(num_classes, features.shape[-1], embedding_init=dcgan.weight_init, name="projection")
    return jnp.sum(embedding(labels) * features, axis=-1)


class Generator(nn.Module):
    """z ``(N, latent_dim)`` and labels ``(N,)`` -> images ``(N, S, S, channels)`` in [-1, 1].

    The label's embedding (``embed_dim`` wide) is concatenated with z and the
    result goes through :class:`ganjax.models.dcgan.Generator`.

    Attributes:
      num_classes: the number of classes.
      embed_dim: size of the label embedding (kept low, ganhacks #16).
      image_size, channels, width, latent_dim, norm, upsampling, activation,
        noise_std, dropout, bn_axis_name, dtype: as for :class:`ganjax.models.dcgan.Generator`.
    """

    num_classes: int = 10
    embed_dim: int = 10
    image_size: int = 28
    channels: int = 1
    width: int = 64
    latent_dim: int = 100
    norm: str = "batch"
    upsampling: str = "transposed"
    activation: str = "relu"
    noise_std: float = 0.0
    dropout: float = 0.0
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, labels: jax.Array, train: bool = True) -> jax.Array:
        if labels.shape != z.shape[:1]:
            raise ValueError(f"conditional.Generator expects labels of shape {z.shape[:1]}, got {labels.shape}")
        embedded = nn.Embed(self.num_classes, self.embed_dim, name="embed")(labels)
        body = dcgan.Generator(
            self.image_size,
            self.channels,
            self.width,
            self.latent_dim + self.embed_dim,
            bn_axis_name=self.bn_axis_name,
            norm=self.norm,
            upsampling=self.upsampling,
            activation=self.activation,
            noise_std=self.noise_std,
            dropout=self.dropout,
            dtype=self.dtype,
            name="body",
        )
        return body(jnp.concatenate([z, embedded.astype(z.dtype)], axis=-1), train=train)


class Discriminator(dcgan.Features):
    """A DCGAN D, conditioned on the class as ``conditioning`` says; sows its features.

    Calls: ``D(images, labels, train=...)`` for ``'channels'`` and
    ``'projection'`` (returns logits ``(N,)``); ``D(images, train=...)`` for
    ``'none'`` (logits ``(N,)``) and ``'auxiliary'`` (returns ``(logits (N,),
    class_logits (N, num_classes))``, the AC-GAN D that
    :class:`ganjax.training.objective.Conditioning` ``aux_class_weight`` expects).

    Attributes:
      conditioning: one of :data:`CONDITIONINGS`: ``'none'`` (unconditional),
        ``'channels'`` (the label embedding as extra input channels),
        ``'projection'`` (Miyato and Koyama 2018) or ``'auxiliary'`` (AC-GAN).
      num_classes: the number of classes (unused with ``'none'``).
      embed_dim: channels of the label embedding with ``'channels'``.
      image_size, width, norm, bn_axis_name, dtype: as for :class:`ganjax.models.dcgan.Features`.
    """

    conditioning: str = "channels"
    num_classes: int = 10
    embed_dim: int = 4

    def __post_init__(self):
        dcgan._check(self, "conditioning", CONDITIONINGS)
        super().__post_init__()

    @property
    def takes_labels(self) -> bool:
        """Whether the call takes labels (``'channels'`` and ``'projection'``)."""
        return self.conditioning in ("channels", "projection")

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None = None, train: bool = True):
        if (labels is not None) != self.takes_labels:
            raise ValueError(
                f"conditional.Discriminator(conditioning={self.conditioning!r}) "
                f"{'needs' if self.takes_labels else 'takes no'} labels"
            )
        if self.conditioning == "channels":
            embedded = nn.Embed(self.num_classes, self.embed_dim, name="embed")(labels).astype(x.dtype)
            x = jnp.concatenate([x, jnp.broadcast_to(embedded[:, None, None, :], (*x.shape[:3], self.embed_dim))], -1)
        h = self.body_module()(x, train)
        self.sow("intermediates", FEATURES, h)
        if self.norm == "spectral":
            logits = SpectralDense(1, kernel_init=dcgan.weight_init, name="logit")(h, train)[:, 0]
        else:
            logits = nn.Dense(1, kernel_init=dcgan.weight_init, name="logit")(h)[:, 0]
        if self.conditioning == "projection":
            return logits + projection(h, labels, self.num_classes)
        if self.conditioning == "auxiliary":
            return logits, nn.Dense(self.num_classes, kernel_init=dcgan.weight_init, name="classes")(h)
        return logits
