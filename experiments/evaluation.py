"""MNIST evaluation of a generator during training: MNIST FID, KID, precision/recall, classes, mode collapse.

Features and class predictions come from the small MNIST classifier of
``experiments.train_mnist_classifier`` (trained here on first use if
``classifier_dir`` holds none). Real features are cached on disk by dataset
and network. The first evaluation also reports the real-vs-real floor: the FID
between two disjoint sets of real digits of the evaluation's size, the best a
generator can hope for with this many samples.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import jax
import numpy as np

from experiments import common, train_mnist_classifier
from ganjax import data
from ganjax.evaluation import metrics
from ganjax.evaluation import mnist_classifier
from ganjax.train import GANState

CACHE_DIR = "runs/cache"


def classifier_for(config: common.GANConfig, dataset: data.ImageDataset) -> mnist_classifier.Classifier:
    """The classifier in ``config.classifier_dir``, trained there on ``dataset`` first if it is missing."""
    folder = pathlib.Path(config.classifier_dir)
    if not (folder / mnist_classifier.CONFIG_FILE).is_file():
        settings = train_mnist_classifier.ClassifierTrainConfig(out=str(folder))
        train_set, _ = dataset.split(1.0 - settings.test_size / len(dataset))
        mnist_classifier.save_mnist_classifier(train_mnist_classifier.train(settings, train_set), folder)
    return mnist_classifier.load_mnist_classifier(folder)


def mnist_evaluator(config: common.GANConfig, dataset: data.ImageDataset,
                    sample: Callable[[GANState, jax.Array, bool], jax.Array]) -> Callable[[GANState, int], dict]:
    """An ``evaluate(state, step)`` for :func:`experiments.common.fit`.

    Args:
      config: needs ``classifier_dir``, ``eval_samples``, ``latent_dim`` and ``ema_decay``.
      dataset: the real images (all of them are the reference set).
      sample: ``(state, key, use_ema) -> images`` for a batch of ``config.batch_size``.

    Returns:
      A function giving ``fid``, ``kid``, ``kid_std``, ``precision``, ``recall``,
      ``density``, ``coverage``, ``class_coverage``, ``class_kl``,
      ``duplicate_share`` and ``pairwise_distance_ratio`` of G (and the same
      prefixed ``ema_`` for the EMA of G when kept), plus ``fid_floor`` the first time.
    """
    classifier = classifier_for(config, dataset)
    feature_fn, class_fn = classifier.feature_fn(), classifier.class_fn()
    network = f"mnist_classifier:{pathlib.Path(config.classifier_dir).resolve().name}"
    real = metrics.cached_features(CACHE_DIR, dataset.name, network, lambda: metrics.extract_features(
        feature_fn, metrics.array_batches(data.to_float(dataset.images), 500)))
    # G is compared with a fixed random subset of eval_samples reals; the floor is the FID between that
    # subset and as many other reals, the best a generator can score at this sample size.
    n = min(config.eval_samples, len(real) // 2)
    order = np.random.default_rng(config.seed).permutation(len(real))
    real, other = real[order[:n]], real[order[n:2 * n]]
    floor = {"fid_floor": metrics.fid_from_features(real, other)}
    reference_pixels = data.to_float(dataset.images[order[:1000]])
    key = jax.random.key(config.seed + 1)
    kid_size = min(1000, n)

    def evaluate_one(state: GANState, use_ema: bool) -> dict[str, float]:
        batches = list(metrics.generated_batches(lambda k, n: sample(state, k, use_ema), key,
                                                 config.eval_samples, config.batch_size))
        result = metrics.evaluate_images(iter(batches), feature_fn, real, key, class_fn=class_fn,
                                         kid_subset_size=kid_size)
        return {**result, **metrics.sample_diversity(np.concatenate(batches)[:1000], reference_pixels)}

    def evaluate(state: GANState, step: int) -> dict[str, float]:
        result = {**floor, **evaluate_one(state, False)}
        floor.clear()
        if config.ema_decay:
            result.update({f"ema_{k}": v for k, v in evaluate_one(state, True).items()})
        return result

    return evaluate
