"""The MNIST feature network: a short train on real digits reaches a sane accuracy; save/load round trip."""

import chex
import numpy as np
import pytest

from ganjax import data, evaluation
from ganjax.evaluation import ClassifierTraining, metrics
from ganjax.evaluation import mnist_classifier as mc


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


def test_missing_classifier_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_mnist_classifier"):
        mc.load_mnist_classifier(tmp_path)
