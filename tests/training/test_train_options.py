"""The tricks switched on through StepConfig, inside the jitted train step."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import losses, optim, penalties, train
from tests.conftest import step_z


class TinyG(nn.Module):
    @nn.compact
    def __call__(self, z, train=True):
        x = nn.BatchNorm(use_running_average=not train)(nn.Dense(12)(z))
        return jnp.tanh(nn.Dense(4)(nn.relu(x)))


class LinearD(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        return nn.Dense(1)(x)[:, 0]


def make_state(config, tx=None, seed=0):
    return train.create_state(jax.random.key(seed), TinyG(), LinearD(), (4,), config, g_tx=tx, d_tx=tx)


REAL = {"image": jax.random.uniform(jax.random.key(9), (8, 4), minval=-1, maxval=1)}


@pytest.mark.parametrize("field, value, extra, message", [
    ("loss", "wgan", {}, "StepConfig.loss: unknown name 'wgan'"),
    ("latent", "cauchy", {}, "StepConfig.latent: unknown name 'cauchy'"),
    ("penalty", "gp", {"penalty_weight": 1.0}, "StepConfig.penalty: unknown name 'gp'"),
    ("d_labels", "one_sided", {"loss": "hinge"}, "StepConfig.d_labels: 'one_sided' needs a loss that takes labels; "
                                                 "'hinge' takes none"),
    ("label_flip_prob", 0.1, {"loss": "wasserstein"}, "StepConfig.label_flip_prob: flipping needs a loss"),
    ("label_flip_prob", 1.5, {}, "StepConfig.label_flip_prob: must be a probability"),
    ("penalty_weight", -1.0, {"penalty": "r1"}, "StepConfig.penalty_weight: must not be negative"),
    ("penalty_weight", 0.0, {"penalty": "r1"}, "StepConfig.penalty_weight: is 0.0 with penalty 'r1'"),
    ("n_critic", 0, {}, "StepConfig.n_critic: must be at least 1"),
    ("instance_noise_std", -0.1, {}, "StepConfig.instance_noise_std: must not be negative"),
    ("ema_decay", 1.0, {}, "StepConfig.ema_decay: must be in"),
])
def test_inconsistent_configs_are_refused_naming_the_field(field, value, extra, message):
    with pytest.raises(ValueError, match=message.replace("(", "\\(")):
        train.StepConfig(latent_dim=3, **{field: value, **extra})


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_every_loss_trains_finite_and_compiles_once(loss):
    config = train.StepConfig(latent_dim=3, loss=loss)
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(train.train_step, n=1), static_argnames="config", donate_argnums=0)
    state = make_state(config)
    for _ in range(3):
        state, metrics = step(state, REAL, config=config)
    chex.assert_tree_all_finite((state.g.params, state.d.params, metrics))


def d_logits(state, params, real, fake):
    real_logits, stats = state.d(params, real, train=True)
    return real_logits, state.d.replace(batch_stats=stats)(params, fake, train=True)[0]


def step_fake(state, config):
    z = step_z(state, REAL["image"].shape[0], config.latent_dim)
    return state.g(state.g.params, z, train=True)[0]


def test_one_sided_labels_reach_d_loss():
    config = train.StepConfig(latent_dim=3, d_labels="one_sided")
    state = make_state(config)
    real_logits, fake_logits = d_logits(state, state.d.params, REAL["image"], step_fake(state, config))
    _, metrics = train.d_step(state, REAL, config)
    np.testing.assert_allclose(metrics["d_loss"], losses.minimax_d_loss(real_logits, fake_logits, 0.9, 0.0),
                               rtol=1e-6)


def test_penalty_enters_d_loss_with_its_weight():
    config = train.StepConfig(latent_dim=3, penalty="r1", penalty_weight=5.0)
    state = make_state(config, tx=optax.sgd(1.0))
    fake = step_fake(state, config)
    w = state.d.params["Dense_0"]["kernel"][:, 0]
    _, metrics = train.d_step(state, REAL, config)
    # R1 of a linear D is ||w||^2 (see tests/test_penalties.py), whatever the batch.
    np.testing.assert_allclose(metrics["penalty"], penalties.r1(lambda x: x @ w, REAL["image"], fake, None), rtol=1e-6)
    np.testing.assert_allclose(metrics["penalty"], jnp.sum(w ** 2), rtol=1e-5)

    def total(params):
        real_logits, fake_logits = d_logits(state, params, REAL["image"], fake)
        return losses.minimax_d_loss(real_logits, fake_logits) + 5.0 * jnp.sum(params["Dense_0"]["kernel"] ** 2)

    expected = jax.tree.map(lambda p, g: p - g, state.d.params, jax.grad(total)(state.d.params))
    new, _ = train.d_step(state, REAL, config)
    chex.assert_trees_all_close(new.d.params, expected, rtol=1e-5, atol=1e-6)


def test_instance_noise_follows_its_schedule():
    config = train.StepConfig(latent_dim=3, instance_noise_std=0.5, instance_noise_decay_steps=100)
    images = jnp.zeros((4000, 4))
    for step, std in ((0, 0.5), (50, 0.25), (100, 0.0)):
        noisy = train.instance_noise(jax.random.key(step), images, jnp.asarray(step), config)
        np.testing.assert_allclose(jnp.std(noisy), std, rtol=0.03, atol=1e-7)


def test_instance_noise_reaches_both_of_ds_inputs():
    clean, noisy = train.StepConfig(latent_dim=3), train.StepConfig(latent_dim=3, instance_noise_std=10.0)
    state = make_state(clean)
    _, m_clean = train.d_step(state, REAL, clean)
    _, m_noisy = train.d_step(state, REAL, noisy)
    for name in ("d_real", "d_fake"):
        assert abs(float(m_noisy[name] - m_clean[name])) > 1e-3, name


@pytest.mark.parametrize("loss, probabilistic", [(name, pair.probabilistic) for name, pair in losses.LOSSES.items()])
def test_d_verdicts_are_probabilities_only_for_cross_entropy_losses(loss, probabilistic):
    """sigmoid(logit) is D's P(real) for the cross-entropy losses only; the others report raw scores."""
    config = train.StepConfig(latent_dim=3, loss=loss)
    state = make_state(config)
    fake = state.g(state.g.params, step_z(state, 8, 3), train=True)[0]
    real_logits, fake_logits = (state.d(state.d.params, x, train=True)[0] for x in (REAL["image"], fake))
    _, metrics = jax.jit(train.d_step, static_argnums=2)(state, REAL, config)
    if probabilistic:
        expected = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    else:
        expected = {"d_real_score": jnp.mean(real_logits), "d_fake_score": jnp.mean(fake_logits)}
    assert {"d_real", "d_fake", "d_real_score", "d_fake_score"} & set(metrics) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, rtol=1e-5, err_msg=name)
    assert probabilistic == (loss in ("minimax", "non_saturating"))


def test_n_critic_updates_d_n_times_per_g_update():
    config = train.StepConfig(latent_dim=3, n_critic=3)
    tx = optax.chain(optim.track_global_norm(), optax.scale_by_adam())
    state = make_state(config, tx=tx)
    batch = {"image": jnp.concatenate([REAL["image"]] * 3)}
    new, metrics = train.jit_step(train.train_step)(state, batch, config=config)
    adam_count = lambda opt_state: int(optax.tree_utils.tree_get(opt_state, "count"))
    assert (adam_count(new.d.opt_state), adam_count(new.g.opt_state), int(new.step)) == (3, 1, 1)
    chex.assert_tree_all_finite(metrics)
    with pytest.raises(ValueError, match="batch of 8 does not split into n_critic=3"):
        train.train_step(make_state(config, tx=tx), REAL, config)


def test_ema_of_g_tracks_its_params():
    config = train.StepConfig(latent_dim=3, ema_decay=0.9)
    state = make_state(config)
    new, _ = train.train_step(state, REAL, config)
    chex.assert_trees_all_close(new.g_ema.params, optim.ema_update(state.g.params, new.g.params, 0.9), rtol=1e-6)
    z = jnp.ones((2, 3))
    chex.assert_trees_all_close(train.generate(new, z, use_ema=True),
                                new.g(new.g_ema.params, z, train=False)[0])


@pytest.mark.parametrize("latent_name", ["uniform", "spherical"])
def test_latent_choice_changes_z(latent_name):
    config = train.StepConfig(latent_dim=3, latent=latent_name)
    z = train.sample_z(jax.random.key(0), 500, config)
    if latent_name == "uniform":
        assert float(z.min()) >= -1 and float(z.max()) <= 1
    else:
        np.testing.assert_allclose(jnp.linalg.norm(z, axis=-1), jnp.sqrt(3.0), rtol=1e-5)


class ConditionalG(nn.Module):
    @nn.compact
    def __call__(self, z, y, train=True):
        return jnp.tanh(nn.Dense(4)(jnp.concatenate([z, jax.nn.one_hot(y, 3)], -1)))


class ConditionalD(nn.Module):
    @nn.compact
    def __call__(self, x, y, train=True):
        return nn.Dense(1)(jnp.concatenate([x, jax.nn.one_hot(y, 3)], -1))[:, 0]


class AuxD(nn.Module):
    @nn.compact
    def __call__(self, x, train=True):
        return nn.Dense(1)(x)[:, 0], nn.Dense(3)(x)


LABELLED = {**REAL, "label": jnp.arange(8) % 3}


def test_conditional_gan_feeds_labels_to_both_players():
    config = train.StepConfig(latent_dim=2, num_classes=3)
    state = train.create_state(jax.random.key(0), ConditionalG(), ConditionalD(), (4,), config)
    new, metrics = train.jit_step(train.train_step)(state, LABELLED, config=config)
    chex.assert_tree_all_finite(metrics)
    z = jnp.zeros((3, 2))
    images = train.generate(new, z, labels=jnp.arange(3))
    assert not np.allclose(images[0], images[1])  # the label changes the image
    with pytest.raises(ValueError, match="the batch needs a 'label' entry"):
        train.train_step(new, REAL, config)


def test_acgan_class_loss_is_cross_entropy_of_ds_class_head():
    config = train.StepConfig(latent_dim=2, num_classes=3, aux_class_weight=1.0)
    state = train.create_state(jax.random.key(0), ConditionalG(), AuxD(), (4,), config)
    _, metrics = train.d_step(state, LABELLED, config)
    fake_key = jax.random.split(train.step_keys(state, "fake")["fake"], 3)
    fake_y = jax.random.randint(fake_key[1], (8,), 0, 3)
    fake = state.g(state.g.params, jax.random.normal(fake_key[0], (8, 2)), fake_y, train=True)[0]
    (_, real_classes), (_, fake_classes) = (state.d(state.d.params, x, train=True)[0] for x in (REAL["image"], fake))
    expected = (optax.softmax_cross_entropy_with_integer_labels(real_classes, LABELLED["label"]).mean()
                + optax.softmax_cross_entropy_with_integer_labels(fake_classes, fake_y).mean())
    np.testing.assert_allclose(metrics["d_class_loss"], expected, rtol=1e-5)
    real_only = train.StepConfig(latent_dim=2, num_classes=3, aux_class_weight=1.0, aux_fake_class_weight=0.0)
    np.testing.assert_allclose(train.d_step(state, LABELLED, real_only)[1]["d_class_loss"],
                               optax.softmax_cross_entropy_with_integer_labels(real_classes, LABELLED["label"]).mean(),
                               rtol=1e-5)
    _, g_metrics = train.g_step(state, LABELLED, config)
    assert {"g_loss", "g_class_loss", "g_grad_norm"} == set(g_metrics)
    with pytest.raises(ValueError, match="aux_class_weight: the AC-GAN class loss needs num_classes > 0"):
        train.StepConfig(aux_class_weight=1.0)
