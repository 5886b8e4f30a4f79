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
hope for with this many samples."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import data
from ganjax.evaluation import metrics
from ganjax.evaluation import mnist_classifier as mc
from ganjax.evaluation.features import (
    FeatureNetwork,
    choose_network,
    fid_weights,
    inception_network,
    missing_metrics_line,
    mnist_network,
    real_features,
    reference_images,
)
from ganjax.training.gan import ema_stats, generate
from ganjax.training.loop import Evaluate
from ganjax.training.state import TrainState

PyTree = Any


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
    """An ``evaluate(state, step)`` for :class:`ganjax.training.loop.Evaluate`.

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


def scheduled(every: int, build: Callable[[], Callable[[TrainState, int], dict]], ahead: bool = False) -> Evaluate:
    """An Evaluate hook at the multiples of ``every`` and at the run's last step, whose evaluator ``build()``
    makes at its first use (not before training).

    With ``ahead``, ``build()`` starts now on a background thread and the first evaluation waits for
    it (and raises its error, if it failed): a feature network then trains while G and D do.
    """
    build = in_background(build) if ahead else functools.cache(build)
    return Evaluate(every, lambda state, step: build()(state, step))


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
) -> list[Evaluate]:
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
        ahead = trains_classifier and usable_cores() > 1
        return [scheduled(settings.eval_every, lambda: build_evaluator(config, dataset, network), ahead)]

    return hooks
