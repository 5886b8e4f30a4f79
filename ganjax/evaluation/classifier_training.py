"""Trains the MNIST classifier behind MNIST FID, and finds a trained one."""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from tqdm import tqdm

from ganjax import data
from ganjax.evaluation import metrics
from ganjax.evaluation import mnist_classifier as mc
from ganjax.evaluation.settings import ClassifierTraining

PyTree = Any


def random_shift(key: jax.Array, images: jax.Array, shift: int) -> jax.Array:
    """Each image moved by an independent random offset in ``[-shift, shift]²`` (edges padded with -1)."""
    if shift == 0:
        return images
    padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (len(images), 2), 0, 2 * shift + 1)
    crop = lambda img, o: lax.dynamic_slice(img, (o[0], o[1], 0), images.shape[1:])
    return jax.vmap(crop)(padded, offsets)


def make_classifier_step(module: mc.MNISTClassifier, tx: optax.GradientTransformation, shift: int):
    """A jitted ``(params, opt_state, images, labels, key) -> (params, opt_state, loss)``."""

    def step(params, opt_state, images, labels, key):
        def loss_fn(p):
            logits, _ = module.apply({"params": p}, random_shift(key, images, shift))
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def train_classifier(settings: ClassifierTraining, dataset: data.ImageDataset) -> mc.Classifier:
    """A classifier trained for ``settings.steps`` on ``dataset``."""
    init_key, step_key = jax.random.split(jax.random.key(settings.seed))
    classifier = mc.init(
        init_key,
        mc.ClassifierConfig(conv_widths=(settings.width, 2 * settings.width), feature_dim=settings.feature_dim),
    )
    tx = optax.adam(optax.cosine_decay_schedule(settings.lr, settings.steps))
    step = make_classifier_step(classifier.module, tx, settings.shift)
    params, opt_state = classifier.params, tx.init(classifier.params)
    batcher = data.Batcher(dataset, settings.batch_size, settings.seed)
    bar = tqdm(range(settings.steps), desc="training the MNIST feature network", disable=jax.process_index() != 0)
    for i in bar:
        batch = batcher.batch(i)
        params, opt_state, _ = step(params, opt_state, batch["image"], batch["label"], jax.random.fold_in(step_key, i))
    return classifier.replace(params=params)


def accuracy(classifier: mc.Classifier, dataset: data.ImageDataset, batch_size: int = 500) -> float:
    """The share of ``dataset`` that ``classifier`` labels correctly."""
    predict = classifier.class_fn()
    predictions = np.concatenate(
        [np.asarray(predict(data.to_float(batch))) for batch in metrics.array_batches(dataset.images, batch_size)]
    )
    return float(np.mean(predictions == dataset.labels))


def classifier_for(folder: str | pathlib.Path, dataset: data.ImageDataset) -> mc.Classifier:
    """The classifier in ``folder``, trained there on ``dataset`` (all but its held-out tail) first if missing."""
    folder = pathlib.Path(folder)
    if mc.saved_config(folder) is None:
        settings = ClassifierTraining()
        train_set, _ = dataset.split(1.0 - settings.test_size / len(dataset))
        if jax.process_index() == 0:
            print(
                f"evaluation: training the MNIST feature network on {len(train_set)} digits for {settings.steps} "
                f"steps, once (saved in {folder})",
                flush=True,
            )
        mc.save_mnist_classifier(train_classifier(settings, train_set), folder)
    return mc.load_mnist_classifier(folder)


def find_classifier(folder: str, image_shape: tuple[int, ...] | None = None) -> mc.Classifier | None:
    """The classifier in ``folder``; None when ``folder`` is empty, holds none, or holds one for other images
    than ``image_shape``."""
    saved = mc.saved_config(folder) if folder else None
    if saved is None or (image_shape is not None and saved.shape != tuple(image_shape)):
        return None
    return mc.load_mnist_classifier(folder)
