"""MLP generator and discriminator for low-dimensional data (the 2D Gaussian-mixture benchmark).

The architectures of the mixture experiments in the unrolled-GAN, VEEGAN and
PacGAN papers (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018):
fully connected ReLU layers for G, LeakyReLU(0.2) for D, no normalization.
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax

from ganjax.training.state import FEATURES


def _check_2d(x: jax.Array, width: int, what: str):
    if x.ndim != 2 or x.shape[-1] != width:
        raise ValueError(f"{what} expects inputs of shape (N, {width}), got {x.shape}")


class Generator(nn.Module):
    """z ``(N, latent_dim)`` -> points ``(N, out_dim)`` (unbounded, linear output).

    Attributes:
      latent_dim: size of z.
      out_dim: size of a sample.
      hidden: widths of the hidden layers.
    """

    latent_dim: int = 2
    out_dim: int = 2
    hidden: Sequence[int] = (128, 128, 128)

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        del train  # No BatchNorm or dropout: train and eval modes are the same.
        _check_2d(z, self.latent_dim, "mlp.Generator")
        for width in self.hidden:
            z = nn.relu(nn.Dense(width)(z))
        return nn.Dense(self.out_dim)(z)


class Discriminator(nn.Module):
    """Points ``(N, in_dim)`` -> logits ``(N,)``.

    Attributes:
      in_dim: size of a sample.
      hidden: widths of the hidden layers.
    """

    in_dim: int = 2
    hidden: Sequence[int] = (128, 128, 128)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train
        _check_2d(x, self.in_dim, "mlp.Discriminator")
        for width in self.hidden:
            x = nn.leaky_relu(nn.Dense(width)(x), 0.2)
        self.sow("intermediates", FEATURES, x)  # the layer feature matching compares
        return nn.Dense(1)(x)[:, 0]
