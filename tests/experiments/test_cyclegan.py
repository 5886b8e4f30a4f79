"""The CycleGAN experiment: its MNIST domains, a tiny run end to end, and (slow) the cycle loss falling."""

import jax
import numpy as np
import pytest

from experiments import cyclegan as experiment
from ganjax import data, run
from ganjax.models import cyclegan
from ganjax.training.phases import make_step


def test_mnist_domains_are_inverted_thickened_and_unpaired(mnist):
    a, b = experiment.mnist_domains(mnist)
    half = len(mnist) // 2
    np.testing.assert_array_equal(a.images, mnist.images[:half])
    digits = mnist.images[half : 2 * half]
    assert np.all(255 - b.images >= digits) and np.mean(255 - b.images > 127) > 1.5 * np.mean(digits > 127)
    stack = experiment.stacked(a, b, seed=0)
    assert stack.images.shape == (half, 28, 28, 2)
    assert sorted(map(bytes, stack.images[..., 1])) == sorted(map(bytes, b.images[..., 0]))
    split = experiment.split_domains(data.Batcher(stack, 4, seed=0).batch(0))
    assert split["a"].shape == split["b"].shape == (4, 28, 28, 1)


@pytest.mark.slow  # the model's step is checked by hand in the default suite
def test_experiment_smoke(mnist_dir, tmp_path):
    workdir = tmp_path / "run"
    config = run.parse(
        experiment.Config,
        [
            "--data.dir",
            str(mnist_dir),
            "--run.workdir",
            str(workdir),
            "--schedule.steps",
            "4",
            "--schedule.batch-size",
            "4",
            "--model.g-width",
            "4",
            "--model.g-blocks",
            "1",
            "--model.d-width",
            "4",
            "--pool.size",
            "6",
            "--num-samples",
            "4",
            "--run.log-every",
            "2",
            "--run.sample-every",
            "4",
            "--run.checkpoint-every",
            "4",
        ],
    )
    state = run.train(experiment.RECIPE, config).state
    assert int(state.step) == 4
    for name in ("reconstructions.png", "samples/step_000004.png", "samples.gif", "training.png", "config.json"):
        assert (workdir / name).is_file(), name
    assert int(state.buffers["pool_a"].count) == 4 * 4


@pytest.mark.slow
def test_cycle_loss_falls_below_a_fifth_of_its_start(mnist):
    """A 300-step run of the default models on the MNIST domains (about two minutes on two cores)."""
    config = run.resolve(experiment.Config(schedule=run.Schedule(steps=300, batch_size=8)))
    model = cyclegan.CycleGAN(config.objective.cycle_weight, config.objective.identity_weight)
    step = jax.jit(make_step(model.phases()), donate_argnums=0)
    state = experiment.RECIPE.init(config, jax.random.key(0), None, None)
    batcher = data.Batcher(experiment.stacked(*experiment.mnist_domains(mnist), seed=0), 8, seed=0)
    cycle = []
    for t in range(config.schedule.steps):
        state, metrics = step(state, experiment.split_domains(batcher.batch(t)))
        cycle.append(metrics["cycle_loss"])
    cycle = np.asarray(jax.device_get(cycle))
    assert np.mean(cycle[-20:]) < 0.2 * cycle[0], (cycle[0], np.mean(cycle[-20:]))
