"""ganjax.models.pggan, ganjax.progressive and experiments.pggan: stages, fade-in, one compile per stage, resume."""

import functools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import pggan as experiment
from ganjax import progressive
from ganjax.models import pggan
from ganjax.nn.resample import nearest_upsample

G = pggan.Generator(num_stages=3, channels=2, width=4, max_width=8, latent_dim=8)
D = pggan.Discriminator(num_stages=3, width=4, max_width=8)


def _params():
    g = pggan.init_all_stages(G, jax.random.key(0), lambda s: jnp.zeros((4, 8)))
    d = pggan.init_all_stages(D, jax.random.key(1), lambda s: jnp.zeros((4, 4 * 2 ** s, 4 * 2 ** s, 2)))
    return g, d


def test_shapes_at_every_stage():
    g, d = _params()
    z = jnp.zeros((4, 8))
    for stage in range(3):
        side = 4 * 2 ** stage
        images = jax.eval_shape(lambda: G.apply({"params": g}, z, 0.5, stage))
        assert images.shape == (4, side, side, 2)
        assert jax.eval_shape(lambda: D.apply({"params": d}, jnp.zeros(images.shape), 0.5, stage)).shape == (4,)
    with pytest.raises(ValueError, match="stage must be in \\[0, 3\\)"):
        G.apply({"params": g}, z, 1.0, 3)


def test_schedule_fades_from_0_to_1_across_each_stage():
    plan = progressive.Schedule(num_stages=3, batch_size=4, fade_images=16, stable_images=8)
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
    x = jax.random.normal(jax.random.key(3), (4, 4 * 2 ** stage, 4 * 2 ** stage, 2))
    old_g, old_d = _perturbed(g, f"to_rgb_{stage - 1}"), _perturbed(d, f"from_rgb_{stage - 1}")
    np.testing.assert_array_equal(G.apply({"params": g}, z, 1.0, stage), G.apply({"params": old_g}, z, 1.0, stage))
    np.testing.assert_array_equal(D.apply({"params": d}, x, 1.0, stage), D.apply({"params": old_d}, x, 1.0, stage))
    assert not np.allclose(G.apply({"params": g}, z, 0.5, stage), G.apply({"params": old_g}, z, 0.5, stage))
    assert not np.allclose(D.apply({"params": d}, x, 0.5, stage), D.apply({"params": old_d}, x, 0.5, stage))
    np.testing.assert_allclose(G.apply({"params": g}, z, 0.0, stage),
                               nearest_upsample(G.apply({"params": g}, z, 1.0, stage - 1), 2), rtol=1e-6, atol=1e-6)


def _tiny(mnist_dir, tmp_path, **overrides):
    values = dict(data_dir=str(mnist_dir), workdir=str(tmp_path / "run"), batch_size=8, latent_dim=8, g_width=4,
                  d_width=4, max_width=8, fade_images=16, stable_images=8, num_samples=4, log_every=1,
                  sample_every=5, checkpoint_every=5)
    return experiment.Config(**{**values, **overrides})


def _batch(config):
    return {"image": jnp.asarray(experiment.load_data(config).images[:8], jnp.float32) / 127.5 - 1.0}


def test_each_stage_compiles_once_and_the_seed_determines_the_run(mnist_dir, tmp_path):
    config = _tiny(mnist_dir, tmp_path, fade_images=32, stable_images=32)
    plan, batch = experiment.schedule(config), _batch(config)
    made = []

    def make_step(stage):
        made.append(stage)
        return functools.partial(jitted, config=experiment.step_config(config, stage))

    def run(seed, n):
        state, metrics = experiment.create_state(config, jax.random.key(seed)), []
        chex.clear_trace_counter()  # a new state has new optimizer objects (static fields), so it traces anew
        step = progressive.staged(make_step, plan)
        for _ in range(n):
            state, m = step(state, batch)
            metrics.append(jax.device_get(m))
        return state, metrics

    jitted = jax.jit(chex.assert_max_traces(progressive.train_step, n=2), static_argnames="config")
    state, metrics = run(0, 8)  # stage 0 (4 steps), then half of stage 1's fade-in: 2 compilations in all
    assert made == [0, 1]
    assert [float(m["alpha"]) for m in metrics] == [1.0, 1.0, 1.0, 1.0, 0.0, 0.25, 0.5, 0.75]
    again, _ = run(0, 8)
    chex.assert_trees_all_equal(state.g.params, again.g.params)
    other, _ = run(1, 1)
    assert not np.allclose(state.g.params["to_rgb_0"]["kernel"],
                           other.g.params["to_rgb_0"]["kernel"])


@pytest.mark.parametrize("frozen, loss", [("lr_g", "d_loss"), ("lr_d", "g_loss")])
def test_steps_lower_each_players_loss_against_a_frozen_opponent(mnist_dir, tmp_path, frozen, loss):
    config = _tiny(mnist_dir, tmp_path, **{frozen: 0.0})
    batch, step_config = _batch(config), experiment.step_config(config, 1)
    step = jax.jit(progressive.train_step, static_argnames="config")
    state, values = experiment.create_state(config, jax.random.key(0)), []
    for _ in range(8):
        state, metrics = step(state, batch, config=step_config)
        values.append(float(metrics[loss]))
    assert np.mean(values[-3:]) < values[0]


def test_experiment_resumes_mid_stage_at_the_same_weight(mnist_dir, tmp_path):
    # Stage 0 is step 0; stage 1 fades in over steps 1 and 2 (alpha 0, 0.5) and is stable at step 3.
    straight = experiment.train_and_evaluate(_tiny(mnist_dir, tmp_path / "a", steps=4))
    run = tmp_path / "a" / "run"
    assert int(straight.step) == 4 and (run / "samples" / "step_000004.png").is_file()
    alphas = {r["step"]: r["alpha"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}
    assert alphas == {1: 1.0, 2: 0.0, 3: 0.5, 4: 1.0}

    experiment.train_and_evaluate(_tiny(mnist_dir, tmp_path / "b", steps=2, checkpoint_every=2))
    resumed = experiment.train_and_evaluate(_tiny(mnist_dir, tmp_path / "b", steps=4, resume=True))
    records = [json.loads(line) for line in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {r["step"]: r["alpha"] for r in records} == alphas
    chex.assert_trees_all_equal(resumed.g.params, straight.g.params)
    chex.assert_trees_all_equal(resumed.d.opt_state, straight.d.opt_state)
