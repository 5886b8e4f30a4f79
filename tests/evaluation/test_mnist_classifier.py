"""The MNIST feature network: a player with one phase (its loss trains it, the shift inside the step), a short
train on real digits reaches a sane accuracy; the one loader and its save round trip."""

import dataclasses

import chex
import jax
import numpy as np
import optax
import pytest

from ganjax import data, evaluation
from ganjax.evaluation import ClassifierTraining, metrics
from ganjax.evaluation import classifier_training as ct
from ganjax.evaluation import mnist_classifier as mc

TINY = ClassifierTraining(steps=20, batch_size=32, width=4, feature_dim=16, lr=3e-3)


@pytest.fixture(scope="module")
def tiny_batch(mnist):
    return data.Batcher(data.ImageDataset(mnist.images[:32], mnist.labels[:32]), 32, 0).batch(0)


def by_hand(settings, state, batch, shift):
    """One step written out: Adam on the cross-entropy of the digits shifted with the step's key."""
    player = state.players[ct.CLASSIFIER]
    images = ct.random_shift(jax.random.fold_in(state.key, state.step), batch["image"], shift)

    def loss(params):
        logits, _ = mc.MNISTClassifier(ct.classifier_config(settings)).apply({"params": params}, images)
        return optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()

    value, grads = jax.value_and_grad(loss)(player.params)
    updates, _ = player.tx.update(grads, player.opt_state, player.params)
    return optax.apply_updates(player.params, updates), value


def test_the_phases_loss_on_shifted_digits_is_what_trains_the_player(tiny_batch):
    """One step of make_step over the classifier's phase is Adam on the cross-entropy of the shifted digits."""
    state = ct.classifier_state(TINY)
    before = jax.tree.map(np.array, state.players[ct.CLASSIFIER].params)
    expected, expected_loss = by_hand(TINY, state, tiny_batch, TINY.shift)
    after, step_metrics = ct.make_classifier_step(TINY)(state, tiny_batch)
    assert int(after.step) == 1 and set(step_metrics) == {"classifier_loss", "classifier_grad_norm"}
    params = after.players[ct.CLASSIFIER].params
    assert not any(jax.tree.leaves(jax.tree.map(np.array_equal, params, before)))  # every array moved
    chex.assert_trees_all_close(params, expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(step_metrics["classifier_loss"], expected_loss, rtol=1e-6)


def test_the_shift_is_drawn_inside_the_step(tiny_batch):
    """Switched off, the same state and batch train other params: those of the unshifted digits."""
    unshifted = dataclasses.replace(TINY, shift=0)
    shifted = ct.make_classifier_step(TINY)(ct.classifier_state(TINY), tiny_batch)[0]
    plain = ct.make_classifier_step(unshifted)(ct.classifier_state(unshifted), tiny_batch)[0]
    expected, _ = by_hand(unshifted, ct.classifier_state(unshifted), tiny_batch, 0)
    chex.assert_trees_all_close(plain.players[ct.CLASSIFIER].params, expected, rtol=1e-5, atol=1e-7)
    differs = jax.tree.map(np.array_equal, shifted.players[ct.CLASSIFIER].params, plain.players[ct.CLASSIFIER].params)
    assert not all(jax.tree.leaves(differs))


def test_the_loss_decreases_over_a_few_steps_on_a_tiny_set(tiny_batch):
    state, step = ct.classifier_state(TINY), ct.make_classifier_step(TINY)
    losses = []
    for _ in range(10):
        state, step_metrics = step(state, tiny_batch)
        losses.append(float(step_metrics["classifier_loss"]))
    assert max(losses[-3:]) < losses[0] - 0.3, losses  # from about 2.6 (ln 10 = 2.3) to about 2.1


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    train_set, test_set = data.ImageDataset(mnist.images[:3000], mnist.labels[:3000]).split(0.8)
    settings = ClassifierTraining(steps=120, batch_size=64, width=8, feature_dim=32, lr=3e-3)
    classifier = evaluation.train_classifier(settings, train_set)
    return classifier, test_set, mc.save_mnist_classifier(classifier, tmp_path_factory.mktemp("clf"))


def test_short_train_reaches_sane_accuracy(trained):
    classifier, test_set, _ = trained
    assert evaluation.accuracy(classifier, test_set) > 0.8


def test_save_load_round_trip(trained):
    classifier, test_set, path = trained
    loaded = mc.load_mnist_classifier(path)
    assert loaded.config == classifier.config
    chex.assert_trees_all_close(loaded.params, classifier.params, rtol=1e-6)
    images = data.to_float(test_set.images[:64])
    np.testing.assert_allclose(loaded.feature_fn()(images), classifier.feature_fn()(images), rtol=1e-6)
    assert evaluation.accuracy(loaded, test_set) == evaluation.accuracy(classifier, test_set)


def test_features_and_classes_feed_the_metrics(trained):
    classifier, test_set, _ = trained
    features = metrics.extract_features(
        classifier.feature_fn(), metrics.array_batches(data.to_float(test_set.images), 200)
    )
    assert features.shape == (len(test_set), 32)
    predictions = np.concatenate(
        [np.asarray(classifier.class_fn()(data.to_float(b))) for b in metrics.array_batches(test_set.images, 200)]
    )
    assert metrics.class_metrics(predictions, 10)["class_coverage"] == 10
    probabilities = np.concatenate(
        [np.asarray(classifier.probability_fn()(data.to_float(b))) for b in metrics.array_batches(test_set.images, 200)]
    )
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(-1), predictions)
    half = len(features) // 2
    assert metrics.fid_from_features(features[:half], features[half:]) < metrics.fid_from_features(
        features[:half], features[half:] * 0.0
    )


def test_the_one_loader_names_the_folder(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no saved MNIST classifier.*train_mnist_classifier"):
        mc.load_mnist_classifier(tmp_path)
    with pytest.raises(FileNotFoundError, match="no MNIST classifier folder named"):
        mc.load_mnist_classifier("")
    assert mc.saved_config("") is None and mc.saved_config(tmp_path) is None
    _, _, path = trained
    assert mc.saved_config(path).shape == (28, 28, 1)
    with pytest.raises(ValueError, match=f"{path}: the MNIST classifier there reads 28x28x1 images, not 32x32x3"):
        mc.load_mnist_classifier(path, (32, 32, 3))
    assert mc.load_mnist_classifier(path, (28, 28, 1)).config == mc.saved_config(path)
