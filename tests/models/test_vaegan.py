"""ganjax.models.vaegan: each player gets the gradient of its own loss (Larsen et al. 2016, Algorithm 1)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import losses, rng
from ganjax.latent import Latent
from ganjax.models import vaegan
from ganjax.training import devices
from ganjax.training.gan import GAN
from ganjax.training.objective import Objective
from ganjax.training.phases import PhaseInputs, make_step

S, LATENT = 8, 3  # image side, z size
MODEL = vaegan.VAEGAN(GAN(Latent(dim=LATENT)), gamma=0.5, kl_weight=2.0)
SGD = optax.sgd(1.0)
PLAYERS = vaegan.players(S, 1, LATENT, width=4)  # built once: a module's apply is a static field of the state
REAL = {"image": jax.random.uniform(jax.random.key(9), (6, S, S, 1), minval=-1, maxval=1)}
METRICS = {
    "d_loss",
    "d_real",
    "d_fake",
    "d_grad_norm",
    "g_loss",
    "kl",
    "reconstruction",
    "enc_grad_norm",
    "g_grad_norm",
}


def make_state(model=MODEL, tx=SGD, d_tx=None, seed=0, **norms):
    encoder, decoder, discriminator = vaegan.players(S, 1, LATENT, width=4, **norms) if norms else PLAYERS
    return vaegan.create_state(
        jax.random.key(seed), model, encoder, decoder, discriminator, (S, S, 1), enc_tx=tx, g_tx=tx, d_tx=d_tx or tx
    )


def one_step(model=MODEL, state=None):
    state = make_state(model) if state is None else state
    return jax.jit(make_step(model.phases()))(state, REAL)


def test_kl_divergence_closed_form():
    np.testing.assert_allclose(vaegan.kl_divergence(jnp.zeros((2, 3)), jnp.zeros((2, 3))), [0.0, 0.0])
    # KL(N(1, e) || N(0, 1)) = (1 + e - 1 - 1) / 2 per dimension.
    np.testing.assert_allclose(vaegan.kl_divergence(jnp.ones((1, 2)), jnp.ones((1, 2))), [np.e - 1.0], rtol=1e-6)


def test_feature_reconstruction_is_half_the_mean_squared_distance():
    real, fake = jnp.zeros((2, 3)), jnp.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_allclose(vaegan.feature_reconstruction(real, fake), 0.5 * (1.0 + 3.0) / 2)


@pytest.mark.slow
@pytest.mark.parametrize("norms", [{}, {"d_norm": "batch"}])
def test_each_player_descends_its_own_loss(norms):
    """One SGD(1) step against the losses of the paper written out by hand."""
    state = make_state(**norms)
    new, metrics = one_step(state=state)
    assert set(metrics) == METRICS and int(new.step) == 1
    inputs = PhaseInputs(state, REAL, rng.step_key(state.key, state.step), None, {})
    real2 = jnp.concatenate([REAL["image"]] * 2)

    def forward(enc_params, g_params):
        return MODEL.forward(enc_params, g_params, inputs)[:2]

    images, _ = forward(state.players["enc"].params, state.players["g"].params)
    # D: reals twice against reconstructions and samples, nothing from the encoder's or decoder's losses.
    d_grads = jax.grad(lambda p: MODEL.gan.d_loss(p, inputs, real2, None, images, None)[0])(state.params("d"))
    expected_d = jax.tree.map(lambda p, g: p - g, state.params("d"), d_grads)
    chex.assert_trees_all_close(new.params("d"), expected_d, rtol=1e-5, atol=1e-6)
    d = new.players["d"]  # the encoder and decoder train through the updated D

    def parts(enc_params, g_params):
        images, kl = forward(enc_params, g_params)
        _, real_features, _ = d.with_features(d.params, real2)
        logits, features, _ = d.with_features(d.params, images)
        like = 0.5 * jnp.mean(jnp.sum(jnp.square(features[:6] - real_features[:6]), axis=-1))
        return kl, like, losses.non_saturating_g_loss(logits)

    enc0, g0 = state.params("enc"), state.params("g")
    kl, like, gan = parts(enc0, g0)
    np.testing.assert_allclose(
        [metrics["kl"], metrics["reconstruction"], metrics["g_loss"]], [kl, like, gan], rtol=1e-5
    )
    enc_loss = lambda p: (lambda kl, like, gan: 2.0 * kl + like)(*parts(p, g0))
    g_loss = lambda p: (lambda kl, like, gan: 0.5 * like + gan)(*parts(enc0, p))
    sgd = lambda params, loss: jax.tree.map(lambda p, g: p - g, params, jax.grad(loss)(params))
    chex.assert_trees_all_close(new.params("enc"), sgd(enc0, enc_loss), rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(new.params("g"), sgd(g0, g_loss), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["enc_grad_norm"], optax.tree.norm(jax.grad(enc_loss)(enc0)), rtol=1e-4)


def _changed(a, b):
    return not all(np.allclose(x, y, rtol=0, atol=0) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_each_weight_reaches_only_its_own_player():
    """kl_weight moves the encoder alone, gamma the decoder alone, and neither reaches D (Algorithm 1)."""
    base, _ = one_step()
    no_kl, _ = one_step(vaegan.VAEGAN(MODEL.gan, gamma=0.5, kl_weight=0.0))
    no_like, _ = one_step(vaegan.VAEGAN(MODEL.gan, gamma=0.0, kl_weight=2.0))
    assert _changed(base.params("enc"), no_kl.params("enc"))
    chex.assert_trees_all_close(base.params("g"), no_kl.params("g"), rtol=1e-6, atol=1e-7)
    assert _changed(base.params("g"), no_like.params("g"))
    chex.assert_trees_all_close(base.params("enc"), no_like.params("enc"), rtol=1e-6, atol=1e-7)
    for other in (no_kl, no_like):
        chex.assert_trees_all_close(base.params("d"), other.params("d"), rtol=1e-6, atol=1e-7)


def test_compiles_once_is_deterministic_and_keeps_shapes():
    step = jax.jit(chex.assert_max_traces(make_step(MODEL.phases()), n=1))
    chex.clear_trace_counter()
    adam = optax.adam(1e-3)  # one optimizer object for both runs: it is a static field of the state

    def run(seed):
        state = make_state(tx=adam, seed=seed)
        for _ in range(3):
            state, metrics = step(state, REAL)
        return state, metrics

    state, metrics = run(0)
    again, _ = run(0)
    chex.assert_tree_all_finite(metrics)
    chex.assert_trees_all_equal(state.players, again.players)
    assert int(state.step) == 3
    assert _changed(make_state(seed=0).params("enc"), make_state(seed=1).params("enc"))
    chex.assert_shape(vaegan.reconstruct(state, REAL["image"]), REAL["image"].shape)
    chex.assert_shape(vaegan.generate(state, jnp.zeros((2, LATENT))), (2, S, S, 1))


def test_one_device_mesh_runs_the_same_step():
    state = make_state()
    expected, metrics = one_step(state=state)
    step = devices.data_parallel(make_step(MODEL.phases()), devices.make_mesh(1))
    got, parallel_metrics = step(devices.replicate(state, devices.make_mesh(1)), REAL)
    chex.assert_trees_all_close(got.players, expected.players, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(parallel_metrics, metrics, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("frozen, loss", [("d", "g_loss"), ("vae", "d_loss")])
def test_steps_lower_each_players_loss_against_frozen_opponents(frozen, loss):
    adam, frozen_tx = optax.adam(1e-2), optax.sgd(0.0)
    state = make_state(tx=frozen_tx if frozen == "vae" else adam, d_tx=frozen_tx if frozen == "d" else adam)
    step = jax.jit(make_step(MODEL.phases()))
    values = []
    for _ in range(10):
        state, metrics = step(state, REAL)
        values.append(float(metrics[loss]))
    assert np.mean(values[-3:]) < values[0] and values[-1] < values[1], values


def test_unsupported_options_are_refused():
    with pytest.raises(ValueError, match="VAEGAN.gan.objective.g_objective: not supported"):
        vaegan.VAEGAN(GAN(objective=Objective(g_objective="feature_matching")))
    with pytest.raises(ValueError, match="VAEGAN.gan.latent.distribution: not supported"):
        vaegan.VAEGAN(GAN(Latent(distribution="uniform")))
    with pytest.raises(ValueError, match="gamma and kl_weight must not be negative"):
        vaegan.VAEGAN(gamma=-1.0)
    with pytest.raises(ValueError, match="n_critic must be at least 1"):
        MODEL.phases(0)


def test_bfloat16_players_give_float32_close_to_float32_on_the_same_params():
    """``players(dtype=bfloat16)``: the encoder's posterior, G's images and D's logits are float32, near float32's."""
    z = jax.random.normal(jax.random.key(1), (6, LATENT))
    inputs = (REAL["image"], z, REAL["image"])
    for full, mixed, x in zip(PLAYERS, vaegan.players(S, 1, LATENT, width=4, dtype=jnp.bfloat16), inputs, strict=True):
        variables = full.init(jax.random.key(2), x, train=False)
        expected, actual = full.apply(variables, x, train=False), mixed.apply(variables, x, train=False)
        for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(actual), strict=True):
            assert b.dtype == jnp.float32
            np.testing.assert_allclose(b, a, atol=0.02 * float(jnp.max(jnp.abs(a))))
