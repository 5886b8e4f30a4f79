"""ganjax.train: the train state and the D, G and combined steps."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import data, losses, train
from ganjax.models import dcgan
from tests.conftest import step_z

CONFIG = train.StepConfig(latent_dim=16)
BATCH = 16


def make_state(seed=0, tx=None):
    return train.create_state(jax.random.key(seed), dcgan.Generator(28, 1, 8, 16), dcgan.Discriminator(28, 8),
                              (28, 28, 1), CONFIG, g_tx=tx, d_tx=tx)


@pytest.fixture(scope="module")
def batch(mnist):
    return {"image": jnp.asarray(data.Batcher(mnist, BATCH, seed=0).batch(0)["image"])}


d_step = jax.jit(train.d_step, static_argnames="config")
g_step = jax.jit(train.g_step, static_argnames="config")


def d_loss_on(state, params, real, fake):
    real_logits, stats = state.d(params, real, train=True)
    fake_logits, _ = state.d.replace(batch_stats=stats)(params, fake, train=True)
    return losses.minimax_d_loss(real_logits, fake_logits)


def test_state_holds_both_players():
    state = make_state()
    assert int(state.step) == 0
    assert set(state.g.batch_stats) and set(state.d.batch_stats)
    assert jax.tree.structure(state.g.params) != jax.tree.structure(state.d.params)
    # DCGAN init: weights ~ N(0, 0.02).
    kernel = state.d.params["Conv_1"]["kernel"]
    assert abs(float(jnp.std(kernel)) - 0.02) < 0.003


def test_d_step_lowers_d_loss_on_its_batch(batch):
    state = make_state()
    z = step_z(state, BATCH, CONFIG.latent_dim)
    fake = state.g(state.g.params, z, train=True)[0]
    before = d_loss_on(state, state.d.params, batch["image"], fake)
    new, metrics = d_step(state, batch, config=CONFIG)
    after = d_loss_on(state, new.d.params, batch["image"], fake)
    assert float(after) < float(before)
    np.testing.assert_allclose(metrics["d_loss"], before, rtol=1e-5)
    chex.assert_trees_all_equal(new.g.params, state.g.params)  # D's step leaves G's params alone


def test_g_step_raises_d_of_g_z():
    state = make_state(tx=optax.adam(1e-3, b1=0.5))
    z = step_z(state, BATCH, CONFIG.latent_dim)

    def d_of_g(g_params):
        fake = state.g(g_params, z, train=True)[0]
        return float(jnp.mean(jax.nn.sigmoid(state.d(state.d.params, fake, train=True)[0])))

    new, metrics = g_step(state, {"image": jnp.zeros((BATCH, 28, 28, 1))}, config=CONFIG)
    assert d_of_g(new.g.params) > d_of_g(state.g.params)
    chex.assert_trees_all_equal(new.d.params, state.d.params)
    assert set(metrics) == {"g_loss", "g_grad_norm"}


def test_metrics_match_their_definitions(batch):
    state = make_state()
    step = train.jit_step(train.train_step)
    z = step_z(state, BATCH, CONFIG.latent_dim)
    fake = state.g(state.g.params, z, train=True)[0]
    real_logits, stats = state.d(state.d.params, batch["image"], train=True)
    fake_logits, _ = state.d.replace(batch_stats=stats)(state.d.params, fake, train=True)
    d_grads = jax.grad(d_loss_on, argnums=1)(state, state.d.params, batch["image"], fake)
    expected = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)),
                "d_grad_norm": optax.tree.norm(d_grads)}
    _, metrics = step(state, batch, config=CONFIG)
    assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"}
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-4, err_msg=name)


def test_train_step_g_update_equals_g_step_through_updated_d(batch):
    """The fused step's G update is exactly a G step (same z) against the freshly updated D."""
    state = make_state()
    fused, _ = train.train_step(state, batch, CONFIG)
    after_d, _ = train.d_step(state, batch, CONFIG)
    separate, _ = train.g_step(after_d.replace(step=state.step, g=state.g), batch, CONFIG)
    chex.assert_trees_all_close(fused.g.params, separate.g.params, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(fused.d.params, after_d.d.params, rtol=1e-6)


def test_same_seed_gives_bit_identical_params(batch):
    step = train.jit_step(train.train_step)

    def run(seed):
        state = make_state(seed)
        for _ in range(3):
            state, _ = step(state, batch, config=CONFIG)
        return state

    a, b, c = run(0), run(0), run(1)
    chex.assert_trees_all_equal(a.g.params, b.g.params)
    chex.assert_trees_all_equal(a.d.params, b.d.params)
    assert not np.array_equal(a.g.params["Dense_0"]["kernel"], c.g.params["Dense_0"]["kernel"])


def test_step_compiles_once_and_donates(batch):
    counted = chex.assert_max_traces(train.train_step, n=1)
    step = jax.jit(counted, static_argnames="config", donate_argnums=0)
    state = make_state()
    old = state.d.params["Dense_0"]["kernel"]
    for _ in range(3):
        state, metrics = step(state, batch, config=CONFIG)
    chex.assert_tree_all_finite(metrics)
    assert int(state.step) == 3
    assert old.is_deleted()  # the state's buffers were donated to the step


def test_step_config_refuses_unknown_loss():
    with pytest.raises(ValueError, match="StepConfig.loss: unknown name .nope."):
        train.StepConfig(loss="nope")


def test_per_device_normal_slices_the_global_draw():
    key = jax.random.key(3)
    whole = jax.random.normal(key, (8, 4))
    f = jax.vmap(functools.partial(train.per_device_normal, key, (2, 4), "i"), axis_name="i", axis_size=4)
    np.testing.assert_array_equal(np.asarray(f()).reshape(8, 4), whole)
