"""Normalization layers for GANs.

Spectral normalization is flax's :class:`flax.linen.SpectralNorm` (its ``u``
vector and ``sigma`` live in the ``batch_stats`` collection, one power
iteration per training call), wrapped as :class:`SpectralDense` and
:class:`SpectralConv` that take ``train`` like the other layers here. Instance
normalization is flax's :class:`flax.linen.InstanceNorm` (Ulyanov, Vedaldi and
Lempitsky 2016), re-exported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ganjax.nn.conv import Conv

InstanceNorm = nn.InstanceNorm


class SpectralDense(nn.Module):
    """``nn.Dense`` with its kernel divided by its largest singular value (Miyato et al. 2018).

    The singular value is estimated by power iteration, ``n_steps`` per call;
    with ``train=True`` the iterate is stored (call with ``mutable=['batch_stats']``).

    Attributes:
      features: output features.
      use_bias: add a learned bias (not normalized).
      kernel_init: kernel initializer.
      n_steps: power iterations per call.
      dtype: the computation dtype (the kernel and its normalization stay float32).
    """

    features: int
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    n_steps: int = 1
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        dense = nn.Dense(self.features, use_bias=self.use_bias, kernel_init=self.kernel_init, dtype=self.dtype)
        return nn.SpectralNorm(dense, n_steps=self.n_steps)(x, update_stats=train)


class SpectralConv(nn.Module):
    """``nn.Conv`` with its kernel, reshaped to ``(kh * kw * C_in, C_out)``, spectrally normalized (Miyato et al. 2018).

    Attributes:
      features: output channels.
      kernel_size: ``(kh, kw)``.
      strides: ``(sh, sw)`` or one int.
      padding: as for ``nn.Conv``.
      use_bias: add a learned bias (not normalized).
      kernel_init: kernel initializer.
      n_steps: power iterations per call.
    """

    features: int
    kernel_size: Sequence[int]
    strides: int | Sequence[int] = 1
    padding: Any = "SAME"
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    n_steps: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        conv = Conv(
            self.features,
            self.kernel_size,
            self.strides,
            self.padding,
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
        )
        return nn.SpectralNorm(conv, n_steps=self.n_steps)(x, update_stats=train)


class PixelNorm(nn.Module):
    """Divides every feature vector by its root mean square over channels (Karras et al. 2018, ProGAN).

    ``y = x / sqrt(mean(x ** 2, axis=-1) + epsilon)``; no parameters. The mean is taken in float32
    (at least), the output has ``x``'s dtype.
    """

    epsilon: float = 1e-8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        scale = jax.lax.rsqrt(jnp.mean(jnp.square(wide), axis=-1, keepdims=True) + self.epsilon)
        return x * scale.astype(x.dtype)


def _batch_norm(
    train: bool, momentum: float, epsilon: float, axis_name: str | None, dtype: Any = jnp.float32
) -> nn.BatchNorm:
    """BatchNorm without its own scale and shift, for the modulated norms below (float32 statistics)."""
    return nn.BatchNorm(
        use_running_average=not train,
        momentum=momentum,
        epsilon=epsilon,
        use_scale=False,
        use_bias=False,
        axis_name=axis_name,
        dtype=dtype,
    )


def _modulate(x: jax.Array, scale: jax.Array, shift: jax.Array) -> jax.Array:
    """``x * scale + shift`` with per-sample ``(N, C)`` scale and shift broadcast over space, in ``x``'s dtype."""
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
    return x * scale.reshape(shape).astype(x.dtype) + shift.reshape(shape).astype(x.dtype)


class ConditionalBatchNorm(nn.Module):
    """BatchNorm whose scale and shift are rows of per-class tables (de Vries et al. 2017; Miyato and Koyama 2018).

    ``y = gamma[label] * (x - mean) / sqrt(var + eps) + beta[label]``, statistics
    over the whole batch. Scales start at 1, shifts at 0.

    Attributes:
      num_classes: rows of the scale and shift tables.
      momentum: decay of the running statistics.
      epsilon: added to the variance.
      axis_name: mapped axis for cross-replica statistics, or None.
      dtype: the output's dtype (statistics and tables stay float32).
    """

    num_classes: int
    momentum: float = 0.9
    epsilon: float = 1e-5
    axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array, train: bool) -> jax.Array:
        features = x.shape[-1]
        x = _batch_norm(train, self.momentum, self.epsilon, self.axis_name, self.dtype)(x)
        scale = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones, name="scale")(labels)
        shift = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros, name="shift")(labels)
        return _modulate(x, scale, shift)


class SelfModulatedBatchNorm(nn.Module):
    """BatchNorm whose scale and shift are functions of the latent z (Chen et al. 2019, "On Self Modulation for GANs").

    ``scale = 1 + MLP_s(z)``, ``shift = MLP_b(z)``, each MLP one hidden ReLU
    layer of ``hidden`` units.

    Attributes:
      hidden: hidden units of each MLP.
      momentum: decay of the running statistics.
      epsilon: added to the variance.
      axis_name: mapped axis for cross-replica statistics, or None.
      dtype: the output's dtype (statistics and the MLPs stay float32).
    """

    hidden: int = 32
    momentum: float = 0.9
    epsilon: float = 1e-5
    axis_name: str | None = None
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, z: jax.Array, train: bool) -> jax.Array:
        features = x.shape[-1]
        x = _batch_norm(train, self.momentum, self.epsilon, self.axis_name, self.dtype)(x)
        scale = 1.0 + nn.Dense(features, name="scale_out")(nn.relu(nn.Dense(self.hidden, name="scale_hidden")(z)))
        shift = nn.Dense(features, name="shift_out")(nn.relu(nn.Dense(self.hidden, name="shift_hidden")(z)))
        return _modulate(x, scale, shift)


class VirtualBatchNorm(nn.Module):
    """BatchNorm with the statistics of a fixed reference batch (Salimans et al. 2016).

    The first ``reference_size`` rows of ``x`` are the reference batch (feed the
    network ``concatenate([reference, batch])`` and drop those rows from its
    output). Reference rows are normalized with the reference statistics; every
    other row with the statistics of the reference batch plus itself, so no
    example depends on another in its batch. Statistics are over batch and
    space, per channel. Learned scale (init 1) and shift (init 0) per channel.

    Attributes:
      reference_size: rows of ``x`` that form the reference batch.
      epsilon: added to the variance.
      dtype: the output's dtype (statistics, scale and shift stay float32).
    """

    reference_size: int
    epsilon: float = 1e-5
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if not 0 < self.reference_size < x.shape[0]:
            raise ValueError(
                f"VirtualBatchNorm: reference_size must be in (0, {x.shape[0]}), got {self.reference_size}"
            )
        x = x.astype(jnp.float32)
        spatial = tuple(range(1, x.ndim - 1))
        sample_mean = jnp.mean(x, axis=spatial, keepdims=True)
        sample_sq = jnp.mean(jnp.square(x), axis=spatial, keepdims=True)
        n = self.reference_size
        ref_mean, ref_sq = jnp.mean(sample_mean[:n], axis=0), jnp.mean(sample_sq[:n], axis=0)
        mean = jnp.concatenate(
            [jnp.broadcast_to(ref_mean, sample_mean[:n].shape), (n * ref_mean + sample_mean[n:]) / (n + 1)]
        )
        sq = jnp.concatenate([jnp.broadcast_to(ref_sq, sample_sq[:n].shape), (n * ref_sq + sample_sq[n:]) / (n + 1)])
        y = (x - mean) * jax.lax.rsqrt(jnp.maximum(sq - jnp.square(mean), 0.0) + self.epsilon)
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return (y * scale + bias).astype(self.dtype)
