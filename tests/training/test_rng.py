"""ganjax.training.rng: named step keys, and draws for the global batch sliced per device."""

import functools
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.training import rng

KEY = jax.random.key(3)


def key_data(key):
    return np.asarray(jax.random.key_data(key))


def test_step_and_named_keys_are_fold_ins():
    np.testing.assert_array_equal(key_data(rng.step_key(KEY, 5)), key_data(jax.random.fold_in(KEY, 5)))
    np.testing.assert_array_equal(
        key_data(rng.named(KEY, "fake")), key_data(jax.random.fold_in(KEY, zlib.crc32(b"fake")))
    )
    names = ["fake", "d", "g", "replay", "penalty"]
    assert len({key_data(rng.named(KEY, name)).tobytes() for name in names}) == len(names)
    assert len({key_data(rng.step_key(KEY, t)).tobytes() for t in range(4)}) == 4


def per_devices(fn, devices=4):
    """``fn()`` on ``devices`` simulated devices (a vmapped axis 'i')."""
    return jax.vmap(lambda _: fn(), axis_name="i")(jnp.arange(devices))


@pytest.mark.parametrize("draw", [jax.random.normal, functools.partial(jax.random.randint, minval=0, maxval=9)])
def test_per_device_slices_one_draw_for_the_global_batch(draw):
    whole = draw(KEY, (8, 4))
    sliced = per_devices(lambda: rng.per_device(draw, KEY, (2, 4), "i"))
    np.testing.assert_array_equal(np.asarray(sliced).reshape(8, 4), whole)
    np.testing.assert_array_equal(rng.per_device(draw, KEY, (8, 4), None), whole)


def test_per_device_normal_slices_the_global_draw():
    sliced = per_devices(lambda: rng.per_device_normal(KEY, (2, 4), "i"))
    np.testing.assert_array_equal(np.asarray(sliced).reshape(8, 4), jax.random.normal(KEY, (8, 4)))


def test_device_keys_differ_per_device_and_are_the_key_without_an_axis():
    draws = per_devices(lambda: jax.random.uniform(rng.device_key(KEY, "i")))
    assert len(set(np.asarray(draws).tolist())) == 4
    np.testing.assert_array_equal(key_data(rng.device_key(KEY, None)), key_data(KEY))


def test_mean_over_devices_averages_under_an_axis_only():
    values = jnp.arange(4.0)
    means = jax.vmap(lambda v: rng.mean_over_devices({"v": v}, "i"), axis_name="i")(values)
    np.testing.assert_array_equal(means["v"], 1.5)
    assert rng.mean_over_devices(values, None) is values
