"""The VAE-GAN's players (Larsen, Sønderby, Larochelle and Winther 2016, Autoencoding beyond pixels).

The encoder is DCGAN's D body (:class:`ganjax.models.conditional.Features`)
with a dense head giving the mean and log-variance of ``q(z | x)``; the
decoder is the DCGAN generator (:class:`ganjax.models.dcgan.Generator`); D is
:class:`ganjax.models.conditional.Discriminator` with ``conditioning='none'``,
whose sown features are the hidden layer the reconstruction is measured in.
:func:`players` builds all three; :mod:`ganjax.vaegan` trains them.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from ganjax.models import conditional
from ganjax.models import dcgan


class Encoder(nn.Module):
    """Images ``(N, S, S, C)`` -> ``(mean, log_variance)``, each ``(N, latent_dim)``.

    Attributes:
      latent_dim: size of z.
      image_size, width, norm, bn_axis_name: as for :class:`ganjax.models.conditional.Features`.
    """

    latent_dim: int = 100
    image_size: int = 28
    width: int = 64
    norm: str = "batch"
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
        h = conditional.Features(self.image_size, self.width, self.norm, self.bn_axis_name, name="body")(x, train)
        out = nn.Dense(2 * self.latent_dim, kernel_init=dcgan.weight_init, name="posterior")(h)
        mean, log_variance = out[:, :self.latent_dim], out[:, self.latent_dim:]
        return mean, log_variance


def players(image_size: int = 28, channels: int = 1, latent_dim: int = 100, width: int = 64,
            encoder_norm: str = "batch", g_norm: str = "batch", d_norm: str = "layer",
            bn_axis_name: str | None = None) -> tuple[Encoder, dcgan.Generator, conditional.Discriminator]:
    """``(encoder, decoder, discriminator)``, DCGAN-shaped, ``width`` channels at the image end of each.

    D defaults to LayerNorm: its features of reals and of reconstructions are
    compared example by example, which BatchNorm's batch statistics would mix.
    """
    return (Encoder(latent_dim, image_size, width, encoder_norm, bn_axis_name),
            dcgan.Generator(image_size, channels, width, latent_dim, bn_axis_name=bn_axis_name, norm=g_norm),
            conditional.Discriminator("none", image_size=image_size, width=width, norm=d_norm,
                                      bn_axis_name=bn_axis_name))
