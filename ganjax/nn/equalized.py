"""Equalized learning rate layers (Karras et al. 2018, ProGAN).

Weights are drawn from N(0, 1) and multiplied at every call by He's constant
``gain / sqrt(fan_in)``, so Adam's step is the same size relative to every
layer's effective weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
from jax import lax


def he_constant(fan_in: int, gain: float) -> float:
    """``gain / sqrt(fan_in)``: the runtime weight scale of an equalized layer."""
    return gain / math.sqrt(fan_in)


class EqualizedDense(nn.Module):
    """Dense layer with N(0, 1) weights scaled by ``gain / sqrt(fan_in)`` at runtime (Karras et al. 2018).

    Attributes:
      features: output features.
      gain: ``sqrt(2)`` for ReLU-like activations, 1 for linear outputs.
      use_bias: add a learned bias (initialised to 0, not scaled).
    """

    features: int
    gain: float = math.sqrt(2.0)
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.normal(1.0), (x.shape[-1], self.features))
        y = x @ (kernel * he_constant(x.shape[-1], self.gain)).astype(x.dtype)
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
        return y


class EqualizedConv(nn.Module):
    """NHWC conv with N(0, 1) HWIO kernels scaled by ``gain / sqrt(kh * kw * C_in)`` at runtime (Karras et al. 2018).

    Attributes:
      features: output channels.
      kernel_size: ``(kh, kw)``.
      strides: ``(sh, sw)``.
      padding: ``'SAME'``, ``'VALID'`` or explicit pairs.
      gain: ``sqrt(2)`` for ReLU-like activations, 1 for linear outputs.
      use_bias: add a learned bias (initialised to 0, not scaled).
    """

    features: int
    kernel_size: Sequence[int] = (3, 3)
    strides: Sequence[int] = (1, 1)
    padding: str | Sequence[tuple[int, int]] = "SAME"
    gain: float = math.sqrt(2.0)
    use_bias: bool = True

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (*self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.normal(1.0), shape)
        kernel = (kernel * he_constant(math.prod(shape[:-1]), self.gain)).astype(x.dtype)
        y = lax.conv_general_dilated(
            x, kernel, tuple(self.strides), self.padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,)).astype(y.dtype)
        return y
