"""Stacked MNIST: 1,000 modes from three MNIST digits stacked as the channels of one image.

The mode-collapse benchmark of Metz et al. 2017 ("Unrolled Generative Adversarial
Networks"), Srivastava et al. 2017 ("VEEGAN") and Lin et al. 2018 ("PacGAN"). Each
28x28x3 image holds three digits drawn independently and uniformly at random, one per
channel, so its mode is the 3-digit number ``100*d0 + 10*d1 + d2`` and the data has
1,000 equally likely modes. The protocol: draw 26,000 samples from G, label each
channel with a pretrained MNIST classifier, and report the number of distinct modes
seen (at most 1,000) and KL(p_samples || uniform), the KL divergence of the empirical
mode distribution of the samples to the uniform one over the 1,000 modes (the
direction of PacGAN's tables; 0 for a perfectly balanced G, log(1000) ~ 6.91 for one
mode).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ganjax import data
from ganjax.evaluation import metrics

NUM_MODES = 1000
EVAL_SAMPLES = 26_000
"""Samples per evaluation in the papers' protocol."""


def stacked_dataset(digits: data.ImageDataset, size: int, seed: int) -> data.ImageDataset:
    """``size`` 28x28x3 images whose channels are three digits drawn uniformly and independently from ``digits``.

    Args:
      digits: labelled 28x28x1 digits (e.g. ``data.load(str(data.PACKAGED_MNIST))``).
      size: images to build.
      seed: seeds the NumPy generator that draws the digits: the same seed gives the same dataset.

    Returns:
      The images (uint8) with labels ``100*d0 + 10*d1 + d2``, the digits of channels 0, 1, 2.

    Raises:
      DataError: when ``digits`` are not labelled 28x28x1 images or ``size`` is not positive.
    """
    if digits.labels is None or digits.images.shape[1:] != (28, 28, 1):
        raise data.DataError(
            f"{digits.name}: Stacked MNIST needs labelled 28x28x1 digits, got "
            f"{'unlabelled ' if digits.labels is None else ''}{digits.images.shape[1:]} images"
        )
    if size < 1:
        raise data.DataError(f"Stacked MNIST: size must be at least 1, got {size}")
    picks = np.random.default_rng(seed).integers(0, len(digits), (size, 3))
    images = np.concatenate([digits.images[picks[:, c]] for c in range(3)], axis=-1)
    labels = np.asarray(digits.labels, np.int64)[picks]
    return data.ImageDataset(
        images, (labels @ np.array([100, 10, 1])).astype(np.int32), f"stacked_mnist({digits.name}, {size}, {seed})"
    )


def mode_metrics(channel_predictions) -> dict[str, float]:
    """The number of distinct modes and KL(p_samples || uniform over the 1,000 modes) of the samples.

    Args:
      channel_predictions: each sample's digit per channel, ints ``(N, 3)``, or the classifier's class
        probabilities (or logits) per channel ``(N, 3, 10)``, of which the argmax is taken.

    Returns:
      ``modes``: the 3-digit modes seen at least once; ``kl``: the KL divergence of the samples' empirical
      mode distribution to the uniform one (natural log), as in the tables of PacGAN (Lin et al. 2018),
      VEEGAN (Srivastava et al. 2017) and Unrolled GANs (Metz et al. 2017), which use 26,000 samples.
    """
    predictions = np.asarray(channel_predictions)
    if predictions.ndim == 3:
        predictions = predictions.argmax(-1)
    if predictions.ndim != 2 or predictions.shape[1] != 3:
        raise ValueError(f"expected (N, 3) digits or (N, 3, 10) class probabilities, got {predictions.shape}")
    modes = predictions.astype(np.int64) @ np.array([100, 10, 1])
    result = metrics.class_metrics(modes, NUM_MODES)
    return {"modes": result["class_coverage"], "kl": result["class_kl"]}


def classify_channels(classify: Callable, images, batch_size: int = 500) -> np.ndarray:
    """Each channel of 28x28x3 ``images`` (floats in [-1, 1], or uint8) labelled by a 28x28x1 digit classifier.

    Args:
      classify: ``(n, 28, 28, 1) images -> (n,) digits`` (or ``(n, 10)`` class probabilities), e.g.
        :meth:`ganjax.evaluation.mnist_classifier.Classifier.class_fn`.
      images: ``(N, 28, 28, 3)``.
      batch_size: images per call of ``classify``.

    Returns:
      ``(N, 3)`` digits (or ``(N, 3, 10)`` probabilities), ready for :func:`mode_metrics`.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = data.to_float(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) images, got {images.shape}")
    channels = [
        np.concatenate([np.asarray(classify(b)) for b in metrics.array_batches(images[..., c : c + 1], batch_size)])
        for c in range(3)
    ]
    return np.stack(channels, axis=1)
