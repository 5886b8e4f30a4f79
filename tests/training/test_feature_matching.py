"""Feature matching as G's objective, on a D that sows its hidden layer."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import feature_matching, losses, train
from ganjax.models import conditional
from tests.conftest import step_z

CONFIG = train.StepConfig(latent_dim=3)
REAL = {"image": jax.random.uniform(jax.random.key(9), (16, 4), minval=-1, maxval=1)}


class TinyG(nn.Module):
    @nn.compact
    def __call__(self, z, train=True):
        return jnp.tanh(nn.Dense(4)(nn.relu(nn.Dense(12)(z))))


class SowingD(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        h = nn.tanh(nn.Dense(6)(x))
        self.sow("intermediates", conditional.FEATURES, h)
        return nn.Dense(1)(h)[:, 0]


class SilentD(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        return nn.Dense(1)(x)[:, 0]


def make_state(d=SowingD(), g_tx=None, d_tx=None):
    return train.create_state(jax.random.key(0), TinyG(), d, (4,), CONFIG, g_tx=g_tx, d_tx=d_tx)


def features(state, x):
    w = state.d.params["Dense_0"]
    return jnp.tanh(x @ w["kernel"] + w["bias"])


def test_g_step_descends_the_feature_matching_loss_of_ds_hidden_layer():
    state = make_state(g_tx=optax.sgd(1.0))
    z = step_z(state, 16, 3)

    def loss(g_params):
        fake = state.g(g_params, z, train=True)[0]
        return losses.feature_matching_g_loss(features(state, fake), features(state, REAL["image"]))

    new, metrics = feature_matching.g_step(state, REAL, CONFIG)
    np.testing.assert_allclose(metrics["g_loss"], loss(state.g.params), rtol=1e-5)
    expected = jax.tree.map(lambda p, g: p - g, state.g.params, jax.grad(loss)(state.g.params))
    chex.assert_trees_all_close(new.g.params, expected, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_equal(new.d.params, state.d.params)
    assert int(new.step) == 1


def test_train_step_is_d_step_then_feature_matching_and_counts_one_step():
    state = make_state()
    new, metrics = train.jit_step(feature_matching.train_step)(jax.tree.map(jnp.copy, state), REAL, config=CONFIG)
    after_d, _ = train.d_step(state, REAL, CONFIG)
    chex.assert_trees_all_close(new.d.params, after_d.d.params, rtol=1e-6)
    assert int(new.step) == 1
    assert {"d_loss", "d_real", "d_fake", "d_grad_norm", "g_loss", "g_grad_norm"} == set(metrics)
    with pytest.raises(ValueError, match="n_critic=2"):
        feature_matching.train_step(state, REAL, train.StepConfig(latent_dim=3, n_critic=2))


def test_g_matches_the_real_feature_means_against_a_fixed_d():
    state = make_state(g_tx=optax.adam(1e-2), d_tx=optax.sgd(0.0))
    step = train.jit_step(feature_matching.g_step)
    _, first = feature_matching.g_step(state, REAL, CONFIG)
    for _ in range(150):
        state, metrics = step(state, REAL, config=CONFIG)
    assert float(metrics["g_loss"]) < 0.1 * float(first["g_loss"])


def test_apply_with_features_reads_the_sown_layer_and_names_a_d_without_one():
    state = make_state()
    out, h, _ = feature_matching.apply_with_features(state.d, state.d.params, REAL["image"])
    np.testing.assert_allclose(h, features(state, REAL["image"]), rtol=1e-6)
    np.testing.assert_allclose(out, state.d(state.d.params, REAL["image"], train=True)[0], rtol=1e-6)
    silent = make_state(SilentD())
    with pytest.raises(ValueError, match="D sows no 'intermediates/features'"):
        feature_matching.apply_with_features(silent.d, silent.d.params, REAL["image"])
