"""PacGAN packing (Lin, Khetan, Fanti and Oh 2018): D judges packs of m samples in every call the step makes.

The switch tests use a D that takes any number of channels, so a step that ignored packing would still run,
and its losses would differ from the packed ones written out by hand.
"""

import re
import types

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import losses, penalties, rng
from ganjax.packing import pack
from ganjax.run import gan_state
from ganjax.training.gan import create_state
from ganjax.training.objective import Objective
from tests.training.tiny import (
    REAL,
    SowingD,
    TinyG,
    d_apply,
    d_keys,
    jit_step,
    make_state,
    run,
    step_fake,
    step_key,
    tiny_gan,
)

X = REAL["image"]
TOL = dict(rtol=1e-5, atol=1e-6)
PACKED = tiny_gan(Objective(packing=2))
IMAGES = {"image": X.reshape(8, 2, 2, 1)}
SEEN: list[tuple[int, ...]] = []  # the input shapes ShapeD was traced with


class ImageG(nn.Module):
    """TinyG's 4 values as a 2x2 one-channel image."""

    @nn.compact
    def __call__(self, z, train=True):
        return TinyG()(z, train).reshape(-1, 2, 2, 1)


class ShapeD(nn.Module):
    """A linear D on flattened images that records the shape of each input it is traced with."""

    @nn.compact
    def __call__(self, x, train=True):
        SEEN.append(x.shape)
        return nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]


class AnyChannelsD(nn.Module):
    """A logit from any number of channels: the sum of one learnt nonlinearity of each value."""

    @nn.compact
    def __call__(self, x, train=True):
        return jnp.sum(jnp.tanh(nn.Dense(1)(x[..., None])[..., 0]), -1)


def d_params(state):
    return state.players["d"].params


def test_pack_concatenates_groups_of_m_consecutive_samples_along_channels():
    x = jnp.arange(6 * 2 * 2 * 3).reshape(6, 2, 2, 3)
    for m in (2, 3):
        expected = jnp.stack([jnp.concatenate(list(x[i : i + m]), -1) for i in range(0, 6, m)])
        chex.assert_shape(pack(x, m), (6 // m, 2, 2, m * 3))
        np.testing.assert_array_equal(pack(x, m), expected)
    np.testing.assert_array_equal(pack(x, 1), x)
    np.testing.assert_array_equal(pack(X, 2)[1], jnp.concatenate([X[2], X[3]]))


def test_packing_gives_d_two_c_channels_in_both_phases_and_trains():
    state = create_state(jax.random.key(0), PACKED, ImageG(), ShapeD(), (2, 2, 1))
    chex.assert_shape(d_params(state)["Dense_0"]["kernel"], (2 * 2 * 2, 1))
    SEEN.clear()
    step = jit_step(PACKED)
    new, metrics = run(step, state, IMAGES)
    assert set(SEEN) == {(4, 2, 2, 2)}  # reals and fakes, in D's phase and in G's
    for _ in range(2):
        new, metrics = step(new, IMAGES)
    chex.assert_tree_all_finite((new.players, metrics))
    assert not np.allclose(d_params(new)["Dense_0"]["kernel"], d_params(state)["Dense_0"]["kernel"])


@pytest.mark.parametrize("loss", ["non_saturating", "least_squares"])
def test_packing_sets_ds_and_gs_losses_on_packed_batches(loss):
    gan = tiny_gan(Objective(loss=loss, packing=2))
    pair = gan.objective.pair
    state = make_state(gan, d=AnyChannelsD())
    new, metrics = run(jit_step(gan), state)
    fake = step_fake(state)[0]
    logits = lambda params, x, m: d_apply(state, params, pack(x, m))
    d_loss = lambda m: pair.d(logits(d_params(state), X, m), logits(d_params(state), fake, m))
    g_loss = lambda m: pair.g(logits(d_params(new), fake, m), logits(d_params(new), X, m))
    np.testing.assert_allclose(metrics["d_loss"], d_loss(2), **TOL)
    np.testing.assert_allclose(metrics["g_loss"], g_loss(2), **TOL)
    assert abs(float(metrics["d_loss"] - d_loss(1))) > 1e-3  # a step without packing gives other losses
    assert abs(float(metrics["g_loss"] - g_loss(1))) > 1e-3


@pytest.mark.parametrize("every", [1, 2])
def test_penalty_interpolates_and_differentiates_packed_inputs(every):
    gan = tiny_gan(Objective(penalty="wgan_gp", penalty_weight=1.0, penalty_every=every, packing=2))
    state = make_state(gan, d=AnyChannelsD())
    _, metrics = run(jit_step(gan, only="d" if every == 1 else "d_penalty"), state)  # D's params of ``state``
    key = d_keys(state)[3] if every == 1 else rng.named(step_key(state), "penalty")
    critic = lambda x: d_apply(state, d_params(state), x)
    fake = step_fake(state)[0]
    value = lambda m: penalties.wgan_gp(critic, pack(X, m), pack(fake, m), key)
    np.testing.assert_allclose(metrics["penalty"], value(2), **TOL)
    assert abs(float(metrics["penalty"] - value(1))) > 1e-4


@pytest.mark.parametrize("every", [1, 2])
def test_r1_r2_differentiates_d_on_packed_reals_and_packed_fakes(every):
    gan = tiny_gan(Objective(penalty="r1_r2", penalty_weight=1.0, penalty_every=every, packing=2))
    state = make_state(gan, d=AnyChannelsD())
    _, metrics = run(jit_step(gan, only="d" if every == 1 else "d_penalty"), state)
    critic = lambda x: d_apply(state, d_params(state), x)
    fake = step_fake(state)[0]
    value = lambda m: penalties.r1_r2(critic, critic, pack(X, m), pack(fake, m), None)
    np.testing.assert_allclose(metrics["penalty"], value(2), **TOL)
    assert abs(float(metrics["penalty"] - value(1))) > 1e-4


def test_feature_matching_matches_ds_features_of_packs():
    gan = tiny_gan(Objective(g_objective="feature_matching", packing=2))
    state = make_state(gan, d=SowingD())
    _, metrics = run(jit_step(gan, only="g"), state)
    d = state.players["d"]
    features = lambda x: d.with_features(d_params(state), pack(x, 2))[1]
    expected = losses.feature_matching_g_loss(features(step_fake(state)[0]), features(X))
    np.testing.assert_allclose(metrics["g_loss"], expected, **TOL)


def test_a_batch_that_packing_does_not_divide_is_refused_naming_the_field():
    state = make_state(tiny_gan(Objective(packing=3)), tx=optax.sgd(0.1))
    with pytest.raises(ValueError, match=re.escape("Objective.packing: a batch of 8 rows does not split into packs")):
        run(jit_step(tiny_gan(Objective(packing=3))), state)
    config = types.SimpleNamespace(schedule=types.SimpleNamespace(batch_size=8))
    with pytest.raises(ValueError, match=re.escape("Objective.packing: 3 does not divide schedule.batch_size 8")):
        gan_state(jax.random.key(0), tiny_gan(Objective(packing=3)), TinyG(), SowingD(), (4,), config)
