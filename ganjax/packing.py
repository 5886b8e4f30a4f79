"""PacGAN's packing (Lin, Khetan, Fanti and Oh 2018): D judges packs of ``m`` samples, not single samples.

A pack concatenates ``m`` samples along the channel axis, so D sees whether
the samples of a pack are alike, as a mode-collapsed G's are; the objective's
``packing`` (:class:`ganjax.training.objective.Objective`) packs D's inputs in
both phases and in the penalty.

Example:
  >>> import jax.numpy as jnp
  >>> images = jnp.arange(4.0).reshape(4, 1, 1, 1)
  >>> pack(images, 2)[:, 0, 0].tolist()
  [[0.0, 1.0], [2.0, 3.0]]
  >>> bool((unpack(pack(images, 2), 2) == images).all())
  True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def pack(images: jax.Array, m: int) -> jax.Array:
    """PacGAN's packing (Lin, Khetan, Fanti and Oh 2018): ``(N, ..., C)`` to ``(N / m, ..., m * C)``.

    Pack ``i`` concatenates samples ``m * i`` to ``m * i + m - 1`` along the last (channel) axis.
    """
    n, *rest, channels = images.shape
    grouped = jnp.moveaxis(images.reshape(n // m, m, *rest, channels), 1, -2)
    return grouped.reshape(n // m, *rest, m * channels)


def unpack(packed: jax.Array, m: int) -> jax.Array:
    """The inverse of :func:`pack`: ``(N / m, ..., m * C)`` to ``(N, ..., C)``."""
    n, *rest, channels = packed.shape
    grouped = jnp.moveaxis(packed.reshape(n, *rest, m, channels // m), -2, 1)
    return grouped.reshape(n * m, *rest, channels // m)
