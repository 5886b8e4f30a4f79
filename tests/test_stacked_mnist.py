"""Stacked MNIST: the dataset, the mode metrics, the per-channel classification and a tiny experiment run."""

import json
import math

import jax
import numpy as np
import pytest

from experiments import stacked_mnist as experiment
from ganjax import data, run
from ganjax.benchmarks import stacked_mnist
from ganjax.evaluation import mnist_classifier as mc
from ganjax.evaluation import monitor


def fake_digits(n=50, seed=0):
    """Digits whose pixels all equal 20 * label, so each channel's digit can be read back."""
    labels = np.random.default_rng(seed).integers(0, 10, n).astype(np.int32)
    images = np.broadcast_to((labels * 20).astype(np.uint8)[:, None, None, None], (n, 28, 28, 1)).copy()
    return data.ImageDataset(images, labels, "fake")


def test_stacked_dataset_shapes_labels_and_seed():
    digits = fake_digits()
    stacked = stacked_mnist.stacked_dataset(digits, 200, seed=3)
    assert stacked.images.shape == (200, 28, 28, 3) and stacked.images.dtype == np.uint8
    channel_digits = stacked.images[:, 0, 0, :] // 20
    np.testing.assert_array_equal(stacked.labels, channel_digits @ np.array([100, 10, 1]))
    assert np.all((stacked.labels >= 0) & (stacked.labels < 1000))
    again = stacked_mnist.stacked_dataset(digits, 200, seed=3)
    np.testing.assert_array_equal(stacked.images, again.images)
    other = stacked_mnist.stacked_dataset(digits, 200, seed=4)
    assert not np.array_equal(stacked.labels, other.labels)
    with pytest.raises(data.DataError):
        stacked_mnist.stacked_dataset(data.ImageDataset(digits.images), 10, 0)


def test_mode_metrics_uniform_and_single_mode():
    every = np.array([[m // 100, m // 10 % 10, m % 10] for m in range(1000)])
    assert stacked_mnist.mode_metrics(every) == {"modes": 1000, "kl": pytest.approx(0.0, abs=1e-12)}
    one = stacked_mnist.mode_metrics(np.tile([[4, 0, 7]], (26, 1)))
    assert one["modes"] == 1 and one["kl"] == pytest.approx(math.log(1000))
    probabilities = np.eye(10)[np.tile(every, (2, 1))]  # (2000, 3, 10) one-hot
    assert stacked_mnist.mode_metrics(probabilities)["modes"] == 1000


def test_classify_channels_applies_the_classifier_to_each_channel():
    stacked = stacked_mnist.stacked_dataset(fake_digits(), 30, seed=0)
    seen = []

    def classify(images):
        seen.append(images.shape)
        return np.rint((images[:, 0, 0, 0] + 1.0) * 127.5 / 20).astype(np.int32)

    predictions = stacked_mnist.classify_channels(classify, stacked.images, batch_size=16)
    np.testing.assert_array_equal(predictions @ np.array([100, 10, 1]), stacked.labels)
    assert set(seen) == {(16, 28, 28, 1), (14, 28, 28, 1)}


@pytest.mark.slow
def test_tiny_experiment_run_logs_modes(tmp_path, monkeypatch):
    draws = []
    samplers = experiment.evaluation.samplers

    def counted(*args, **kwargs):
        draw, stats = samplers(*args, **kwargs)
        return lambda *a: draws.append(1) or draw(*a), stats

    monkeypatch.setattr(experiment.evaluation, "samplers", counted)
    classifier_dir = mc.save_mnist_classifier(mc.init(jax.random.key(0)), tmp_path / "classifier")
    argv = ["--run.workdir", str(tmp_path / "run"), "--schedule.steps", "4", "--schedule.batch-size", "8"]
    argv += ["--data.size", "64", "--latent.dim", "8", "--model.g-width", "4", "--model.d-width", "4"]
    argv += ["--run.log-every", "2", "--run.sample-every", "4", "--run.checkpoint-every", "4"]
    argv += ["--evaluation.eval-every", "2", "--evaluation.eval-samples", "20"]
    argv += ["--evaluation.classifier-dir", str(classifier_dir)]
    config = run.parse(experiment.Config, argv)
    assert config.data.shape == (28, 28, 3) and experiment.Config().evaluation.eval_samples == 26_000
    state = run.train(experiment.RECIPE, config).state
    assert int(state.step) == 4
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in rows if "modes" in r]
    assert [r["step"] for r in evaluated] == [2, 4]
    assert all(1 <= r["modes"] <= 20 and 0 <= r["mode_kl"] <= math.log(1000) + 1e-9 for r in evaluated)
    # The mode-collapse signals of the RGB samples against the stacked reals, at the same steps.
    assert all(0 <= r["duplicate_share"] <= 1 and r["pairwise_distance_ratio"] > 0 for r in evaluated)
    assert len(draws) == 2 * 3  # one draw of 20 samples in batches of 8 per evaluation feeds both
    assert experiment.RECIPE.generator(config).num == config.num_samples


def test_the_monitor_lets_g_catch_up_with_d_over_the_first_1000_steps():
    """A healthy Stacked MNIST D wins most batches at first while G's loss falls: not G fooling D with garbage."""
    steps = 950
    noise = np.random.default_rng(0).normal(size=steps)
    trace = {
        "g_loss": np.linspace(6.0, 3.0, steps) + 0.2 * noise,
        "d_real": np.full(steps, 0.95),
        "d_fake": np.full(steps, 0.05),
    }
    config = run.parse(experiment.Config, [])
    stacked = config.monitor.build(config.objective)
    default = run.Monitor().build(config.objective)
    flagged = lambda monitor_config: [
        step
        for step, flags in monitor.replay(trace, 50, monitor_config)
        if any(flag.name == "g_fools_with_garbage" for flag in flags)
    ]
    assert flagged(default), "the trace is one the default monitor flags after its 400-step warmup"
    assert flagged(stacked) == []
    assert flagged(run.parse(experiment.Config, ["--monitor.warmup", "400"]).monitor.build(config.objective))
