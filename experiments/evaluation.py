"""MNIST evaluation of a generator: MNIST FID, KID, precision/recall, classes, mode collapse, class accuracy.

Features and class predictions come from a small MNIST classifier
(:mod:`ganjax.evaluation.mnist_classifier`), trained here by :func:`train_classifier`
(``python -m experiments.train_mnist_classifier``, or on first use when
``classifier_dir`` holds none). Real features are cached on disk by dataset and
network. The first evaluation also reports the real-vs-real floor: the FID
between two disjoint sets of real digits of the evaluation's size, the best a
generator can hope for with this many samples.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from tqdm import tqdm

from experiments import config as configs
from experiments import runner
from ganjax import data
from ganjax.evaluation import metrics
from ganjax.evaluation import mnist_classifier as mc
from ganjax.training.gan import generate
from ganjax.training.state import TrainState

CACHE_DIR = "runs/cache"


# ----------------------------------------------------------------------------- the classifier


@dataclasses.dataclass(frozen=True)
class ClassifierTraining:
    """How the MNIST classifier is trained: Adam with a cosine-decayed rate and random shifts."""

    test_size: int = 2000
    """the last digits of the folder, held out."""
    width: int = 32
    """channels of the first conv; the second has twice as many."""
    feature_dim: int = 128
    """size of the features that MNIST FID compares."""
    steps: int = 1500
    """train steps."""
    batch_size: int = 128
    """digits per step."""
    lr: float = 2e-3
    """Adam's initial learning rate."""
    shift: int = 2
    """random shifts of up to this many pixels."""
    seed: int = 0
    """seeds the init, the batches and the shifts."""

    def __post_init__(self):
        for field in ("test_size", "width", "feature_dim", "steps", "batch_size"):
            if getattr(self, field) < 1:
                configs.refuse(self, field, f"must be at least 1, got {getattr(self, field)}")
        configs.at_least(self, "shift", 0)
        configs.at_least(self, "seed", 0)
        if not self.lr > 0:
            configs.refuse(self, "lr", f"must be positive, got {self.lr}")


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
    if not (folder / mc.CONFIG_FILE).is_file():
        settings = ClassifierTraining()
        train_set, _ = dataset.split(1.0 - settings.test_size / len(dataset))
        mc.save_mnist_classifier(train_classifier(settings, train_set), folder)
    return mc.load_mnist_classifier(folder)


def find_classifier(folder: str) -> mc.Classifier | None:
    """The classifier in ``folder``, or None when ``folder`` is empty or holds none."""
    if not folder or not (pathlib.Path(folder) / mc.CONFIG_FILE).is_file():
        return None
    return mc.load_mnist_classifier(folder)


# ----------------------------------------------------------------------------- sample quality


def mnist_evaluator(
    settings: configs.Evaluation,
    dataset: data.ImageDataset,
    sample: Callable[[TrainState, jax.Array, bool], jax.Array],
    batch_size: int,
    seed: int,
    ema: bool,
) -> Callable[[TrainState, int], dict]:
    """An ``evaluate(state, step)`` for :class:`experiments.runner.Evaluate`.

    Args:
      settings: the samples per evaluation and the classifier's folder.
      dataset: the real images (all of them are the reference set).
      sample: ``(state, key, use_ema) -> images`` for a batch of ``batch_size``.
      batch_size: the sample batch.
      seed: picks the real subset and the evaluation's latents.
      ema: also evaluate the moving average of G.

    Returns:
      A function giving ``fid``, ``kid``, ``kid_std``, ``precision``, ``recall``,
      ``density``, ``coverage``, ``class_coverage``, ``class_kl``,
      ``duplicate_share`` and ``pairwise_distance_ratio`` of G (and the same
      prefixed ``ema_`` for the EMA of G with ``ema``), plus ``fid_floor`` the first time.
    """
    classifier = classifier_for(settings.classifier_dir, dataset)
    feature_fn, class_fn = classifier.feature_fn(), classifier.class_fn()
    network = f"mnist_classifier:{pathlib.Path(settings.classifier_dir).resolve().name}"
    real = metrics.cached_features(
        CACHE_DIR,
        dataset.name,
        network,
        lambda: metrics.extract_features(feature_fn, metrics.array_batches(data.to_float(dataset.images), 500)),
    )
    # G is compared with a fixed random subset of eval_samples reals; the floor is the FID between that
    # subset and as many other reals, the best a generator can score at this sample size.
    n = min(settings.eval_samples, len(real) // 2)
    order = np.random.default_rng(seed).permutation(len(real))
    real, other = real[order[:n]], real[order[n : 2 * n]]
    floor = {"fid_floor": metrics.fid_from_features(real, other)}
    reference_pixels = data.to_float(dataset.images[order[:1000]])
    key = jax.random.key(seed + 1)
    kid_size = min(1000, n)

    def evaluate_one(state: TrainState, use_ema: bool) -> dict[str, float]:
        batches = list(
            metrics.generated_batches(lambda k, n: sample(state, k, use_ema), key, settings.eval_samples, batch_size)
        )
        result = metrics.evaluate_images(
            iter(batches), feature_fn, real, key, class_fn=class_fn, kid_subset_size=kid_size
        )
        return {**result, **metrics.sample_diversity(np.concatenate(batches)[:1000], reference_pixels)}

    def evaluate(state: TrainState, step: int) -> dict[str, float]:
        result = {**floor, **evaluate_one(state, False)}
        floor.clear()
        if ema:
            result.update({f"ema_{k}": v for k, v in evaluate_one(state, True).items()})
        return result

    return evaluate


# ----------------------------------------------------------------------------- class accuracy


def per_class_accuracy(predictions, labels, num_classes: int) -> list[float]:
    """Per class ``c``: the share of the examples of label ``c`` that are predicted ``c``."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return [float(np.mean(predictions[labels == c] == c)) for c in range(num_classes)]


def class_labels(num_classes: int, per_class: int) -> jax.Array:
    """``[0]*per_class + [1]*per_class + ...``: row ``c`` of a grid with ``per_class`` columns is class ``c``."""
    return jnp.repeat(jnp.arange(num_classes), per_class)


_generate = jax.jit(generate, static_argnames=("train", "use_ema"))  # one compiled sampler for every check


def sample_accuracy(
    state: TrainState,
    classify,
    key: jax.Array,
    num_classes: int,
    per_class: int,
    latent_dim: int,
    use_ema: bool = False,
    batch_size: int = 500,
) -> list[float]:
    """The classifier's per-class accuracy on ``per_class`` samples of each class from G (running statistics)."""
    labels = class_labels(num_classes, per_class)
    z = jax.random.normal(key, (len(labels), latent_dim))
    predictions = [
        np.asarray(classify(_generate(state, z[i : i + batch_size], labels[i : i + batch_size], use_ema=use_ema)))
        for i in range(0, len(labels), batch_size)
    ]
    return per_class_accuracy(np.concatenate(predictions), labels, num_classes)


def quality_hooks(config) -> Callable[[data.ImageDataset], list]:
    """``dataset -> [Evaluate hook]`` of :func:`mnist_evaluator` for an unconditional GAN experiment's config.

    None when ``config.evaluation.eval_every`` is 0 or the run spans several processes (evaluation runs in
    single-process runs only). G's samples use its dropout (if any) with each batch's key.
    """
    settings, batch_size = config.evaluation, config.schedule.batch_size

    def hooks(dataset: data.ImageDataset) -> list:
        if not settings.eval_every or jax.process_count() > 1:
            return []
        draw = lambda state, key, use_ema: generate(
            state, config.latent.sample(key, batch_size), use_ema=use_ema, rngs={"dropout": key}
        )
        evaluate = mnist_evaluator(
            settings, dataset, jax.jit(draw, static_argnums=2), batch_size, config.run.seed, config.state.ema_decay > 0
        )
        return [runner.Evaluate(settings.eval_every, evaluate)]

    return hooks


def class_accuracy_hooks(config, key: jax.Array) -> Callable[[data.ImageDataset], list]:
    """``dataset -> [Evaluate hook]`` logging ``class_accuracy_min`` and ``_mean`` of a conditional GAN's config.

    Each check draws ``eval_per_class`` samples per class from ``fold_in(key, step)``; none without a classifier.
    """
    settings = config.class_accuracy

    def hooks(dataset: data.ImageDataset) -> list:
        classifier = find_classifier(settings.classifier_dir)
        if classifier is None or not settings.eval_every:
            return []
        classify = classifier.class_fn()

        def evaluate(state: TrainState, step: int) -> dict[str, float]:
            shares = sample_accuracy(
                state,
                classify,
                jax.random.fold_in(key, step),
                config.conditioning.num_classes,
                settings.eval_per_class,
                config.latent.dim,
                config.state.ema_decay > 0,
            )
            return {"class_accuracy_min": min(shares), "class_accuracy_mean": float(np.mean(shares))}

        return [runner.Evaluate(settings.eval_every, evaluate)]

    return hooks


def write_class_accuracy(config, state: TrainState, key: jax.Array) -> list[float] | None:
    """The per-class accuracy of ``final_eval_per_class`` samples per class, also written to
    ``{workdir}/class_accuracy.json``; None without a classifier."""
    settings = config.class_accuracy
    classifier = find_classifier(settings.classifier_dir)
    if classifier is None:
        return None
    shares = sample_accuracy(
        state,
        classifier.class_fn(),
        key,
        config.conditioning.num_classes,
        settings.final_eval_per_class,
        config.latent.dim,
        config.state.ema_decay > 0,
    )
    if jax.process_index() == 0:
        result = {
            "per_class": shares,
            "min": min(shares),
            "mean": float(np.mean(shares)),
            "samples_per_class": settings.final_eval_per_class,
            "classifier_dir": settings.classifier_dir,
        }
        (pathlib.Path(config.run.workdir) / "class_accuracy.json").write_text(json.dumps(result, indent=1))
    return shares


def class_grid_inputs(config, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """G's inputs for a sample grid whose row ``c`` is class ``c``: one fixed Gaussian z per column."""
    labels = class_labels(config.conditioning.num_classes, config.samples_per_class)
    return jax.random.normal(key, (len(labels), config.latent.dim)), labels
