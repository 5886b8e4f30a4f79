"""Named per-step keys, and random draws for the global batch sliced per device.

Step ``t`` of a run draws from ``fold_in(run_key, t)``; inside a step each use
of randomness asks for a key by name (``named(key, 'fake')``), so a name gets
the same key whichever other names a step asks for: the D phase and the G
phase of one step draw the same z. Draws for a batch are made for the global
batch and sliced per device (:func:`per_device`), so a run does not depend on
the device count.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

import jax
from jax import lax

PyTree = Any


def step_key(run_key: jax.Array, step: jax.Array | int) -> jax.Array:
    """The key of step ``step``: ``fold_in(run_key, step)``."""
    return jax.random.fold_in(run_key, step)


def named(key: jax.Array, name: str) -> jax.Array:
    """``fold_in(key, crc32(name))``: the key ``name`` of a step."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()))


def per_device(
    draw: Callable[[jax.Array, tuple[int, ...]], PyTree], key: jax.Array, shape: tuple[int, ...], axis_name: str | None
) -> PyTree:
    """``draw(key, shape)`` for this device: its slice of one draw for the global batch.

    Without an axis this is ``draw(key, shape)``; on ``n`` devices every device
    draws for the global ``(n * shape[0], ...)`` batch and keeps its own rows, so
    the result does not depend on the device count.
    """
    if axis_name is None:
        return draw(key, shape)
    n, index = lax.psum(1, axis_name), lax.axis_index(axis_name)
    draws = draw(key, (n * shape[0], *shape[1:]))
    return jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, index * shape[0], shape[0]), draws)


def per_device_normal(key: jax.Array, shape: tuple[int, ...], axis_name: str | None) -> jax.Array:
    """N(0, 1) of ``shape``, sliced per device as :func:`per_device` does."""
    return per_device(jax.random.normal, key, shape, axis_name)


def device_key(key: jax.Array, axis_name: str | None) -> jax.Array:
    """A key of this device's own (for draws made inside library functions, such as a penalty's)."""
    return key if axis_name is None else jax.random.fold_in(key, lax.axis_index(axis_name))


def mean_over_devices(tree: PyTree, axis_name: str | None) -> PyTree:
    """``lax.pmean`` over ``axis_name`` when the step runs per device; ``tree`` itself otherwise."""
    return tree if axis_name is None else lax.pmean(tree, axis_name)
