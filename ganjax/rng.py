"""Named per-step keys, and random draws for the global batch sliced per device.

Step ``t`` of a run draws from ``fold_in(run_key, t)``; inside a step each use
of randomness asks for a key by name (``named(key, 'fake')``), so a name gets
the same key whichever other names a step asks for: the D phase and the G
phase of one step draw the same z. Draws for a batch are made for the global
batch and sliced per device (:func:`per_device`), so a run does not depend on
the device count.

Step keys and the keys that initialise players draw through
:func:`flat_draws`: the same numbers, in a form XLA:CPU compiles several
times faster.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable
from typing import Any

import jax
import jax.extend.random
from jax import lax

PyTree = Any

_THREEFRY = jax.extend.random.threefry_prng_impl


def _flat_random_bits(key: jax.Array, bit_width: int, shape: tuple[int, ...]) -> jax.Array:
    return _THREEFRY.random_bits(key, bit_width, (math.prod(shape),)).reshape(shape)


FLAT_THREEFRY = jax.extend.random.define_prng_impl(
    key_shape=_THREEFRY.key_shape,
    seed=_THREEFRY.seed,
    split=_THREEFRY.split,
    fold_in=_THREEFRY.fold_in,
    random_bits=_flat_random_bits,
    name="threefry2x32_flat",
)
"""JAX's Threefry, drawing every array as one flat vector reshaped (see :func:`flat_draws`)."""


def flat_draws(key: jax.Array) -> jax.Array:
    """``key`` (a Threefry key) as a key whose draws are the same numbers, compiled several times faster on XLA:CPU.

    Threefry numbers the elements of a draw in row-major order, so a draw of
    shape ``(a, b, c, d)`` is the flat draw of ``a * b * c * d`` reshaped. XLA:CPU
    compiles the multi-dimensional counters of a 4-D draw far more slowly than
    a flat draw's (seconds for a conv kernel's shape; ``bench/README.md``), and
    a model's first init pays that for every kernel shape.
    Splits and folds are Threefry's own, so every key derived from this one
    draws Threefry's numbers too. A key of another implementation (``'rbg'``)
    is returned as it is.

    >>> key = jax.random.key(0)
    >>> bool((jax.random.normal(flat_draws(key), (3, 3, 2, 5)) == jax.random.normal(key, (3, 3, 2, 5))).all())
    True
    """
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and jax.random.key_impl(key) != _THREEFRY.name:
        return key  # already flat, or another implementation's key, whose numbers are its own
    return jax.random.wrap_key_data(jax.random.key_data(key), impl=FLAT_THREEFRY)


def step_key(run_key: jax.Array, step: jax.Array | int) -> jax.Array:
    """The key of step ``step``: ``fold_in(run_key, step)``, drawing through :func:`flat_draws`."""
    return flat_draws(jax.random.fold_in(run_key, step))


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
