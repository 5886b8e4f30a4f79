"""Feature networks for FID, KID, precision/recall and density/coverage, and the real features."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
from collections.abc import Callable
from typing import Any, Literal

import jax
import numpy as np
from tqdm import tqdm

from ganjax import data
from ganjax.evaluation import inception, metrics
from ganjax.evaluation import mnist_classifier as mc
from ganjax.evaluation.classifier_training import classifier_for
from ganjax.evaluation.settings import Evaluation
from ganjax.validate import refuse

PyTree = Any
CACHE_DIR = "runs/cache"
FID_WEIGHTS_ENV = "GANJAX_FID_WEIGHTS"
HOW_TO_GET_FID_WEIGHTS = (
    f"download pytorch-fid's weights ({inception.TORCH_WEIGHTS_URL}) and convert them once with "
    "python -m ganjax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth inception_fid.npz"
)


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


def fid_weights(settings: Evaluation) -> pathlib.Path | None:
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


def choose_network(settings: Evaluation, dataset: data.ImageDataset) -> Literal["mnist", "inception"] | None:
    """The feature network ``settings.feature_network`` asks for on ``dataset``'s images, built later; None: none fits.

    'auto' takes the MNIST classifier when ``classifier_dir`` holds one for these images or, for
    labelled 28x28x1 images, to train there; else InceptionV3 when there are weights.

    Raises:
      ValueError: naming the field, when the network asked for cannot run on these images.
      FileNotFoundError: if the weights file named is missing.
    """
    shape = dataset.images.shape[1:]
    weights = fid_weights(settings)
    saved = mc.saved_config(settings.classifier_dir)
    if saved is not None:
        mnist = saved.shape == shape
    else:
        mnist = bool(settings.classifier_dir) and shape == mc.ClassifierConfig().shape and dataset.labels is not None
    if settings.feature_network == "mnist" and not mnist:
        refuse(
            settings,
            "feature_network",
            f"'mnist' needs a classifier for {_shape(shape)} images in classifier_dir "
            f"({settings.classifier_dir!r}), or labelled 28x28x1 images to train one there",
        )
    if settings.feature_network == "inception" and weights is None:
        refuse(
            settings,
            "feature_network",
            f"'inception' needs --evaluation.fid-weights or ${FID_WEIGHTS_ENV}; {HOW_TO_GET_FID_WEIGHTS}",
        )
    if settings.feature_network == "mnist" or (settings.feature_network == "auto" and mnist):
        return "mnist"
    return None if weights is None else "inception"


def missing_metrics_line(settings: Evaluation, dataset: data.ImageDataset) -> str:
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
