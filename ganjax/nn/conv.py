"""A transposed convolution whose gradients are fast on every XLA backend.

Autodiff of ``lax.conv_transpose`` differentiates a convolution over a
zero-dilated input; on XLA:CPU its kernel gradient runs about 25 times slower
than the forward pass. A transposed convolution is the adjoint of a strided
convolution, so all three products it needs (forward, input gradient and
kernel gradient) can be written as a strided convolution or the kernel
gradient of one, which every backend implements well. ``conv_transpose`` does
this through a ``jax.custom_vjp``; its value and gradients equal those of
``flax.linen.ConvTranspose``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")

Padding = str | Sequence[tuple[int, int]]


def _reference(x, kernel, strides, padding):
    return lax.conv_transpose(x, kernel, strides, padding, dimension_numbers=_DIMENSION_NUMBERS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv_transpose(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: Padding) -> jax.Array:
    """``lax.conv_transpose`` on NHWC inputs and HWIO kernels, with fast gradients.

    Args:
      x: input of shape ``(N, H, W, C_in)``.
      kernel: kernel of shape ``(kh, kw, C_in, C_out)`` (flax's layout, not transposed).
      strides: the upsampling factors ``(sh, sw)``.
      padding: ``'SAME'``, ``'VALID'`` or ``((lo_h, hi_h), (lo_w, hi_w))``.

    Returns:
      The same array as ``lax.conv_transpose(x, kernel, strides, padding)``.
    """
    return _reference(x, kernel, strides, padding)


def _fwd(x, kernel, strides, padding):
    return _reference(x, kernel, strides, padding), (x, kernel)


def _bwd(strides, padding, residuals, g):
    # y = B(x, k) is bilinear. Its input gradient A_k(g) = dB/dx^T g is a strided
    # convolution of g. Since <g, B(x, k)> = <A_k(g), x>, the kernel gradient is
    # the kernel gradient of that strided convolution with cotangent x.
    x, kernel = residuals

    def adjoint(k):
        _, vjp_x = jax.vjp(lambda inputs: _reference(inputs, k, strides, padding), x)
        return vjp_x(g)[0]

    grad_x, vjp_k = jax.vjp(adjoint, kernel)
    (grad_kernel,) = vjp_k(x)
    return grad_x, grad_kernel


conv_transpose.defvjp(_fwd, _bwd)


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


# ----------------------------------------------------------------------------- strided convolution


def _conv(x, kernel, strides, padding):
    return lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DIMENSION_NUMBERS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def _conv_adjoint(g, kernel, strides, padding, input_shape):
    """``C_k^T g``: the input gradient of the strided convolution ``C_k``, with fast gradients of its own."""
    _, vjp_x = jax.vjp(lambda x: _conv(x, kernel, strides, padding), jnp.zeros(input_shape, g.dtype))
    return vjp_x(g)[0]


def _conv_adjoint_fwd(g, kernel, strides, padding, input_shape):
    return _conv_adjoint(g, kernel, strides, padding, input_shape), (g, kernel)


def _conv_adjoint_bwd(strides, padding, input_shape, residuals, h):
    # <h, C_k^T g> = <C_k h, g>: both gradients are those of the strided convolution C_k h.
    g, kernel = residuals
    grad_g, vjp_k = jax.vjp(lambda k: _conv(h, k, strides, padding), kernel)
    return grad_g, vjp_k(g)[0]


_conv_adjoint.defvjp(_conv_adjoint_fwd, _conv_adjoint_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: Padding) -> jax.Array:
    """``lax.conv_general_dilated`` on NHWC inputs and HWIO kernels, fast to differentiate twice.

    Its input gradient is itself a function with fast gradients, so penalties
    on ``grad_x D(x)`` (WGAN-GP, R1, DRAGAN) avoid the slow kernel gradient of
    an input-dilated convolution that plain autodiff of the second order emits.
    """
    return _conv(x, kernel, strides, padding)


def _conv_fwd(x, kernel, strides, padding):
    return _conv(x, kernel, strides, padding), (x, kernel)


def _conv_bwd(strides, padding, residuals, g):
    x, kernel = residuals
    _, vjp_k = jax.vjp(lambda k: _conv(x, k, strides, padding), kernel)
    return _conv_adjoint(g, kernel, strides, padding, x.shape), vjp_k(g)[0]


conv.defvjp(_conv_fwd, _conv_bwd)


class _ConvLayer(nn.Module):
    """The parameters and call shared by :class:`Conv` and :class:`ConvTranspose`.

    Parameters have flax's names and shapes (``kernel``: ``(kh, kw, C_in, features)``,
    ``bias``: ``(features,)``), so checkpoints are interchangeable with flax's layers.

    Attributes:
      features: output channels.
      kernel_size: ``(kh, kw)`` or one int for both.
      strides: ``(sh, sw)`` or one int.
      padding: ``'SAME'``, ``'VALID'`` or explicit ``((lo, hi), (lo, hi))`` pairs.
      use_bias: add a learned bias.
      kernel_init: kernel initializer.
      bias_init: bias initializer.
    """

    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: Padding = "SAME"
    use_bias: bool = True
    kernel_init: Any = nn.initializers.lecun_normal()
    bias_init: Any = nn.initializers.zeros_init()

    @staticmethod
    def operation(x, kernel, strides, padding):
        raise NotImplementedError

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim != 4:
            raise ValueError(f"{type(self).__name__} expects NHWC input, got shape {x.shape}")
        padding = self.padding if isinstance(self.padding, str) else tuple(tuple(p) for p in self.padding)
        kernel = self.param("kernel", self.kernel_init, (*_pair(self.kernel_size), x.shape[-1], self.features))
        y = self.operation(x, kernel.astype(x.dtype), _pair(self.strides), padding)
        if self.use_bias:
            y = y + self.param("bias", self.bias_init, (self.features,)).astype(y.dtype)
        return y


class Conv(_ConvLayer):
    """Drop-in ``flax.linen.Conv`` for NHWC images whose double gradients are fast (see :func:`conv`)."""

    operation = staticmethod(conv)


class ConvTranspose(_ConvLayer):
    """Drop-in ``flax.linen.ConvTranspose`` for NHWC images, with fast gradients (see :func:`conv_transpose`)."""

    operation = staticmethod(conv_transpose)
