"""ganjax.models.pggan: stages, fade-in, the WGAN-GP phases, one compile per stage, EMA."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import losses, penalties, rng
from ganjax.models import pggan
from ganjax.nn.resample import nearest_upsample
from ganjax.training import devices
from ganjax.training.phases import make_step

G = pggan.Generator(num_stages=3, channels=2, width=4, max_width=8, latent_dim=8)
D = pggan.Discriminator(num_stages=3, width=4, max_width=8)


def _params():
    g = pggan.init_all_stages(G, jax.random.key(0), lambda s: jnp.zeros((4, 8)))
    d = pggan.init_all_stages(D, jax.random.key(1), lambda s: jnp.zeros((4, 4 * 2**s, 4 * 2**s, 2)))
    return g, d


@pytest.mark.slow
def test_shapes_at_every_stage():
    g, d = _params()
    z = jnp.zeros((4, 8))
    for stage in range(3):
        side = 4 * 2**stage
        images = jax.eval_shape(lambda stage=stage: G.apply({"params": g}, z, 0.5, stage))
        assert images.shape == (4, side, side, 2)
        scores = jax.eval_shape(lambda x, stage=stage: D.apply({"params": d}, x, 0.5, stage), images)
        assert scores.shape == (4,)
    with pytest.raises(ValueError, match="stage must be in \\[0, 3\\)"):
        G.apply({"params": g}, z, 1.0, 3)


def test_schedule_fades_from_0_to_1_across_each_stage():
    plan = pggan.Schedule(num_stages=3, batch_size=4, fade_images=16, stable_images=8)
    assert [plan.start(s) for s in range(3)] == [0, 2, 8]
    assert [plan.stage(t) for t in range(10)] == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2]
    assert plan.total_steps() == 14
    alphas = [float(plan.alpha(t, plan.stage(t))) for t in range(2, 8)]
    assert alphas == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert float(plan.alpha(0, 0)) == 1.0


def _perturbed(params, name):
    return {**params, name: jax.tree.map(lambda w: w + 1.0, params[name])}


@pytest.mark.parametrize("stage", [1, 2])
def test_weight_one_is_the_new_branch_alone_and_weight_zero_the_old_stage(stage):
    g, d = _params()
    z = jax.random.normal(jax.random.key(2), (4, 8))
    x = jax.random.normal(jax.random.key(3), (4, 4 * 2**stage, 4 * 2**stage, 2))
    old_g, old_d = _perturbed(g, f"to_rgb_{stage - 1}"), _perturbed(d, f"from_rgb_{stage - 1}")
    np.testing.assert_array_equal(G.apply({"params": g}, z, 1.0, stage), G.apply({"params": old_g}, z, 1.0, stage))
    np.testing.assert_array_equal(D.apply({"params": d}, x, 1.0, stage), D.apply({"params": old_d}, x, 1.0, stage))
    assert not np.allclose(G.apply({"params": g}, z, 0.5, stage), G.apply({"params": old_g}, z, 0.5, stage))
    assert not np.allclose(D.apply({"params": d}, x, 0.5, stage), D.apply({"params": old_d}, x, 0.5, stage))
    np.testing.assert_allclose(
        G.apply({"params": g}, z, 0.0, stage),
        nearest_upsample(G.apply({"params": g}, z, 1.0, stage - 1), 2),
        rtol=1e-6,
        atol=1e-6,
    )


# Stage 0 is steps 0-1; stage 1 fades in over steps 2-5 (alpha 0, 0.25, 0.5, 0.75) and is stable from step 6.
PLAN = pggan.Schedule(num_stages=3, batch_size=4, fade_images=16, stable_images=8)
MODEL = pggan.PGGAN(PLAN, latent_dim=8)
SGD = optax.sgd(0.1)
REAL = {"image": jnp.tanh(jax.random.normal(jax.random.key(5), (4, 16, 16, 2)))}


def make_state(g_tx=SGD, d_tx=SGD, seed=0, ema_decay=0.0):
    return pggan.create_state(jax.random.key(seed), G, D, 2, g_tx, d_tx, ema_decay=ema_decay)


def test_real_images_fade_like_g():
    images = REAL["image"]
    np.testing.assert_allclose(pggan.real_images(images, 0, 1.0), nn_pool(images, 4), rtol=1e-6)
    np.testing.assert_allclose(pggan.real_images(images, 1, 1.0), nn_pool(images, 2), rtol=1e-6)
    np.testing.assert_allclose(pggan.real_images(images, 1, 0.0), nearest_upsample(nn_pool(images, 4), 2), rtol=1e-6)


def nn_pool(images, factor):
    n, h, w, c = images.shape
    return images.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def test_one_step_at_mid_fade_is_wgan_gp_with_drift_by_hand():
    """Step 4 of stage 1 (alpha 0.5): the critic's loss, then G's through the new critic, on the same z."""
    state = make_state().replace(step=jnp.asarray(4, jnp.int32))
    new, metrics = jax.jit(make_step(MODEL.phases(1)))(state, REAL)
    assert float(metrics["alpha"]) == 0.5 and int(new.step) == 5
    key = rng.step_key(state.key, 4)
    alpha = jnp.float32(0.5)
    real = pggan.real_images(REAL["image"], 1, alpha)
    z = jax.random.normal(rng.named(key, "z"), (4, 8))
    g_apply = lambda p: G.apply({"params": p}, z, alpha, 1)
    fake = g_apply(state.params("g"))

    def d_loss(p):
        critic = lambda x: D.apply({"params": p}, x, alpha, 1)
        real_scores = critic(real)
        return (
            losses.wasserstein_d_loss(real_scores, critic(fake))
            + 10.0 * penalties.wgan_gp(critic, real, fake, rng.named(key, "penalty"))
            + 0.001 * jnp.mean(jnp.square(real_scores))
        )

    sgd = lambda params, loss: jax.tree.map(lambda p, g: p - 0.1 * g, params, jax.jit(jax.grad(loss))(params))
    chex.assert_trees_all_close(new.params("d"), sgd(state.params("d"), d_loss), rtol=1e-4, atol=1e-6)
    g_loss = lambda p: losses.wasserstein_g_loss(D.apply({"params": new.params("d")}, g_apply(p), alpha, 1))
    chex.assert_trees_all_close(new.params("g"), sgd(state.params("g"), g_loss), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["g_loss"], g_loss(state.params("g")), rtol=1e-5)


@pytest.mark.slow
def test_each_stage_compiles_once_the_weight_follows_the_step_and_the_seed_determines_the_run():
    made, traced = [], []
    adam = optax.adam(1e-3)

    def make(stage):
        made.append(stage)
        step = make_step(MODEL.phases(stage))

        def counted(state, batch):
            traced.append(stage)
            return step(state, batch)

        return jax.jit(counted)

    def run(seed, n):
        state, metrics = make_state(adam, adam, seed), []
        step = pggan.staged(make, PLAN)
        for _ in range(n):
            state, m = step(state, REAL)
            metrics.append(jax.device_get(m))
        return state, metrics

    state, metrics = run(0, 5)  # stage 0 (2 steps), then 3 steps of stage 1's fade-in
    assert made == traced == [0, 1]
    assert [float(m["alpha"]) for m in metrics] == [1.0, 1.0, 0.0, 0.25, 0.5]
    again, _ = run(0, 5)
    chex.assert_trees_all_equal(state.players, again.players)
    other, _ = run(1, 1)
    assert not np.allclose(state.params("g")["to_rgb_0"]["kernel"], other.params("g")["to_rgb_0"]["kernel"])
    resumed = pggan.staged(make, PLAN)
    assert resumed(state, REAL)[1]["alpha"] == 0.75 and made[-1] == 1  # restarted at step 5: stage 1, alpha 0.75


@pytest.mark.parametrize("frozen, loss", [("g", "d_loss"), ("d", "g_loss")])
def test_steps_lower_each_players_loss_against_a_frozen_opponent(frozen, loss):
    adam, frozen_tx = optax.adam(1e-2), optax.sgd(0.0)
    state = make_state(*((frozen_tx, adam) if frozen == "g" else (adam, frozen_tx)))
    step = jax.jit(make_step(MODEL.phases(1)))
    state = state.replace(step=jnp.asarray(6, jnp.int32))  # stable stage 1
    values = []
    for _ in range(10):
        state, metrics = step(state, REAL)
        values.append(float(metrics[loss]))
    assert np.mean(values[-3:]) < values[0], values


def test_ema_of_g_and_generate():
    step = jax.jit(make_step(MODEL.phases(0)))
    first, _ = step(make_state(ema_decay=0.5), REAL)
    chex.assert_trees_all_close(first.params("g", use_ema=True), first.params("g"), rtol=1e-6, atol=1e-7)
    state, _ = step(first, REAL)  # the debiased average of two updates weighs them 0.5 : 1
    expected = jax.tree.map(lambda a, b: (0.5 * a + b) / 1.5, first.params("g"), state.params("g"))
    chex.assert_trees_all_close(state.params("g", use_ema=True), expected, rtol=1e-5, atol=1e-7)
    z = jnp.ones((2, 8))
    chex.assert_shape(pggan.generate(state, z, 2, 1.0), (2, 16, 16, 2))
    assert not np.allclose(pggan.generate(state, z, 0, 1.0), pggan.generate(state, z, 0, 1.0, use_ema=True))


def test_one_device_mesh_runs_the_same_step():
    state = make_state().replace(step=jnp.asarray(3, jnp.int32))
    expected, metrics = jax.jit(make_step(MODEL.phases(1)))(state, REAL)
    mesh = devices.make_mesh(1)
    got, parallel_metrics = devices.data_parallel(make_step(MODEL.phases(1)), mesh)(
        devices.replicate(state, mesh), REAL
    )
    chex.assert_trees_all_close(got.players, expected.players, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(parallel_metrics, metrics, rtol=1e-5, atol=1e-6)


def test_phases_refuse_a_stage_outside_the_schedule():
    with pytest.raises(ValueError, match="stage must be in \\[0, 3\\)"):
        MODEL.phases(3)


@pytest.mark.slow  # compiles the model in both precisions; DCGAN's bf16 tests stay in the default tier
def test_bfloat16_players_give_float32_close_to_float32_on_the_same_params():
    """``dtype=bfloat16`` mid fade-in (stage 1, alpha 0.5): same params, float32 outputs within bfloat16's
    rounding of float32's (measured below 2% relative L2 error; asserted 5%)."""
    z, x = jax.random.normal(jax.random.key(1), (4, 8)), jax.random.uniform(jax.random.key(2), (4, 8, 8, 1))
    alpha = jnp.float32(0.5)
    for full, inputs in [(pggan.Generator(2, 1, 4, 8, 8), z), (pggan.Discriminator(2, 4, 8), x)]:
        variables = full.init(jax.random.key(0), inputs, alpha, 1)
        expected = full.apply(variables, inputs, alpha, 1)
        actual = full.clone(dtype=jnp.bfloat16).apply(variables, inputs, alpha, 1)
        assert actual.dtype == jnp.float32 and not np.array_equal(actual, expected)
        assert jnp.linalg.norm(actual - expected) < 0.05 * jnp.linalg.norm(expected)
