"""MLP generator and discriminator for low-dimensional data (the 2D Gaussian-mixture benchmark).

The architectures of the mixture experiments in the unrolled-GAN, VEEGAN and
PacGAN papers (Metz et al. 2017; Srivastava et al. 2017; Lin et al. 2018):
fully connected ReLU layers for G, LeakyReLU(0.2) for D, no normalization.
The seeds' tricks that act inside the models are options, off by default:
noise and always-on dropout in G's hidden layers, spectral norm and minibatch
statistics in D.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import flax.linen as nn
import jax

from ganjax.nn.minibatch import MinibatchDiscrimination, MinibatchStdDev
from ganjax.nn.names import FEATURES
from ganjax.nn.normalization import SpectralDense
from ganjax.noise import DropoutAlways, GaussianNoise

D_NORMS = ("none", "spectral")
MINIBATCH = ("none", "stddev", "discrimination")


def _check_2d(x: jax.Array, width: int, what: str):
    if x.ndim != 2 or x.shape[-1] != width:
        raise ValueError(f"{what} expects inputs of shape (N, {width}), got {x.shape}")


class Generator(nn.Module):
    """z ``(N, latent_dim)`` -> points ``(N, out_dim)`` (unbounded, linear output).

    Attributes:
      latent_dim: size of z.
      out_dim: size of a sample.
      hidden: widths of the hidden layers.
      noise_std: std of the Gaussian noise added after every hidden layer in training
        (ganhacks trick 13, Zhao et al. 2017; ``ganjax.noise.GaussianNoise``, rng ``'noise'``; 0: off).
      dropout: rate of the dropout after every hidden layer, kept on at generation time
        (ganhacks trick 17, Isola et al. 2017; ``ganjax.noise.DropoutAlways``, rng ``'dropout'``; 0: off).
    """

    latent_dim: int = 2
    out_dim: int = 2
    hidden: Sequence[int] = (128, 128, 128)
    noise_std: float = 0.0
    dropout: float = 0.0

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        _check_2d(z, self.latent_dim, "mlp.Generator")
        for width in self.hidden:
            z = nn.relu(nn.Dense(width)(z))
            z = GaussianNoise(self.noise_std)(z, deterministic=not train)
            z = DropoutAlways(self.dropout)(z) if self.dropout else z
        return nn.Dense(self.out_dim)(z)


class Discriminator(nn.Module):
    """Points ``(N, in_dim)`` -> logits ``(N,)``.

    Attributes:
      in_dim: size of a sample (``m`` times it for PacGAN packs of ``m``).
      hidden: widths of the hidden layers.
      norm: ``'spectral'`` divides every layer's kernel by its largest singular
        value (Miyato et al. 2018; power iterates in ``batch_stats``); ``'none'``.
      minibatch: before the last layer, append the batch's mean standard deviation
        (``'stddev'``, Karras et al. 2018) or each example's closeness to the rest of
        the batch (``'discrimination'``, Salimans et al. 2016); ``'none'``.
    """

    in_dim: int = 2
    hidden: Sequence[int] = (128, 128, 128)
    norm: Literal[D_NORMS] = "none"
    minibatch: Literal[MINIBATCH] = "none"

    def _dense(self, features: int, x: jax.Array, train: bool) -> jax.Array:
        return SpectralDense(features)(x, train) if self.norm == "spectral" else nn.Dense(features)(x)

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        _check_2d(x, self.in_dim, "mlp.Discriminator")
        for field, choices in (("norm", D_NORMS), ("minibatch", MINIBATCH)):
            value = getattr(self, field)
            if value not in choices:
                raise ValueError(f"mlp.Discriminator.{field}: unknown {value!r}; choose one of {choices}")
        for width in self.hidden:
            x = nn.leaky_relu(self._dense(width, x, train), 0.2)
        self.sow("intermediates", FEATURES, x)  # the layer feature matching compares
        if self.minibatch == "stddev":
            x = MinibatchStdDev()(x[:, None, None, :])[:, 0, 0, :]
        elif self.minibatch == "discrimination":  # 16 kernels of 4 (Salimans et al.: 100 of 5) for 2D points
            x = MinibatchDiscrimination(num_kernels=16, kernel_dim=4)(x)
        return self._dense(1, x, train)[:, 0]
