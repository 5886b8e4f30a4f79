"""The VAE-GAN experiment end to end, at tiny sizes on the real digits."""

import json

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import vaegan_mnist
from ganjax import data, images, run
from ganjax.evaluation import mnist_classifier, quality
from ganjax.models import vaegan


@pytest.mark.slow
def test_vaegan_writes_originals_and_reconstructions_and_their_class_accuracy(mnist_dir, mnist, tmp_path, monkeypatch):
    monkeypatch.setattr(quality, "DIVERSITY_SAMPLES", 16)  # of the decoder's samples from the prior
    classifier_dir = mnist_classifier.save_mnist_classifier(
        mnist_classifier.init(jax.random.key(0)), tmp_path / "classifier"
    )
    workdir = tmp_path / "run"
    config = run.parse(
        vaegan_mnist.Config,
        [
            "--data.dir",
            str(mnist_dir),
            "--run.workdir",
            str(workdir),
            "--schedule.steps",
            "4",
            "--schedule.batch-size",
            "16",
            "--latent.dim",
            "4",
            "--model.width",
            "4",
            "--holdout",
            "100",
            "--grid-columns",
            "5",
            "--grid-pairs",
            "2",
            "--run.log-every",
            "2",
            "--run.sample-every",
            "2",
            "--run.checkpoint-every",
            "2",
            "--reconstruction.eval-every",
            "2",
            "--reconstruction.classifier-dir",
            str(classifier_dir),
        ],
    )
    result = run.train(vaegan_mnist.RECIPE, config)
    state, shares = result.state, result.results["reconstruction_accuracy"]
    assert int(state.step) == 4
    held_out = mnist.split(1.0 - 100 / len(mnist))[1]
    originals = data.to_float(held_out.images[:10])
    # Rows: 5 held-out originals, their reconstructions, the next 5 originals, theirs.
    rebuilt = vaegan.reconstruct(state, originals)
    expected = np.stack([originals[:5], rebuilt[:5], originals[5:], rebuilt[5:]]).reshape(-1, 28, 28, 1)
    grid = np.asarray(Image.open(workdir / "reconstructions.png"))[::2, ::2]
    np.testing.assert_array_equal(grid, images.make_grid(expected, nrow=5)[..., 0])
    classify = mnist_classifier.load_mnist_classifier(classifier_dir).class_fn()
    saved = json.loads((workdir / "reconstruction_accuracy.json").read_text())
    assert saved["per_class"] == shares == vaegan_mnist.reconstruction_accuracy(state, held_out, classify)
    assert saved["held_out_per_class"] == np.bincount(held_out.labels, minlength=10).tolist()
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "reconstruction_accuracy" in r] == [2, 4]
    diversity = [r for r in records if "duplicate_share" in r]
    assert [r["step"] for r in diversity] == [2, 4]
    assert all(0 <= r["duplicate_share"] <= 1 and r["pairwise_distance_ratio"] > 0 for r in diversity)
    assert {"kl", "reconstruction", "d_loss", "g_loss", "enc_grad_norm"} <= set(records[-1])
    assert records[-1]["reconstruction"] > 0 and records[-1]["kl"] > 0
    # The last sample grid also holds 2 rows of samples from the prior.
    assert Image.open(workdir / "samples" / "step_000004.png").size == ((5 * 30 + 2) * 2, (6 * 30 + 2) * 2)
    assert json.loads((workdir / "config.json").read_text())["model"]["gamma"] == 1.0
