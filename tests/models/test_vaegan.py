"""The VAE-GAN step: each player gets the gradient of its own loss (Larsen et al. 2016, Algorithm 1)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import losses, train, vaegan
from ganjax.feature_matching import apply_with_features
from ganjax.models import vaegan as models

S, LATENT = 8, 3  # image side, z size
CONFIG = vaegan.VAEGANConfig(gan=train.StepConfig(latent_dim=LATENT), gamma=0.5, kl_weight=2.0)
REAL = {"image": jax.random.uniform(jax.random.key(9), (6, S, S, 1), minval=-1, maxval=1)}


def make_state(config=CONFIG, **norms):
    encoder, decoder, discriminator = models.players(S, 1, LATENT, width=4, **norms)
    sgd = optax.sgd(1.0)
    return vaegan.create_state(jax.random.key(0), encoder, decoder, discriminator, (S, S, 1), config,
                               enc_tx=sgd, g_tx=sgd, d_tx=sgd)


def test_kl_divergence_closed_form():
    np.testing.assert_allclose(vaegan.kl_divergence(jnp.zeros((2, 3)), jnp.zeros((2, 3))), [0.0, 0.0])
    # KL(N(1, e) || N(0, 1)) = (1 + e - 1 - 1) / 2 per dimension.
    np.testing.assert_allclose(vaegan.kl_divergence(jnp.ones((1, 2)), jnp.ones((1, 2))), [np.e - 1.0], rtol=1e-6)


@pytest.mark.parametrize("norms", [{}, {"d_norm": "batch"}])
def test_each_player_descends_its_own_loss(norms):
    state = make_state(**norms)
    new, metrics = vaegan.train_step(state, REAL, CONFIG)
    keys = train.step_keys(state, "posterior", "prior", "g", "d", "noise")
    real = REAL["image"]
    eps = jax.random.normal(keys["posterior"], (6, LATENT))
    z_prior = jax.random.normal(keys["prior"], (6, LATENT))

    def forward(enc_params, g_params):
        mean, log_variance = state.enc(enc_params, real, train=True)[0]
        z = jnp.concatenate([mean + jnp.exp(0.5 * log_variance) * eps, z_prior])
        images = train.run_g(state.g, g_params, z, None, keys["g"], CONFIG.gan)[0]
        return images, jnp.mean(vaegan.kl_divergence(mean, log_variance))

    images, kl = forward(state.enc.params, state.g.params)
    # D: the train step's own D update, reals against reconstructions and samples.
    expected_d, _ = train.d_update(state.d, jnp.concatenate([real, real]), None, images, None, keys["d"],
                                    state.step, CONFIG.gan)
    chex.assert_trees_all_close(new.d.params, expected_d.params, rtol=1e-5, atol=1e-6)
    d = new.d  # the encoder and decoder train through the updated D

    def parts(enc_params, g_params):
        images, kl = forward(enc_params, g_params)
        real_logits, real_features, _ = apply_with_features(d, d.params, jnp.concatenate([real, real]))
        logits, features, _ = apply_with_features(d, d.params, images)
        like = 0.5 * jnp.mean(jnp.sum(jnp.square(features[:6] - real_features[:6]), axis=-1))
        return kl, like, losses.non_saturating_g_loss(logits)

    kl, like, gan = parts(state.enc.params, state.g.params)
    np.testing.assert_allclose([metrics["kl"], metrics["reconstruction"], metrics["g_loss"]], [kl, like, gan],
                               rtol=1e-5)
    enc_loss = lambda p: (lambda kl, like, gan: 2.0 * kl + like)(*parts(p, state.g.params))
    g_loss = lambda p: (lambda kl, like, gan: 0.5 * like + gan)(*parts(state.enc.params, p))
    sgd = lambda params, loss: jax.tree.map(lambda p, g: p - g, params, jax.grad(loss)(params))
    chex.assert_trees_all_close(new.enc.params, sgd(state.enc.params, enc_loss), rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(new.g.params, sgd(state.g.params, g_loss), rtol=1e-4, atol=1e-6)
    assert int(new.step) == 1


def test_step_compiles_once_and_reconstructs_images_of_the_input_shape():
    state = make_state()
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(vaegan.train_step, n=1), static_argnames="config", donate_argnums=0)
    for _ in range(3):
        state, metrics = step(state, REAL, config=CONFIG)
    chex.assert_tree_all_finite(metrics)
    chex.assert_shape(vaegan.reconstruct(state, REAL["image"]), REAL["image"].shape)
    chex.assert_shape(vaegan.generate(state, jnp.zeros((2, LATENT))), (2, S, S, 1))


def test_unsupported_gan_options_are_refused():
    with pytest.raises(ValueError, match="VAEGANConfig.gan.n_critic: not supported"):
        vaegan.VAEGANConfig(gan=train.StepConfig(n_critic=2))
    with pytest.raises(ValueError, match="gamma and kl_weight must not be negative"):
        vaegan.VAEGANConfig(gamma=-1.0)
