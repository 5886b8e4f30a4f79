"""ganjax.models.cyclegan, ganjax.cyclegan and experiments.cyclegan: shapes, domains, schedule, pool, learning, runs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import cyclegan as experiment
from ganjax import cyclegan, data
from ganjax.models import cyclegan as models


@pytest.mark.parametrize("size, patches", [(28, 4), (32, 4)])
def test_shapes(size, patches):
    g, d = models.ResnetGenerator(channels=3, width=4, n_blocks=1), models.PatchDiscriminator(width=4)
    x = jnp.zeros((2, size, size, 3))
    out = jax.eval_shape(lambda: g.apply(g.init(jax.random.key(0), x), x))
    logits = jax.eval_shape(lambda: d.apply(d.init(jax.random.key(0), x), x))
    assert out.shape == x.shape and logits.shape == (2, patches, patches)


def test_mnist_domains_are_inverted_thickened_and_unpaired(mnist):
    a, b = experiment.mnist_domains(mnist)
    half = len(mnist) // 2
    np.testing.assert_array_equal(a.images, mnist.images[:half])
    digits = mnist.images[half:2 * half]
    assert np.all(255 - b.images >= digits) and np.mean(255 - b.images > 127) > 1.5 * np.mean(digits > 127)
    stack = experiment.stacked(a, b, seed=0)
    assert stack.images.shape == (half, 28, 28, 2)
    assert sorted(map(bytes, stack.images[..., 1])) == sorted(map(bytes, b.images[..., 0]))


def _config(**overrides):
    values = dict(batch_size=4, g_width=4, g_blocks=1, d_width=4, steps=20, pool_size=6)
    return experiment.Config(**{**values, **overrides})


def _batches(mnist, config, n):
    stack = experiment.stacked(*experiment.mnist_domains(mnist), seed=0)
    batcher = data.Batcher(stack, config.batch_size, seed=0)
    return [batcher.batch(t) for t in range(n)]


def test_seed_determines_the_run_steps_lower_the_losses_and_fill_the_pool(mnist):
    config = _config()
    step = jax.jit(experiment.train_step, static_argnames="config")
    batches = _batches(mnist, config, 12)

    def run(seed):
        state, metrics = experiment.create_state(config, jax.random.key(seed)), []
        for batch in batches:
            state, m = step(state, batch, config=experiment.step_config(config))
            metrics.append(jax.device_get(m))
        return state, metrics

    state, metrics = run(0)
    again, _ = run(0)
    chex.assert_trees_all_equal(state.g_ab.params, again.g_ab.params)
    chex.assert_trees_all_equal(state.pool_b, again.pool_b)
    first, other = (experiment.create_state(config, jax.random.key(seed)) for seed in (0, 1))
    assert not np.allclose(first.g_ab.params["Conv_0"]["kernel"], other.g_ab.params["Conv_0"]["kernel"])
    for name in ("cycle_loss", "identity_loss", "d_loss"):
        values = [float(m[name]) for m in metrics]
        assert np.mean(values[-3:]) < values[0], (name, values)
    assert int(state.pool_a.count) == 12 * config.batch_size and state.pool_a.items.shape == (6, 28, 28, 1)


def test_experiment_smoke(mnist_dir, tmp_path):
    config = _config(data_dir=str(mnist_dir), workdir=str(tmp_path / "run"), steps=4, num_samples=4, log_every=2,
                     sample_every=4, checkpoint_every=4)
    state = experiment.train_and_evaluate(config)
    assert int(state.step) == 4
    for name in ("reconstructions.png", "samples/step_000004.png", "samples.gif"):
        assert (tmp_path / "run" / name).is_file()


@pytest.mark.slow
def test_cycle_loss_falls_below_a_fifth_of_its_start(mnist):
    """A 300-step run of the default models on the MNIST domains (about two minutes on two cores)."""
    config = experiment.Config(steps=300)
    step = jax.jit(experiment.train_step, static_argnames="config")
    state = experiment.create_state(config, jax.random.key(0))
    cycle = []
    for batch in _batches(mnist, config, config.steps):
        state, metrics = step(state, batch, config=experiment.step_config(config))
        cycle.append(metrics["cycle_loss"])
    cycle = np.asarray(jax.device_get(cycle))
    assert np.mean(cycle[-20:]) < 0.2 * cycle[0], (cycle[0], np.mean(cycle[-20:]))
