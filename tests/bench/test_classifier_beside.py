"""bench.classifier_beside: the feature network trained beside a GAN's steps is the one trained alone."""

import pytest

from bench import classifier_beside


@pytest.mark.slow  # compiles a DCGAN step and the classifier's: 20 s
def test_both_orders_run_and_train_the_same_classifier(capsys):
    flags = ["--gan-steps", "2", "--classifier-steps", "2", "--repeats", "1", "--model.g-width", "8"]
    classifier_beside.main(["dcgan_mnist", *flags, "--model.d-width", "8", "--clusters.k", "0"])
    out = capsys.readouterr().out
    assert "one after the other: 2 GAN steps" in out and "at once: 2 GAN steps" in out
    assert "classifier params equal bit for bit: True" in out
