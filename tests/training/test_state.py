"""ganjax.training.state: a player's calls and update, and the run state's options (EMA, buffers)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax.nn.names import FEATURES
from ganjax.replay import ReplayBuffer
from ganjax.training.state import Player, TrainState
from tests.training.tiny import LinearD, SowingD, TinyG

Z = jax.random.normal(jax.random.key(1), (8, 3))
X = jax.random.normal(jax.random.key(2), (8, 4))


def tiny_g(tx=None) -> Player:
    return Player.create(TinyG(), tx or optax.adam(1e-3), jax.random.key(0), Z[:2])


def test_create_initialises_params_statistics_and_optimizer():
    g = tiny_g()
    assert set(g.params) == {"Dense_0", "BatchNorm_0", "Dense_1"} and set(g.batch_stats) == {"BatchNorm_0"}
    chex.assert_trees_all_equal(g.opt_state, g.tx.init(g.params))
    d = Player.from_variables({"params": {"w": jnp.ones(2)}}, LinearD().apply, optax.sgd(1.0))
    assert d.batch_stats == {}  # a module without statistics


def test_call_updates_statistics_in_training_only():
    g = tiny_g()
    out, stats = g(g.params, Z, train=True)
    assert not np.allclose(stats["BatchNorm_0"]["mean"], g.batch_stats["BatchNorm_0"]["mean"])
    evaluated, same = g(g.params, Z, train=False)
    assert same is g.batch_stats
    assert not np.allclose(out, evaluated)  # batch statistics against running ones
    chex.assert_shape((out, evaluated), (8, 4))


def test_apply_gradients_is_one_optimizer_update_and_stores_the_statistics():
    g = tiny_g(optax.sgd(0.5))
    grads = jax.tree.map(jnp.ones_like, g.params)
    stats = jax.tree.map(lambda s: s + 1, g.batch_stats)
    new = g.apply_gradients(grads, stats)
    chex.assert_trees_all_close(new.params, jax.tree.map(lambda p: p - 0.5, g.params))
    chex.assert_trees_all_equal(new.batch_stats, stats)


def test_with_features_reads_the_sown_layer_and_names_a_module_without_one():
    d = Player.create(SowingD(), optax.sgd(1.0), jax.random.key(0), X[:2])
    out, h, stats = d.with_features(d.params, X)
    w = d.params["Dense_0"]
    np.testing.assert_allclose(h, jnp.tanh(X @ w["kernel"] + w["bias"]), rtol=1e-6)
    np.testing.assert_allclose(out, d(d.params, X, train=True)[0], rtol=1e-6)
    assert stats == {}
    silent = Player.create(LinearD(), optax.sgd(1.0), jax.random.key(0), X[:2])
    with pytest.raises(ValueError, match=f"the module sows no 'intermediates/{FEATURES}'"):
        silent.with_features(silent.params, X)


def test_train_state_keeps_moving_averages_and_buffers_by_name():
    players = {"g": tiny_g(), "d": Player.create(LinearD(), optax.sgd(1.0), jax.random.key(1), X[:2])}
    pool = ReplayBuffer.create(4, (4,))
    state = TrainState.create(jax.random.key(0), players, ema_decay={"g": 0.99, "d": 0.0}, buffers={"pool": pool})
    assert int(state.step) == 0 and state.step.dtype == jnp.int32
    assert set(state.ema) == {"g"} and state.ema["g"].decay == 0.99
    chex.assert_trees_all_equal(state.params("g", use_ema=True), state.params("g"))
    assert state.buffers["pool"] is pool
    with pytest.raises(ValueError, match="player 'd' keeps no moving average \\(its ema decay is 0\\)"):
        state.params("d", use_ema=True)
    # The state is a pytree: it passes through jit whole.
    bumped = jax.jit(lambda s: s.replace(step=s.step + 1))(state)
    assert int(bumped.step) == 1
    chex.assert_trees_all_equal(bumped.players["g"].params, state.players["g"].params)
