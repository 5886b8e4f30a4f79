"""The conditional GAN and AC-GAN experiments end to end, at tiny sizes on the real digits."""

import json

import chex
import jax
import numpy as np
import pytest
from PIL import Image

from experiments import acgan_mnist, cgan_mnist
from ganjax import evaluation, images, run
from ganjax.evaluation import mnist_classifier
from ganjax.training.gan import ema_stats, generate


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """An untrained classifier: the checks compare the experiment's numbers with their recomputation."""
    return str(
        mnist_classifier.save_mnist_classifier(
            mnist_classifier.init(jax.random.key(0)), tmp_path_factory.mktemp("classifier")
        )
    )


def tiny(cls, mnist_dir, tmp_path, classifier_dir, *extra):
    argv = [
        "--data.dir",
        str(mnist_dir),
        "--run.workdir",
        str(tmp_path / "run"),
        "--schedule.steps",
        "6",
        "--schedule.batch-size",
        "16",
        "--latent.dim",
        "8",
        "--model.g-width",
        "4",
        "--model.d-width",
        "4",
        "--samples-per-class",
        "3",
        "--run.log-every",
        "2",
        "--run.sample-every",
        "3",
        "--run.checkpoint-every",
        "3",
        "--class-accuracy.eval-every",
        "3",
        "--class-accuracy.eval-per-class",
        "5",
        "--class-accuracy.final-eval-per-class",
        "20",
        "--class-accuracy.classifier-dir",
        classifier_dir,
        *extra,
    ]
    return run.parse(cls, argv)


def test_per_class_accuracy():
    assert evaluation.per_class_accuracy([0, 0, 1, 1, 2, 0], [0, 1, 1, 1, 2, 2], 3) == [1.0, 2 / 3, 0.5]


def test_per_class_shares_count_as_readable_only_sure_and_right_reads():
    sure = lambda c: np.eye(3)[c] * 0.95 + 0.025  # read as c with probability 0.95
    unsure = lambda c: np.eye(3)[c] * 0.5 + 0.25  # read as c with probability 0.75
    probabilities = [sure(0), unsure(0), sure(1), sure(2), unsure(2)]
    shares = evaluation.per_class_shares(np.array(probabilities), [0, 0, 1, 2, 1], 3)
    assert shares == {"accuracy": [1.0, 0.5, 1.0], "readable": [0.5, 0.5, 1.0]}


@pytest.mark.slow  # a whole cGAN run with its evaluation (about 25 s of CPU)
def test_cgan_grid_rows_are_digits_and_class_accuracy_is_the_classifiers(mnist_dir, tmp_path, classifier_dir):
    config = tiny(cgan_mnist.Config, mnist_dir, tmp_path, classifier_dir, "--swaps.every", "4", "--swaps.duration", "1")
    result = run.train(cgan_mnist.RECIPE, config)
    state, shares = result.state, result.results["class_accuracy"]
    assert int(state.step) == 6
    folder = tmp_path / "run"
    # Row r of the last grid is digit r: G's (moving-average) samples for label r from the fixed z of columns 0-2.
    _, sample_key, eval_key = jax.random.split(jax.random.key(config.run.seed), 3)
    labels = np.repeat(np.arange(10), 3)
    z = jax.random.normal(sample_key, (30, 8))
    # The moving average is sampled with BatchNorm statistics recomputed for it from the grid's key.
    stats = ema_stats(state, sample_key, config.latent.sample, 16, 10)
    expected = images.make_grid(np.asarray(generate(state, z, labels, use_ema=True, ema_stats=stats)), nrow=3)
    grid = np.asarray(Image.open(folder / "samples" / "step_000006.png"))[::2, ::2]
    # Jitted and eager G differ in the last float bits, which can move a pixel across a rounding boundary.
    np.testing.assert_allclose(grid, expected[..., 0], atol=1)
    running = state.replace(
        ema={}, players={**state.players, "g": state.players["g"].replace(params=state.ema["g"].params)}
    )
    wrong = images.make_grid(np.asarray(generate(running, z, labels)), nrow=3)  # the average with G's statistics
    assert np.abs(grid.astype(int) - wrong[..., 0]).max() > 1
    probabilities = mnist_classifier.load_mnist_classifier(classifier_dir).probability_fn()
    recomputed = evaluation.sample_class_shares(
        state, probabilities, eval_key, 10, 20, config.latent.sample, True, run_batch_size=16
    )
    saved = json.loads((folder / "class_accuracy.json").read_text())
    assert saved["per_class"] == shares == recomputed["accuracy"] and saved["min"] == min(shares)
    assert saved["readable_per_class"] == recomputed["readable"]
    assert all(r <= a for r, a in zip(recomputed["readable"], recomputed["accuracy"]))
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    # Computed at steps 3 and 6, logged with the records of steps 4 and 6.
    assert [r["step"] for r in records if "class_accuracy_min" in r] == [4, 6]
    # Swaps: a snapshot after step 1; a window opens after 4 steps, so the 5th step plays the old D
    # (logged at step 6 as the mean over steps 5 and 6).
    assert [r["swapped_d"] for r in records if r["step"] in (4, 6)] == [0.0, 0.5]
    assert all(np.isfinite(r["d_loss"]) and np.isfinite(r["g_loss"]) for r in records)


def test_an_acgan_d_needs_the_class_loss():
    with pytest.raises(
        ValueError, match="ConditionalModel.d_conditioning: is 'auxiliary' with conditioning.aux_class_weight=0.0"
    ):
        cgan_mnist.Config(model=run.ConditionalModel(d_conditioning="auxiliary"))


@pytest.mark.slow
def test_acgan_trains_the_class_head(mnist_dir, tmp_path, classifier_dir):
    result = run.train(acgan_mnist.RECIPE, tiny(acgan_mnist.Config, mnist_dir, tmp_path, classifier_dir))
    state, shares = result.state, result.results["class_accuracy"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["d_class_loss"] > 0 and r["g_class_loss"] > 0 for r in records if "d_loss" in r)
    assert len(shares) == 10
    d = state.players["d"]
    (logits, class_logits), _ = d(d.params, np.zeros((2, 28, 28, 1), np.float32), train=False)
    chex.assert_shape((logits, class_logits), ((2,), (2, 10)))
