"""Evaluation of a generator: FID, KID, precision/recall, density/coverage, classes, mode collapse, class accuracy.

The sample-set metrics compare features of G's samples and of real images from a
feature network (:class:`FeatureNetwork`), chosen by ``--evaluation.feature-network``:

* the MNIST classifier (:mod:`ganjax.evaluation.mnist_classifier`; "MNIST FID", plus
  class coverage and KL), the default for 28x28x1 images. :func:`train_classifier`
  trains it (``python -m experiments.train_mnist_classifier``, or beside a run that
  will evaluate when ``classifier_dir`` holds none and the digits are labelled);
* InceptionV3's pool3 features (FID proper, :mod:`ganjax.evaluation.inception`), the
  default for any other images, with pytorch-fid's weights converted once by
  ``python -m ganjax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth inception_fid.npz``
  and named by ``--evaluation.fid-weights`` or ``$GANJAX_FID_WEIGHTS``.

Without either, a run says so in one line before training and logs only the
mode-collapse signals (pixel space). The network, the real features and G's sampler
are built at the first evaluation step, not before training; only an MNIST classifier
still to be trained starts training with the run, beside it (:func:`quality_hooks`).
Real features are computed once and cached in ``runs/cache`` by dataset, resolution,
images and network. The first evaluation also reports the real-vs-real floor: the FID between
two disjoint sets of real images of the evaluation's size, the best a generator can
hope for with this many samples.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from tqdm import tqdm

from experiments import config as configs
from experiments import runner
from ganjax import data
from ganjax.evaluation import inception, metrics
from ganjax.evaluation import mnist_classifier as mc
from ganjax.training.gan import ema_stats, generate
from ganjax.training.state import TrainState

PyTree = Any
CACHE_DIR = "runs/cache"
FID_WEIGHTS_ENV = "GANJAX_FID_WEIGHTS"
HOW_TO_GET_FID_WEIGHTS = (
    f"download pytorch-fid's weights ({inception.TORCH_WEIGHTS_URL}) and convert them once with "
    "python -m ganjax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth inception_fid.npz"
)


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
        configs.at_least(self, "shift", 0, 13)  # less than half the 28-pixel side
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


# ----------------------------------------------------------------------------- feature networks


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
    """The network whose features FID, KID, precision/recall and density/coverage compare."""

    name: str
    """identifies the network and its weights in the feature cache."""
    features: Callable[[jax.Array], jax.Array]
    """images in [-1, 1] -> features ``(N, D)``, jitted."""
    class_probabilities: Callable[[jax.Array], jax.Array] | None = None
    """images -> class probabilities, for class coverage and KL and the readable share (the MNIST classifier's)."""
    batch_size: int = 500
    """real images per forward pass."""


def mnist_network(folder: str | pathlib.Path, dataset: data.ImageDataset) -> FeatureNetwork:
    """The MNIST classifier in ``folder`` (trained on ``dataset`` first if missing), named by its params."""
    classifier = classifier_for(folder, dataset)
    name = f"mnist_classifier-{metrics.fingerprint(*jax.tree.leaves(classifier.params))}"
    return FeatureNetwork(name, classifier.feature_fn(), classifier.probability_fn())


def inception_network(weights: str | pathlib.Path, resize: int | None = inception.INPUT_SIZE) -> FeatureNetwork:
    """InceptionV3's pool3 features (Heusel et al. 2017) with the weights in ``weights``, named by their contents."""
    with open(weights, "rb") as f:
        digest = hashlib.file_digest(f, "blake2b").hexdigest()[:16]
    return FeatureNetwork(f"inception_v3-{resize}-{digest}", inception.load_inception(weights, resize), batch_size=100)


def fid_weights(settings: configs.Evaluation) -> pathlib.Path | None:
    """The InceptionV3 weights file: ``settings.fid_weights``, else ``$GANJAX_FID_WEIGHTS``; None if neither is set.

    Raises:
      FileNotFoundError: if the file named is missing (before training rather than at the first evaluation).
    """
    path = settings.fid_weights or os.environ.get(FID_WEIGHTS_ENV)
    if not path:
        return None
    if not pathlib.Path(path).is_file():
        source = "--evaluation.fid-weights" if settings.fid_weights else f"${FID_WEIGHTS_ENV}"
        raise FileNotFoundError(f"{path} ({source}): no such InceptionV3 weights file; {HOW_TO_GET_FID_WEIGHTS}")
    return pathlib.Path(path)


def choose_network(settings: configs.Evaluation, dataset: data.ImageDataset) -> Literal["mnist", "inception"] | None:
    """The feature network ``settings.feature_network`` asks for on ``dataset``'s images, built later; None: none fits.

    'auto' takes the MNIST classifier when ``classifier_dir`` holds one for these images or, for
    labelled 28x28x1 images, to train there; else InceptionV3 when there are weights.

    Raises:
      ValueError: naming the field, when the network asked for cannot run on these images.
      FileNotFoundError: if the weights file named is missing.
    """
    shape = dataset.images.shape[1:]
    weights = fid_weights(settings)
    saved = mc.saved_config(settings.classifier_dir) if settings.classifier_dir else None
    if saved is not None:
        mnist = saved.shape == shape
    else:
        mnist = bool(settings.classifier_dir) and shape == mc.ClassifierConfig().shape and dataset.labels is not None
    if settings.feature_network == "mnist" and not mnist:
        configs.refuse(
            settings,
            "feature_network",
            f"'mnist' needs a classifier for {_shape(shape)} images in classifier_dir "
            f"({settings.classifier_dir!r}), or labelled 28x28x1 images to train one there",
        )
    if settings.feature_network == "inception" and weights is None:
        configs.refuse(
            settings,
            "feature_network",
            f"'inception' needs --evaluation.fid-weights or ${FID_WEIGHTS_ENV}; {HOW_TO_GET_FID_WEIGHTS}",
        )
    if settings.feature_network == "mnist" or (settings.feature_network == "auto" and mnist):
        return "mnist"
    return None if weights is None else "inception"


def missing_metrics_line(settings: configs.Evaluation, dataset: data.ImageDataset) -> str:
    """The one line a run without a feature network prints: which metrics it cannot compute and how to get them."""
    shape = dataset.images.shape[1:]
    or_classifier = (
        f" (or a trained MNIST classifier in --evaluation.classifier-dir, now {settings.classifier_dir!r})"
        if shape == mc.ClassifierConfig().shape
        else ""
    )
    return (
        f"evaluation: no fid, kid, precision, recall, density or coverage of {_shape(shape)} images without "
        f"InceptionV3 FID weights{or_classifier}, only duplicate_share and pairwise_distance_ratio; "
        f"to get them, {HOW_TO_GET_FID_WEIGHTS} and pass --evaluation.fid-weights inception_fid.npz "
        f"(or set {FID_WEIGHTS_ENV}=inception_fid.npz)"
    )


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


# ----------------------------------------------------------------------------- sample quality


def real_features(network: FeatureNetwork, dataset: data.ImageDataset, count: int) -> np.ndarray:
    """The features of ``count`` real images, a random subset that is the same in every run.

    Computed once, with a progress bar, and cached by dataset, resolution, images and network
    (:func:`ganjax.evaluation.metrics.cached_features`).
    """
    images = dataset.images[np.sort(np.random.default_rng(0).permutation(len(dataset))[:count])]

    def compute() -> np.ndarray:
        batches = tqdm(
            metrics.array_batches(images, network.batch_size),
            total=-(-len(images) // network.batch_size),
            desc=f"evaluation: {network.name.split('-')[0]} features of {len(images)} real images (once, then cached)",
            disable=jax.process_index() != 0,
        )
        return metrics.extract_features(network.features, (data.to_float(batch) for batch in batches))

    return metrics.cached_features(CACHE_DIR, dataset.name, images, network.name, compute)


def reference_images(dataset: data.ImageDataset, rng: np.random.Generator) -> np.ndarray:
    """1,000 of ``dataset``'s images (a permutation drawn from ``rng``) in [-1, 1]: what the mode-collapse signals
    (:func:`ganjax.evaluation.metrics.sample_diversity`) compare G's samples with."""
    return data.to_float(dataset.images[rng.permutation(len(dataset))[:1000]])


def evaluator(
    eval_samples: int,
    dataset: data.ImageDataset,
    network: FeatureNetwork | None,
    sample: Callable[[TrainState, jax.Array, PyTree | None], jax.Array],
    batch_size: int,
    seed: int,
    ema_stats: Callable[[TrainState, jax.Array], PyTree] | None,
    real_view: Callable[[TrainState, np.ndarray], np.ndarray] | None = None,
    extra: Callable[[np.ndarray], dict[str, float]] | None = None,
) -> Callable[[TrainState, int], dict]:
    """An ``evaluate(state, step)`` for :class:`experiments.runner.Evaluate`.

    Args:
      eval_samples: G's samples per evaluation; G is compared with as many real images.
      dataset: the real images.
      network: the feature network; None: the mode-collapse signals only.
      sample: ``(state, key, ema_stats) -> images`` for a batch of ``batch_size``: G's with ``ema_stats``
        None, else the moving average of G's with these BatchNorm statistics.
      batch_size: the sample batch.
      seed: picks the real images compared and the evaluation's latents.
      ema_stats: ``(state, key) -> `` the moving average's BatchNorm statistics
        (:func:`ganjax.training.gan.ema_stats`), computed once per evaluation from its key; None: the
        moving average is not evaluated.
      real_view: ``(state, reals) -> `` the real images (in [-1, 1]) that G's samples at ``state`` are compared
        with in pixel space (a progressive G's: the reals at its current stage); None: the reals as they are.
      extra: ``images -> metrics`` of the same samples (Stacked MNIST's modes), for G and its moving average alike.

    Returns:
      A function giving ``duplicate_share`` and ``pairwise_distance_ratio`` and, with a
      network, ``fid``, ``kid``, ``kid_std``, ``precision``, ``recall``, ``density``,
      ``coverage`` (and ``class_coverage``, ``class_kl`` and ``readable_share``, the share read with
      confidence at least 0.9, with the classifier's classes)
      of G (and the same prefixed ``ema_`` for the EMA of G with ``ema_stats``), plus ``fid_floor`` the first time.
    """
    rng = np.random.default_rng(seed)
    reference_pixels = reference_images(dataset, rng)
    key = jax.random.key(seed + 1)
    floor, real = {}, None
    if network is not None:
        # G is compared with eval_samples reals; the floor is the FID between them and as many other reals,
        # the best a generator can score at this sample size.
        features = real_features(network, dataset, min(len(dataset), 2 * eval_samples))
        n = min(eval_samples, len(features) // 2)
        order = rng.permutation(len(features))
        real, other = features[order[:n]], features[order[n : 2 * n]]
        floor["fid_floor"] = metrics.fid_from_features(real, other)

    def evaluate_one(state: TrainState, stats: PyTree | None) -> dict[str, float]:
        batches = list(metrics.generated_batches(lambda k, n: sample(state, k, stats), key, eval_samples, batch_size))
        result = {}
        if network is not None:
            result = metrics.evaluate_images(
                iter(batches),
                network.features,
                real,
                key,
                class_fn=network.class_probabilities,
                kid_subset_size=min(1000, len(real)),
            )
        reference = reference_pixels if real_view is None else real_view(state, reference_pixels)
        images = np.concatenate(batches)
        result.update(metrics.sample_diversity(images[:1000], reference))
        return {**result, **(extra(images) if extra is not None else {})}

    def evaluate(state: TrainState, step: int) -> dict[str, float]:
        result = {**floor, **evaluate_one(state, None)}
        floor.clear()
        if ema_stats is not None:
            result.update({f"ema_{k}": v for k, v in evaluate_one(state, ema_stats(state, key)).items()})
        return result

    return evaluate


def build_evaluator(
    config, dataset: data.ImageDataset, network: Literal["mnist", "inception"] | None
) -> Callable[[TrainState, int], dict]:
    """The :func:`evaluator` of an unconditional GAN experiment's config with ``network`` (:func:`choose_network`).

    G's samples use its dropout (if any) with each batch's key.
    """
    settings, batch_size = config.evaluation, config.schedule.batch_size
    if network == "mnist":
        built = mnist_network(settings.classifier_dir, dataset)
    elif network == "inception":
        built = inception_network(fid_weights(settings))
    else:
        built = None
    sample, stats = samplers(config, batch_size, config.conditioning.g_classes)
    return evaluator(settings.eval_samples, dataset, built, sample, batch_size, config.run.seed, stats)


def samplers(
    config, batch_size: int, num_classes: int = 0, view: Callable[[jax.Array], jax.Array] | None = None
) -> tuple[Callable, Callable | None]:
    """An image GAN experiment's jitted ``sample(state, key, ema_stats)`` of ``batch_size`` images and
    ``ema_stats(state, key)`` (None when the state keeps no moving average), for :func:`evaluator`.

    ``sample`` draws z of ``config.latent`` and G's dropout (if any) from ``key`` and, for a conditional G of
    ``num_classes`` classes, labels that go round every class from an offset drawn from ``key`` (so each batch
    spreads over the classes and the evaluation's batches over all of them); ``view`` maps G's output to the
    images compared (default: as it is). With ``ema_stats`` None it samples G, else the moving average of G
    with these BatchNorm statistics, which ``ema_stats`` recomputes for it over batches of the run's batch size
    (:func:`ganjax.training.gan.ema_stats`).
    """

    def draw(state, key, stats):
        z_key, labels = key, None
        if num_classes:
            z_key, label_key = jax.random.split(key)
            labels = (jnp.arange(batch_size) + jax.random.randint(label_key, (), 0, num_classes)) % num_classes
        images = generate(
            state,
            config.latent.sample(z_key, batch_size),
            labels,
            use_ema=stats is not None,
            rngs={"dropout": key},
            ema_stats=stats,
        )
        return images if view is None else view(images)

    stats = lambda state, key: ema_stats(state, key, config.latent.sample, config.schedule.batch_size, num_classes)
    return jax.jit(draw), jax.jit(stats) if config.state.keeps_ema else None


def scheduled(
    every: int, build: Callable[[], Callable[[TrainState, int], dict]], ahead: bool = False
) -> runner.Evaluate:
    """An Evaluate hook at the multiples of ``every`` only (not at the run's end) whose evaluator
    ``build()`` makes at its first use, so a run that ends before it never builds it.

    With ``ahead``, ``build()`` starts now on a background thread and the first evaluation waits for
    it (and raises its error, if it failed): a feature network then trains while G and D do.
    """
    build = in_background(build) if ahead else functools.cache(build)
    hook = runner.Evaluate(every, lambda state, step: build()(state, step))
    hook.at_end = False
    return hook


def in_background(fn: Callable[[], Any]) -> Callable[[], Any]:
    """Starts ``fn()`` on a daemon thread now; the returned call waits for its value or raises its error.

    The thread is a daemon so that an interrupted run exits without waiting for it.
    """
    future = concurrent.futures.Future()

    def run():
        try:
            future.set_result(fn())
        except BaseException as error:  # handed to the caller, which raises it
            future.set_exception(error)

    threading.Thread(target=run, name="ganjax background build", daemon=True).start()
    return future.result


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


DIVERSITY_SAMPLES = 1000
"""The most samples of G an evaluation of the mode-collapse signals alone compares (as :func:`evaluator` does)."""
CLASS_SAMPLE_BATCH = 500
"""Images per call of G and of the classifier in the class evaluations."""


def diversity_hooks(
    every: int,
    samples: int,
    dataset: data.ImageDataset,
    sample: Callable[[TrainState, jax.Array, PyTree | None], jax.Array],
    batch_size: int,
    seed: int,
    ema_stats: Callable[[TrainState, jax.Array], PyTree] | None = None,
    real_view: Callable[[TrainState, np.ndarray], np.ndarray] | None = None,
    prefix: str = "",
) -> list[runner.Evaluate]:
    """``[Evaluate hook]`` of the mode-collapse signals alone: :func:`evaluator` without a feature network.

    At the multiples of ``every`` (:func:`scheduled`; built at the first), logs ``{prefix}duplicate_share`` and
    ``{prefix}pairwise_distance_ratio`` of ``min(samples, DIVERSITY_SAMPLES)`` of ``sample``'s images against up
    to 1,000 of ``dataset``'s (``real_view`` of them), and ``{prefix}ema_...`` of the moving average with
    ``ema_stats``; the monitor's ``mode_collapse`` check reads them. No hook when ``every`` is 0 or the run
    spans several processes (evaluation runs in single-process runs only).
    """
    if not every or jax.process_count() > 1:
        return []

    def build() -> Callable[[TrainState, int], dict]:
        n = min(samples, DIVERSITY_SAMPLES)
        evaluate = evaluator(n, dataset, None, sample, batch_size, seed, ema_stats, real_view)
        return lambda state, step: {f"{prefix}{k}": v for k, v in evaluate(state, step).items()}

    return [scheduled(every, build)]


def generator_diversity(
    config,
    every: int,
    samples: int,
    num_classes: int = 0,
    view: Callable[[jax.Array], jax.Array] | None = None,
    moving_average: bool = True,
) -> Callable[[data.ImageDataset], list]:
    """``dataset -> [Evaluate hook]`` of :func:`diversity_hooks` for an image GAN experiment's G (and its moving
    average, when kept and ``moving_average``) sampled by :func:`samplers` (``num_classes`` and ``view`` as
    there) at the run's batch size, against the dataset's images."""

    def hooks(dataset: data.ImageDataset) -> list:
        sample, stats = samplers(config, config.schedule.batch_size, num_classes, view)
        stats = stats if moving_average else None
        return diversity_hooks(every, samples, dataset, sample, config.schedule.batch_size, config.run.seed, stats)

    return hooks


def quality_hooks(config) -> Callable[[data.ImageDataset], list]:
    """``dataset -> [Evaluate hook]`` of :func:`build_evaluator` for an unconditional GAN experiment's config.

    Before training it only picks the feature network (:func:`choose_network`: a bad choice is an
    error now, and a run without one says in one line what it cannot compute); everything else is
    built at the first evaluation (:func:`scheduled`), except that an MNIST classifier still to be
    trained, when the run reaches an evaluation and the process may use more than one core, trains
    from the start on a background thread: XLA:CPU runs these small models' steps on about one core,
    so beside the GAN the classifier costs the run less wall time than before it (on one core the
    two would only slow each other). None when ``config.evaluation.eval_every`` is 0 or the run
    spans several processes (evaluation runs in single-process runs only).
    """
    settings = config.evaluation

    def hooks(dataset: data.ImageDataset) -> list:
        if not settings.eval_every or jax.process_count() > 1:
            return []
        network = choose_network(settings, dataset)
        if network is None:
            print(f"warning: {missing_metrics_line(settings, dataset)}", file=sys.stderr, flush=True)
        trains_classifier = network == "mnist" and mc.saved_config(settings.classifier_dir) is None
        ahead = trains_classifier and config.schedule.steps >= settings.eval_every and usable_cores() > 1
        return [scheduled(settings.eval_every, lambda: build_evaluator(config, dataset, network), ahead)]

    return hooks


# ----------------------------------------------------------------------------- class accuracy


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
    classifier = find_classifier(settings.classifier_dir, config.data.shape)
    if classifier is None:
        return None
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
