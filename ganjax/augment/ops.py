"""The :class:`Augment` an augmentation is (a random draw and a differentiable application), its chaining,
and the pixel helpers DiffAugment's and ADA's ops share."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array
Shape = tuple[int, ...]
Params = Any


@dataclasses.dataclass(frozen=True)
class Augment:
    """An augmentation of NHWC batches, split into its random draw and its differentiable application.

    Calling it, ``aug(key, images, *args)``, is ``aug.apply(aug.draw(key, images.shape, *args), images)``;
    it may be passed to ``jax.jit`` as it is (hashable, compared by identity of its functions).

    Attributes:
      draw: ``(key, shape, *args) -> params``: every example's random parameters
        (a pytree whose leaves lead with the batch axis), from the key, the batch's
        shape and the extra arguments (ADA's ``p``) only.
      apply: ``(params, images) -> images``: the transform, differentiable with respect to the images.
    """

    draw: Callable[..., Params]
    apply: Callable[[Params, Array], Array]

    def __call__(self, key: Array, images: Array, *args) -> Array:
        return self.apply(self.draw(key, images.shape, *args), images)


def check_images(shape: Shape) -> None:
    """Refuses a batch shape that is not NHWC."""
    if len(shape) != 4:
        raise ValueError(f"augment: expects NHWC images, got shape {shape}")


def per_example(values: Array, images: Array) -> Array:
    """``(B,)`` values as ``(B, 1, 1, 1)`` in the images' dtype."""
    return values.reshape(-1, 1, 1, 1).astype(images.dtype)


def uniform_ints(u: Array, low: Array | int, high: Array | int) -> Array:
    """Integers uniform in ``{low, ..., high - 1}`` from uniforms ``u`` in [0, 1)."""
    return jnp.minimum(low + jnp.floor(u * (high - low)).astype(jnp.int32), high - 1)


def normal(u: Array) -> Array:
    """Standard normals from uniforms ``u`` in [0, 1), by the inverse CDF (as ``jax.random.normal`` does)."""
    return math.sqrt(2.0) * lax.erf_inv(jnp.maximum(2.0 * u - 1.0, jnp.nextafter(-1.0, 0.0)))


def gather(images: Array, rows: Array, cols: Array) -> Array:
    """``out[b, y, x] = images[b, rows[b, y, x], cols[b, y, x]]``: a differentiable pixel gather."""
    return jax.vmap(lambda image, r, c: image[r, c])(images, rows, cols)


def policy_names(policy: str, table) -> list[str]:
    """The op names of a comma-separated ``policy``; refuses a name ``table`` lacks."""
    names = [name.strip() for name in policy.split(",") if name.strip()]
    unknown = [name for name in names if name not in table]
    if unknown:
        raise ValueError(f"augment: unknown op(s) {unknown} in policy {policy!r}; choose from {list(table)}")
    return names


def chain(*augments: Augment) -> Augment:
    """The augmentations one after another; each draws from its own key (``split(key, len(augments))``)."""

    def draw(key: Array, shape: Shape, *args) -> tuple[Params, ...]:
        keys = jax.random.split(key, len(augments)) if augments else []
        return tuple(aug.draw(k, shape, *args) for k, aug in zip(keys, augments))

    def apply(params: tuple[Params, ...], images: Array) -> Array:
        for aug, aug_params in zip(augments, params):
            images = aug.apply(aug_params, images)
        return images

    return Augment(draw, apply)
