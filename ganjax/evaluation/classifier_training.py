"""Trains the MNIST classifier behind MNIST FID: a player with one phase, on the one update and the one loop.

The classifier is the one player (``'classifier'``) of a
:class:`~ganjax.training.state.TrainState`; its one
:class:`~ganjax.training.phases.Phase` minimises the cross-entropy of its
logits on the batch's digits, each moved by a random shift drawn from the
step's key. :func:`~ganjax.training.phases.make_step` steps it and
:func:`~ganjax.training.loop.train_loop` runs it, as every GAN::

    state = classifier_state(settings)
    step = make_classifier_step(settings)
    state, metrics = step(state, batcher.batch(0))  # {'classifier_loss', 'classifier_grad_norm'}
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ganjax import data
from ganjax.evaluation import metrics
from ganjax.evaluation import mnist_classifier as mc
from ganjax.evaluation.settings import ClassifierTraining
from ganjax.training.loop import Context, Hook, train_loop
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput, make_step
from ganjax.training.state import Player, TrainState

PyTree = Any

CLASSIFIER = "classifier"
"""The classifier's player name (its phase has the same name)."""
DESC = "training the MNIST feature network"
"""The progress bar's label."""


def random_shift(key: jax.Array, images: jax.Array, shift: int) -> jax.Array:
    """Each image moved by an independent random offset in ``[-shift, shift]²`` (edges padded with -1)."""
    if shift == 0:
        return images
    padded = jnp.pad(images, ((0, 0), (shift, shift), (shift, shift), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (len(images), 2), 0, 2 * shift + 1)
    crop = lambda img, o: lax.dynamic_slice(img, (o[0], o[1], 0), images.shape[1:])
    return jax.vmap(crop)(padded, offsets)


def classifier_config(settings: ClassifierTraining) -> mc.ClassifierConfig:
    """The architecture ``settings`` trains: conv widths ``width, 2 * width`` and ``feature_dim`` features."""
    return mc.ClassifierConfig(conv_widths=(settings.width, 2 * settings.width), feature_dim=settings.feature_dim)


def classifier_phase(module: mc.MNISTClassifier, shift: int) -> Phase:
    """The classifier's one phase: the mean cross-entropy of ``module``'s logits on the batch's digits, each moved
    by :func:`random_shift` of up to ``shift`` pixels drawn from the step's key.

    Reads ``batch['image']`` (``(B, 28, 28, 1)`` in [-1, 1]) and ``batch['label']`` (``(B,)`` ints); reports
    ``classifier_loss`` (and the update reports ``classifier_grad_norm``).
    """

    def loss(params: Mapping[str, PyTree], inputs: PhaseInputs) -> tuple[jax.Array, PhaseOutput]:
        images = random_shift(inputs.key, inputs.batch["image"], shift)
        logits, _ = module.apply({"params": params[CLASSIFIER]}, images)
        value = optax.softmax_cross_entropy_with_integer_labels(logits, inputs.batch["label"]).mean()
        return value, PhaseOutput(metrics={f"{CLASSIFIER}_loss": value})

    return Phase(CLASSIFIER, (CLASSIFIER,), loss)


def classifier_state(settings: ClassifierTraining) -> TrainState:
    """The classifier at step 0: fresh params and Adam with a rate cosine-decayed from ``lr`` over ``steps``.

    ``jax.random.key(seed)`` splits into the init's key and the run's key (step ``t`` shifts with ``fold_in(key, t)``).
    """
    init_key, run_key = jax.random.split(jax.random.key(settings.seed))
    classifier = mc.init(init_key, classifier_config(settings))
    tx = optax.adam(optax.cosine_decay_schedule(settings.lr, settings.steps))
    player = Player.from_variables({"params": classifier.params}, classifier.module.apply, tx)
    return TrainState.create(run_key, {CLASSIFIER: player})


def make_classifier_step(
    settings: ClassifierTraining,
) -> Callable[[TrainState, Mapping[str, jax.Array]], tuple[TrainState, dict]]:
    """The jitted ``(state, batch) -> (state, metrics)`` of :func:`classifier_phase` (the state donated)."""
    module = mc.MNISTClassifier(classifier_config(settings))
    return jax.jit(make_step((classifier_phase(module, settings.shift),)), donate_argnums=0)


@dataclasses.dataclass
class LossInBar(Hook):
    """Shows the mean ``classifier_loss`` since its last run beside the progress bar, every ``every`` steps."""

    every: int = 100
    reads_metrics = True

    def __call__(self, context: Context) -> None:
        losses = [float(m[f"{CLASSIFIER}_loss"]) for m in context.window]
        if losses:
            context.postfix["loss"] = f"{np.mean(losses):.3g}"


def train_classifier(
    settings: ClassifierTraining,
    dataset: data.ImageDataset,
    hooks: Sequence[Hook] = (),
    desc: str = DESC,
) -> mc.Classifier:
    """A classifier trained for ``settings.steps`` on ``dataset``'s shuffled batches.

    Step ``t`` takes ``data.Batcher(dataset, batch_size, seed).batch(t)``; :func:`~ganjax.training.loop.train_loop`
    runs it, with its progress bar labelled ``desc`` (the recent loss beside it) and ``hooks``.
    """
    batcher = data.Batcher(dataset, settings.batch_size, settings.seed)
    state = train_loop(
        classifier_state(settings),
        make_classifier_step(settings),
        batcher.iterate,
        settings.steps,
        [LossInBar(), *hooks],
        desc=desc,
    )
    return mc.Classifier(state.players[CLASSIFIER].params, classifier_config(settings))


def accuracy(classifier: mc.Classifier, dataset: data.ImageDataset, batch_size: int = 500) -> float:
    """The share of ``dataset`` that ``classifier`` labels correctly."""
    predict = classifier.class_fn()
    predictions = np.concatenate(
        [np.asarray(predict(data.to_float(batch))) for batch in metrics.array_batches(dataset.images, batch_size)]
    )
    return float(np.mean(predictions == dataset.labels))


def classifier_for(folder: str | pathlib.Path, dataset: data.ImageDataset) -> mc.Classifier:
    """The classifier in ``folder`` (:func:`~ganjax.evaluation.mnist_classifier.load_mnist_classifier`); if it holds
    none, one trained there first on ``dataset`` (all but its held-out tail), the progress bar saying so."""
    folder = pathlib.Path(folder)
    if mc.saved_config(folder) is None:
        settings = ClassifierTraining()
        train_set, _ = dataset.split(1.0 - settings.test_size / len(dataset))
        desc = f"evaluation: {DESC} on {len(train_set)} digits for {settings.steps} steps, once (saved in {folder})"
        mc.save_mnist_classifier(train_classifier(settings, train_set, desc=desc), folder)
    return mc.load_mnist_classifier(folder)
