"""CycleGAN's ResNet generator and PatchGAN discriminator (Zhu, Park, Isola and Efros 2017).

G (after Johnson et al. 2016): a reflect-padded 7x7 conv, ``n_down`` stride-2
convs, ``n_blocks`` residual blocks, ``n_down`` stride-2 transposed convs and a
7x7 conv to a tanh image; instance norm and ReLU after every conv but the last.
D (the 70x70 PatchGAN of Isola et al. 2017 at 256 pixels): 4x4 convs, stride 2
then stride 1, LeakyReLU(0.2), instance norm after all but the first, ending in
one logit per patch. Weights ~ N(0, 0.02) as in the reference code. The convs
are :class:`ganjax.nn.Conv` and :class:`ganjax.nn.ConvTranspose` (fast gradients).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.nn.conv import Conv
from ganjax.nn.conv import ConvTranspose

weight_init = nn.initializers.normal(0.02)


def _reflect_pad(x: jax.Array, pad: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")


def _norm() -> nn.InstanceNorm:
    return nn.InstanceNorm(epsilon=1e-5)


class ResidualBlock(nn.Module):
    """``x + IN(conv3(pad(ReLU(IN(conv3(pad(x)))))))`` with reflect padding."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        features = x.shape[-1]
        h = nn.relu(_norm()(Conv(features, (3, 3), padding="VALID", kernel_init=weight_init)(_reflect_pad(x, 1))))
        h = _norm()(Conv(features, (3, 3), padding="VALID", kernel_init=weight_init)(_reflect_pad(h, 1)))
        return x + h


class ResnetGenerator(nn.Module):
    """Images ``(N, H, W, C)`` in [-1, 1] -> images of the other domain ``(N, H, W, channels)``.

    Attributes:
      channels: output channels.
      width: channels of the first conv; each downsampling doubles them.
      n_blocks: residual blocks (9 at 256 pixels, 6 at 128 in the paper).
      n_down: stride-2 downsamplings (and as many upsamplings); H and W must divide by ``2^n_down``.
    """

    channels: int = 1
    width: int = 32
    n_blocks: int = 6
    n_down: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train  # instance norm has no running statistics
        if x.ndim != 4 or x.shape[1] % 2 ** self.n_down or x.shape[2] % 2 ** self.n_down:
            raise ValueError(f"ResnetGenerator: NHWC images with sides divisible by {2 ** self.n_down}, got {x.shape}")
        h = nn.relu(_norm()(Conv(self.width, (7, 7), padding="VALID", kernel_init=weight_init)(_reflect_pad(x, 3))))
        for i in range(self.n_down):
            h = nn.relu(_norm()(Conv(self.width * 2 ** (i + 1), (3, 3), strides=2, kernel_init=weight_init)(h)))
        for _ in range(self.n_blocks):
            h = ResidualBlock()(h)
        for i in reversed(range(self.n_down)):
            h = nn.relu(_norm()(ConvTranspose(self.width * 2 ** i, (3, 3), strides=2, kernel_init=weight_init)(h)))
        return jnp.tanh(Conv(self.channels, (7, 7), padding="VALID", kernel_init=weight_init)(_reflect_pad(h, 3)))


class PatchDiscriminator(nn.Module):
    """Images ``(N, H, W, C)`` -> patch logits ``(N, H / 2^n_layers, W / 2^n_layers)`` (rounded up).

    Attributes:
      width: channels of the first conv; each later conv doubles them, up to ``8 * width``.
      n_layers: stride-2 convs (3 in the paper's 70x70 PatchGAN).
    """

    width: int = 32
    n_layers: int = 3

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        del train
        h = nn.leaky_relu(Conv(self.width, (4, 4), strides=2, kernel_init=weight_init)(x), 0.2)
        for i in range(1, self.n_layers + 1):
            stride = 2 if i < self.n_layers else 1
            conv = Conv(self.width * min(2 ** i, 8), (4, 4), strides=stride, use_bias=False, kernel_init=weight_init)
            h = nn.leaky_relu(_norm()(conv(h)), 0.2)
        return Conv(1, (4, 4), kernel_init=weight_init)(h)[..., 0]
