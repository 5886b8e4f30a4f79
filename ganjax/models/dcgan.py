"""DCGAN generator and discriminator (Radford, Metz and Chintala 2015).

G: a dense projection of z to a small feature map, then stride-2 transposed
convolutions with BatchNorm and ReLU, and a tanh output (ganhacks trick 1).
D: stride-2 convolutions (no pooling, ganhacks trick 5) with LeakyReLU(0.2)
and BatchNorm on every layer but the first, ending in one logit per image.
Weights are drawn from N(0, 0.02) and BatchNorm scales from N(1, 0.02), as in
the paper. The transposed convolutions are :class:`ganjax.nn.conv.ConvTranspose`,
equal to flax's but with fast gradients.

Options (defaults are the paper's): G's norm (:data:`G_NORMS`), upsampling
(:data:`UPSAMPLINGS`) and activation (:data:`ACTIVATIONS`); D's norm
(:data:`D_NORMS`). G's norms beside BatchNorm: pixel norm (Karras et al.
2018), instance norm, virtual BatchNorm (Salimans et al. 2016, section 3.5:
the statistics of a fixed reference batch, :func:`reference_latents`, each
example normalized with the reference batch plus itself) and self-modulated
BatchNorm (Chen et al. 2019, On Self Modulation for GANs: scale and shift are
functions of z). Spectral norm keeps its power-iteration vectors in
``batch_stats``, so every option trains through ``mutable=['batch_stats']``.

``dtype`` is the computation dtype (:mod:`ganjax.nn.precision`): with
bfloat16, activations, convolutions and BatchNorm outputs are bfloat16 while
parameters and BatchNorm statistics stay float32; G's images and D's features
and logits leave the module as float32.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax import rng
from ganjax.nn.conv import Conv, ConvTranspose
from ganjax.nn.names import FEATURES
from ganjax.nn.normalization import (
    PixelNorm,
    SelfModulatedBatchNorm,
    SpectralConv,
    SpectralDense,
    VirtualBatchNorm,
)
from ganjax.nn.resample import NearestUpsampleConv, PixelShuffle
from ganjax.noise import DropoutAlways, GaussianNoise

weight_init = nn.initializers.normal(0.02)

G_NORMS = ("batch", "pixel", "instance", "virtual_batch", "self_modulated")
D_NORMS = ("batch", "spectral", "instance", "layer", "none")
UPSAMPLINGS = ("transposed", "pixelshuffle", "nearest")
ACTIVATIONS = {"relu": nn.relu, "leaky_relu": lambda x: nn.leaky_relu(x, 0.2)}
VIRTUAL_BATCH_REFERENCE = 64
"""Rows of the reference batch of G's virtual BatchNorm."""


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


def downsamplings(image_size: int) -> int:
    """D's stride-2 convs: until the feature map is at most 4x4, as in the paper. 28 -> 3; 32 -> 3; 64 -> 4."""
    n, side = 0, image_size
    while side > 4:
        side, n = -(-side // 2), n + 1
    return n


def _check(module: nn.Module, field: str, choices) -> None:
    value = getattr(module, field)
    if value not in choices:
        raise ValueError(f"{type(module).__name__}.{field}: unknown option {value!r}; choose one of {sorted(choices)}")


def _batch_norm(train: bool, axis_name: str | None, dtype: Any = jnp.float32) -> nn.BatchNorm:
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=0.9,
        epsilon=1e-5,
        scale_init=bn_scale_init,
        axis_name=axis_name,
        dtype=dtype,
    )


def _norm(kind: str, train: bool, axis_name: str | None, dtype: Any = jnp.float32):
    """The norm layer named ``kind`` (a callable on NHWC features), or None for ``'none'`` and ``'spectral'``.

    Its output is ``dtype``; its statistics are float32.
    """
    if kind == "batch":
        return _batch_norm(train, axis_name, dtype)
    if kind == "pixel":
        return PixelNorm()
    if kind == "instance":
        return nn.InstanceNorm(epsilon=1e-5, dtype=dtype)
    if kind == "layer":
        return nn.LayerNorm(epsilon=1e-5, reduction_axes=(1, 2, 3), feature_axes=-1, dtype=dtype)
    return None


def _g_norm(kind: str, z: jax.Array, train: bool, axis_name: str | None, dtype: Any):
    """G's norm layer named ``kind``, a callable on NHWC features; self-modulation is conditioned on ``z``."""
    if kind == "self_modulated":
        layer = SelfModulatedBatchNorm(axis_name=axis_name, dtype=dtype)
        return lambda x: layer(x, z, train)
    if kind == "virtual_batch":
        return VirtualBatchNorm(VIRTUAL_BATCH_REFERENCE, dtype=dtype)
    return _norm(kind, train, axis_name, dtype)


def reference_latents(latent_dim: int) -> jax.Array:
    """The reference batch's latents of G's virtual BatchNorm: N(0, I), drawn from the fixed key 0."""
    return jax.random.normal(rng.flat_draws(jax.random.key(0)), (VIRTUAL_BATCH_REFERENCE, latent_dim))


def _upsample(kind: str, features: int, use_bias: bool) -> nn.Module:
    """A 2x upsampling layer to ``features`` channels."""
    if kind == "transposed":
        return ConvTranspose(features, 4, strides=2, use_bias=use_bias, kernel_init=weight_init)
    if kind == "pixelshuffle":
        return PixelShuffle(features, 2, (3, 3), use_bias=use_bias, kernel_init=weight_init)
    return NearestUpsampleConv(features, 2, (3, 3), use_bias=use_bias, kernel_init=weight_init)


class Generator(nn.Module):
    """z ``(N, latent_dim)`` -> images ``(N, S, S, channels)`` in [-1, 1].

    Attributes:
      image_size: output side S (28, 32, 64, ...).
      channels: output channels.
      width: channels of the last hidden layer; each layer closer to z has twice as many.
      latent_dim: size of z.
      bn_axis_name: mapped axis over which BatchNorm statistics are averaged
        (cross-replica BatchNorm), or None.
      norm: one of :data:`G_NORMS` (see the module docstring), after the projection and every hidden upsampling.
      upsampling: one of :data:`UPSAMPLINGS`: 4x4 stride-2 transposed conv,
        3x3 conv + PixelShuffle, or nearest-neighbour + 3x3 conv.
      activation: a key of :data:`ACTIVATIONS` (LeakyReLU has slope 0.2).
      noise_std: std of the Gaussian noise added after every hidden layer in training
        (``ganjax.noise.GaussianNoise``, rng ``'noise'``; 0: off).
      dropout: rate of the dropout after every hidden layer, kept on at generation time
        (``ganjax.noise.DropoutAlways``, rng ``'dropout'``; 0: off).
      dtype: the computation dtype (:mod:`ganjax.nn.precision`); params stay float32, images are float32.
    """

    image_size: int = 28
    channels: int = 1
    width: int = 64
    latent_dim: int = 100
    bn_axis_name: str | None = None
    norm: str = "batch"
    upsampling: str = "transposed"
    activation: str = "relu"
    noise_std: float = 0.0
    dropout: float = 0.0
    dtype: Any = jnp.float32

    def __post_init__(self):
        _check(self, "norm", G_NORMS)
        _check(self, "upsampling", UPSAMPLINGS)
        _check(self, "activation", ACTIVATIONS)
        super().__post_init__()

    @nn.compact
    def __call__(self, z: jax.Array, train: bool = True) -> jax.Array:
        if z.ndim != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"Generator expects z of shape (N, {self.latent_dim}), got {z.shape}")
        reference = VIRTUAL_BATCH_REFERENCE if self.norm == "virtual_batch" else 0
        if reference:  # the reference batch goes first through every layer; its rows leave at the end
            z = jnp.concatenate([reference_latents(self.latent_dim).astype(z.dtype), z])
        base, n_up = layout(self.image_size)
        features = self.width * 2 ** (n_up - 1)
        x = nn.Dense(base * base * features, use_bias=False, kernel_init=weight_init, dtype=self.dtype)(z)
        x = x.reshape(z.shape[0], base, base, features)
        act = ACTIVATIONS[self.activation]

        def hidden(x):
            x = act(_g_norm(self.norm, z, train, self.bn_axis_name, self.dtype)(x))
            x = GaussianNoise(self.noise_std)(x, deterministic=not train)
            return DropoutAlways(self.dropout)(x) if self.dropout else x

        x = hidden(x)
        for _ in range(n_up - 1):
            features //= 2
            x = hidden(_upsample(self.upsampling, features, use_bias=self.norm == "pixel")(x))
        x = _upsample(self.upsampling, self.channels, use_bias=True)(x)
        return jnp.tanh(x[reference:]).astype(jnp.float32)


class Features(nn.Module):
    """DCGAN's D without its output layer: images ``(N, S, S, C)`` -> flat features ``(N, F)``.

    Stride-2 4x4 convolutions down to 4x4 or less (:func:`downsamplings`),
    LeakyReLU(0.2), a norm after every conv but the first (spectral
    normalization of every conv with ``norm='spectral'``). The conditional D and
    the VAE-GAN's encoder are this body with other heads.

    Attributes:
      image_size: input side S.
      width: channels of the first conv; each later conv doubles them.
      norm: one of :data:`D_NORMS`.
      bn_axis_name: mapped axis for cross-replica BatchNorm, or None.
      dtype: the computation dtype of the conv stack (:mod:`ganjax.nn.precision`); params stay float32 and
        the features are returned as float32, so the heads and the losses on them are float32.
    """

    image_size: int = 28
    width: int = 64
    norm: str = "batch"
    bn_axis_name: str | None = None
    dtype: Any = jnp.float32

    def __post_init__(self):
        _check(self, "norm", D_NORMS)
        super().__post_init__()

    def body(self, x: jax.Array, train: bool) -> jax.Array:
        """The conv stack, its layers made in the calling compact method's scope; float32 features."""
        if x.ndim != 4 or x.shape[1:3] != (self.image_size, self.image_size):
            raise ValueError(f"{type(self).__name__} expects NHWC images of side {self.image_size}, got {x.shape}")
        x = x.astype(self.dtype)
        for i in range(downsamplings(self.image_size)):
            norm = _norm(self.norm, train, self.bn_axis_name, self.dtype) if i > 0 else None
            conv_args = (self.width * 2**i, (4, 4), 2, "SAME")
            conv_kwargs = {"use_bias": norm is None, "kernel_init": weight_init}
            if self.norm == "spectral":
                x = SpectralConv(*conv_args, **conv_kwargs)(x, train)
            else:
                x = Conv(*conv_args, **conv_kwargs)(x)
            if norm is not None:
                x = norm(x)
            x = nn.leaky_relu(x, 0.2)
        return x.reshape(x.shape[0], -1).astype(jnp.float32)

    def body_module(self) -> Features:
        """The conv stack as a submodule named ``body``, for a model that keeps its fields beside other heads
        (the conditional D, the VAE-GAN's encoder); call it inside a compact method."""
        return Features(self.image_size, self.width, self.norm, self.bn_axis_name, self.dtype, name="body")

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        return self.body(x, train)


class Discriminator(Features):
    """Images ``(N, S, S, C)`` -> logits ``(N,)``: :class:`Features` and one output unit.

    With ``norm='spectral'`` the output layer is spectrally normalized too.
    """

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> jax.Array:
        x = self.body(x, train)
        self.sow("intermediates", FEATURES, x)  # the layer feature matching compares
        if self.norm == "spectral":
            return SpectralDense(1, kernel_init=weight_init)(x, train)[:, 0]
        return nn.Dense(1, kernel_init=weight_init)(x)[:, 0]
