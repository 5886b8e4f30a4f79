"""Self-attention over the pixels of a feature map."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class SelfAttention(nn.Module):
    """SAGAN self-attention block, ``y = x + gamma * attention(x)`` with ``gamma`` starting at 0 (Zhang et al. 2018).

    With ``x`` flattened to ``(N, HW, C)``: queries ``f = x W_f`` and keys
    ``g = x W_g`` have ``C // key_ratio`` channels, values ``h = x W_h`` have
    ``C // value_ratio``; ``beta = softmax(f g^T)`` over keys, and the output is
    ``(beta h) W_o`` back to ``C`` channels. All projections are 1x1 convs
    without bias.

    Attributes:
      key_ratio: channels of queries and keys are ``C // key_ratio``.
      value_ratio: channels of values are ``C // value_ratio``.
      kernel_init: initializer of the projections.
      dtype: the computation dtype of the projections (:mod:`ganjax.nn.precision`); the softmax is float32.
    """

    key_ratio: int = 8
    value_ratio: int = 2
    kernel_init: Any = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, c = x.shape
        flat = x.reshape(n, h * w, c)

        def project(features, name):
            return nn.Dense(features, use_bias=False, kernel_init=self.kernel_init, dtype=self.dtype, name=name)

        query = project(max(c // self.key_ratio, 1), "query")(flat)
        key = project(max(c // self.key_ratio, 1), "key")(flat)
        value = project(max(c // self.value_ratio, 1), "value")(flat)
        scores = jnp.einsum("nqd,nkd->nqk", query, key).astype(jnp.promote_types(self.dtype, jnp.float32))
        beta = jax.nn.softmax(scores, axis=-1).astype(self.dtype)
        out = project(c, "out")(jnp.einsum("nqk,nkd->nqd", beta, value))
        gamma = self.param("gamma", nn.initializers.zeros, ())
        return x + gamma.astype(out.dtype) * out.reshape(n, h, w, c)
