"""ganjax.rng: named step keys, and draws for the global batch sliced per device."""

import functools
import zlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import rng
from ganjax.training.state import Player

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


DRAWS = {
    "normal": jax.random.normal,
    "uniform": functools.partial(jax.random.uniform, minval=-1.0, maxval=2.0),
    "bits": jax.random.bits,
    "truncated_normal": lambda key, shape: jax.random.truncated_normal(key, -2.0, 2.0, shape),
    "bernoulli": lambda key, shape: jax.random.bernoulli(key, 0.3, shape),
    "randint": functools.partial(jax.random.randint, minval=0, maxval=9),
    "permutation of rows": lambda key, shape: jax.random.permutation(key, jnp.arange(np.prod(shape)).reshape(shape)),
}


@pytest.mark.parametrize("shape", [(7,), (4, 3), (3, 3, 2, 5), (2, 1, 3, 1, 4)])
@pytest.mark.parametrize("name", DRAWS)
def test_flat_draws_are_threefrys_numbers(name, shape):
    draw, key = DRAWS[name], rng.named(KEY, name)
    np.testing.assert_array_equal(draw(rng.flat_draws(key), shape), draw(key, shape))
    np.testing.assert_array_equal(jax.jit(draw, static_argnums=1)(rng.flat_draws(key), shape), draw(key, shape))
    # Keys derived from a flat key are Threefry's keys, and draw flat too.
    derived = jax.random.split(jax.random.fold_in(rng.flat_draws(key), 1))[1]
    np.testing.assert_array_equal(key_data(derived), key_data(jax.random.split(jax.random.fold_in(key, 1))[1]))
    assert jax.random.key_impl(derived) == jax.random.key_impl(rng.flat_draws(key)) != jax.random.key_impl(key)


@pytest.mark.parametrize("key", [jax.random.key(1, impl="rbg"), rng.flat_draws(jax.random.key(1))], ids=["rbg", "flat"])
def test_flat_draws_keeps_a_key_that_is_not_plain_threefry(key):
    assert rng.flat_draws(key) is key


def test_flat_draws_of_a_raw_key_is_its_threefry_key():
    raw = jax.random.PRNGKey(4)
    np.testing.assert_array_equal(jax.random.normal(rng.flat_draws(raw), (2, 3)), jax.random.normal(raw, (2, 3)))


def test_step_keys_and_player_inits_draw_flat():
    """The wiring: a step's key and a player's init key draw through flat_draws."""
    flat = jax.random.key_impl(rng.flat_draws(KEY))
    assert jax.random.key_impl(rng.step_key(KEY, 5)) == flat
    seen = []

    class Probe(nn.Module):
        @nn.compact
        def __call__(self, x, train):
            seen.append(jax.random.key_impl(self.make_rng("params")))
            return nn.Dense(2)(x)

    player = Player.create(Probe(), optax.sgd(1.0), KEY, jnp.zeros((1, 3)))
    assert seen == [flat] and player.params["Dense_0"]["kernel"].shape == (3, 2)


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
