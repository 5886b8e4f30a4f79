"""How often a classifier reads a conditional G's class-c samples as c."""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import data
from ganjax.evaluation import metrics
from ganjax.evaluation import mnist_classifier as mc
from ganjax.evaluation.features import _shape, reference_images
from ganjax.evaluation.quality import CLASS_SAMPLE_BATCH, DIVERSITY_SAMPLES, generator_diversity, scheduled
from ganjax.training.gan import ema_stats, generate
from ganjax.training.state import TrainState

PyTree = Any


def per_class_accuracy(predictions, labels, num_classes: int) -> list[float]:
    """Per class ``c``: the share of the examples of label ``c`` that are predicted ``c``."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return [float(np.mean(predictions[labels == c] == c)) for c in range(num_classes)]


def per_class_shares(probabilities, labels, num_classes: int, confidence: float = 0.9) -> dict[str, list[float]]:
    """Per class ``c``, of the examples of label ``c``: ``'accuracy'``, the share the classifier reads as ``c``,
    and ``'readable'``, the share it reads as ``c`` with probability at least ``confidence``."""
    probabilities = np.asarray(probabilities)
    sure = np.max(probabilities, axis=-1) >= confidence
    predictions = np.where(sure, np.argmax(probabilities, axis=-1), -1)
    return {
        "accuracy": per_class_accuracy(np.argmax(probabilities, axis=-1), labels, num_classes),
        "readable": per_class_accuracy(predictions, labels, num_classes),
    }


def class_labels(num_classes: int, per_class: int) -> jax.Array:
    """``[0]*per_class + [1]*per_class + ...``: row ``c`` of a grid with ``per_class`` columns is class ``c``."""
    return jnp.repeat(jnp.arange(num_classes), per_class)


_generate = jax.jit(generate, static_argnames=("train", "use_ema"))  # one compiled sampler for every check
_ema_stats = jax.jit(ema_stats, static_argnames=("draw", "batch_size", "num_classes"))


def class_samples(
    state: TrainState,
    key: jax.Array,
    num_classes: int,
    per_class: int,
    draw: Callable[[jax.Array, int], jax.Array],
    use_ema: bool = False,
    batch_size: int = CLASS_SAMPLE_BATCH,
    run_batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """``(images, labels)``: ``per_class`` samples of each class in turn from G (running statistics).

    ``draw(key, n)`` gives ``n`` latents of the run's distribution (``config.latent.sample``). With ``use_ema``
    the samples come from the moving average of G, with BatchNorm statistics recomputed for it once, from
    ``key``, over batches of ``run_batch_size``, the run's batch size (:func:`ganjax.training.gan.ema_stats`).
    """
    labels = class_labels(num_classes, per_class)
    z = draw(key, len(labels))
    stats = _ema_stats(state, key, draw, run_batch_size, num_classes) if use_ema else None
    images = [
        np.asarray(
            _generate(state, z[i : i + batch_size], labels[i : i + batch_size], use_ema=use_ema, ema_stats=stats)
        )
        for i in range(0, len(labels), batch_size)
    ]
    return np.concatenate(images), np.asarray(labels)


def sample_class_shares(
    state: TrainState,
    class_probabilities,
    key: jax.Array,
    num_classes: int,
    per_class: int,
    draw: Callable[[jax.Array, int], jax.Array],
    use_ema: bool = False,
    batch_size: int = CLASS_SAMPLE_BATCH,
    run_batch_size: int = 64,
) -> dict[str, list[float]]:
    """:func:`per_class_shares` of :func:`class_samples` (same arguments); ``class_probabilities`` maps images to
    the classifier's class probabilities."""
    images, labels = class_samples(state, key, num_classes, per_class, draw, use_ema, batch_size, run_batch_size)
    return per_class_shares(_probabilities(class_probabilities, images, batch_size), labels, num_classes)


def _probabilities(class_probabilities, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.concatenate([np.asarray(class_probabilities(b)) for b in metrics.array_batches(images, batch_size)])


def class_accuracy_hooks(config, key: jax.Array) -> Callable[[data.ImageDataset], list]:
    """``dataset -> [Evaluate hook]`` logging ``class_accuracy_min`` and ``_mean`` (and ``class_readable_min`` and
    ``_mean``, read with confidence at least 0.9: :func:`per_class_shares`) of a conditional GAN's config, and
    the mode-collapse signals of the same samples against the dataset's (prefixed ``ema_`` for a moving
    average).

    Each check, at the multiples of ``eval_every``, draws ``eval_per_class`` samples per class from
    ``fold_in(key, step)`` of the moving average when kept, else of G; the classifier is loaded at the first.
    None without a classifier for the dataset's images (a classifier for other images is named in one line).
    """
    settings = config.class_accuracy

    def hooks(dataset: data.ImageDataset) -> list:
        saved = mc.saved_config(settings.classifier_dir) if settings.classifier_dir else None
        if saved is None or not settings.eval_every:
            return []
        shape = dataset.images.shape[1:]
        if saved.shape != shape:
            if jax.process_index() == 0:
                print(
                    f"warning: class accuracy: the classifier in {settings.classifier_dir} takes "
                    f"{_shape(saved.shape)} images, not {_shape(shape)}: no class_accuracy",
                    file=sys.stderr,
                    flush=True,
                )
            return []

        def build() -> Callable[[TrainState, int], dict]:
            class_probabilities = mc.load_mnist_classifier(settings.classifier_dir).probability_fn()
            reference = reference_images(dataset, np.random.default_rng(config.run.seed))
            classes, prefix = config.conditioning.num_classes, "ema_" if config.state.keeps_ema else ""

            def evaluate(state: TrainState, step: int) -> dict[str, float]:
                images, labels = class_samples(
                    state,
                    jax.random.fold_in(key, step),
                    classes,
                    settings.eval_per_class,
                    config.latent.sample,
                    config.state.keeps_ema,
                    run_batch_size=config.schedule.batch_size,
                )
                shares = per_class_shares(
                    _probabilities(class_probabilities, images, CLASS_SAMPLE_BATCH), labels, classes
                )
                spread = images[:: max(1, len(images) // DIVERSITY_SAMPLES)][:DIVERSITY_SAMPLES]  # every class
                return {
                    **{
                        f"class_{name}_{stat}": value
                        for name, per_class in shares.items()
                        for stat, value in (("min", min(per_class)), ("mean", float(np.mean(per_class))))
                    },
                    **{f"{prefix}{k}": v for k, v in metrics.sample_diversity(spread, reference).items()},
                }

            return evaluate

        return [scheduled(settings.eval_every, build)]

    return hooks


def conditional_hooks(config, key: jax.Array) -> Callable[[data.ImageDataset], list]:
    """``dataset -> [Evaluate hook]`` of a conditional GAN's config at ``class_accuracy.eval_every``:
    :func:`class_accuracy_hooks`, whose samples also give the mode-collapse signals of the model they come from,
    and the signals of ``eval_per_class`` samples of each class (at most :data:`DIVERSITY_SAMPLES` in all;
    :func:`generator_diversity`) of G when those came from its moving average, or of both without a classifier."""
    settings, classes = config.class_accuracy, config.conditioning.num_classes

    def hooks(dataset: data.ImageDataset) -> list:
        accuracy = class_accuracy_hooks(config, key)(dataset)
        moving_average = not accuracy  # else the class hook's samples are the moving average's (or G's)
        if accuracy and not config.state.keeps_ema:
            return accuracy
        samples = settings.eval_per_class * classes
        diversity = generator_diversity(config, settings.eval_every, samples, classes, moving_average=moving_average)
        return accuracy + diversity(dataset)

    return hooks


def write_class_accuracy(config, state: TrainState, key: jax.Array) -> list[float] | None:
    """The per-class accuracy of ``final_eval_per_class`` samples per class, written with the per-class
    readable shares (:func:`per_class_shares`) to ``{workdir}/class_accuracy.json``; None without a classifier
    for the config's images."""
    settings = config.class_accuracy
    saved = mc.saved_config(settings.classifier_dir)
    if saved is None or saved.shape != config.data.shape:
        return None
    classifier = mc.load_mnist_classifier(settings.classifier_dir)
    shares = sample_class_shares(
        state,
        classifier.probability_fn(),
        key,
        config.conditioning.num_classes,
        settings.final_eval_per_class,
        config.latent.sample,
        config.state.keeps_ema,
        run_batch_size=config.schedule.batch_size,
    )
    accuracy, readable = shares["accuracy"], shares["readable"]
    if jax.process_index() == 0:
        result = {
            "per_class": accuracy,
            "min": min(accuracy),
            "mean": float(np.mean(accuracy)),
            "readable_per_class": readable,
            "readable_min": min(readable),
            "readable_mean": float(np.mean(readable)),
            "samples_per_class": settings.final_eval_per_class,
            "classifier_dir": settings.classifier_dir,
        }
        (pathlib.Path(config.run.workdir) / "class_accuracy.json").write_text(json.dumps(result, indent=1))
    return accuracy
