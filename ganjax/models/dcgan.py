"""DCGAN generator and discriminator (Radford, Metz and Chintala 2015).

G: a dense projection of z to a small feature map, then stride-2 transposed
convolutions with BatchNorm and ReLU, and a tanh output (ganhacks trick 1).
D: stride-2 convolutions (no pooling, ganhacks trick 5) with LeakyReLU(0.2)
and BatchNorm on every layer but the first, ending in one logit per image.
Weights are drawn from N(0, 0.02) and BatchNorm scales from N(1, 0.02), as in
the paper. The transposed convolutions are :class:`ganjax.nn.conv.ConvTranspose`,
equal to flax's but with fast gradients.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.nn.conv import ConvTranspose

weight_init = nn.initializers.normal(0.02)


def bn_scale_init(key, shape, dtype=jnp.float32):
    """BatchNorm scale ~ N(1, 0.02), as in the DCGAN reference code."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def layout(image_size: int) -> tuple[int, int]:
    """``(base, n_up)``: the side of G's first feature map and the number of 2x upsamplings.

    28 -> (7, 2); 32 -> (4, 3); 64 -> (4, 4).
    """
    for base in (4, 7):
        n, side = 0, base
        while side < image_size:
            side, n = side * 2, n + 1
        if side == image_size and n > 0:
            return base, n
    raise ValueError(f"DCGAN supports image sizes 4 * 2^k and 7 * 2^k (e.g. 28, 32, 64), got {image_size}")


def _batch_norm(train: bool, axis_name: str | None) -> nn.BatchNorm:
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                        scale_init=bn_scale_init, axis_name=axis_name)


class Generator(nn.Module):
    """z ``(N, latent_dim)`` -> images ``(N, S, S, channels)`` in [-1, 1].

    Attributes:
      image_size: output side S (28, 32, 64, ...).
      channels: output channels.
      width: channels of the last hidden layer; each layer closer to z has twice as many.
      latent_dim: size of z.
      bn_axis_name: mapped axis over which BatchNorm statistics are averaged
        (cross-replica BatchNorm), or None.
    """

    image_size: int = 28
    channels: int = 1
    width: int = 64
    latent_dim: int = 100
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"Generator expects z of shape (N, {self.latent_dim}), got {z.shape}")
        base, n_up = layout(self.image_size)
        features = self.width * 2 ** (n_up - 1)
        x = nn.Dense(base * base * features, use_bias=False, kernel_init=weight_init)(z)
        x = x.reshape(z.shape[0], base, base, features)
        x = nn.relu(_batch_norm(train, self.bn_axis_name)(x))
        for i in range(n_up - 1):
            features //= 2
            x = ConvTranspose(features, 4, strides=2, use_bias=False, kernel_init=weight_init)(x)
            x = nn.relu(_batch_norm(train, self.bn_axis_name)(x))
        x = ConvTranspose(self.channels, 4, strides=2, kernel_init=weight_init)(x)
        return jnp.tanh(x)


class Discriminator(nn.Module):
    """Images ``(N, S, S, C)`` -> logits ``(N,)``.

    Attributes:
      image_size: input side S; sets the depth (one stride-2 conv per G upsampling).
      width: channels of the first conv; each later conv doubles them.
      bn_axis_name: as for :class:`Generator`.
    """

    image_size: int = 28
    width: int = 64
    bn_axis_name: str | None = None

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        if x.ndim != 4 or x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"Discriminator expects NHWC images of side {self.image_size}, got {x.shape}")
        _, n_down = layout(self.image_size)
        for i in range(n_down):
            x = nn.Conv(self.width * 2 ** i, (4, 4), strides=2, padding="SAME", use_bias=i == 0,
                        kernel_init=weight_init)(x)
            if i > 0:
                x = _batch_norm(train, self.bn_axis_name)(x)
            x = nn.leaky_relu(x, 0.2)
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(1, kernel_init=weight_init)(x)[:, 0]
