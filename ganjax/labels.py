"""D's targets: hard, one-sided smoothed, soft noisy and occasionally flipped labels.

Every sampler has the signature ``(key, shape) -> DLabels`` (``shape`` is the
shape of D's logits on one batch) and returns the targets of the real and the
fake batch, ready for a labelled D loss (``LOSSES[name].uses_labels``):
``loss.d(real_logits, fake_logits, *labels)``. G's loss never uses them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
Shape = tuple[int, ...]


class DLabels(NamedTuple):
    """D's targets for a real batch and a fake batch, each of the logits' shape."""

    real: Array
    fake: Array


def hard_labels(key: Array, shape: Shape) -> DLabels:
    """Real = 1, fake = 0: the plain GAN targets (``d_labels='none'``)."""
    del key
    return DLabels(jnp.ones(shape), jnp.zeros(shape))


def one_sided_smoothing(key: Array, shape: Shape, real: float | Array = 0.9) -> DLabels:
    """Real = 0.9 (or ``real``), fake = 0: smooth only the real targets.

    Smoothing the fake side too would reward G for samples where the data
    density is zero, hence one-sided.

    References:
      Salimans et al. 2016, Improved Techniques for Training GANs, section 3.4.
    """
    del key
    return DLabels(jnp.full(shape, real), jnp.zeros(shape))


def noisy_labels(
    key: Array, shape: Shape, real_range: tuple[float, float] = (0.7, 1.2), fake_range: tuple[float, float] = (0.0, 0.3)
) -> DLabels:
    """Soft noisy targets: real ~ U[0.7, 1.2], fake ~ U[0.0, 0.3], drawn per example.

    References:
      ganhacks #6 "Use Soft and Noisy Labels" (label smoothing).
    """
    real_key, fake_key = jax.random.split(key)
    return DLabels(
        jax.random.uniform(real_key, shape, minval=real_range[0], maxval=real_range[1]),
        jax.random.uniform(fake_key, shape, minval=fake_range[0], maxval=fake_range[1]),
    )


def flip_labels(key: Array, labels: DLabels, prob: float) -> DLabels:
    """Occasionally flipped targets: each example's target takes the other side's with probability ``prob``.

    A flipped real example gets the fake target drawn at its position, and
    vice versa; real and fake examples flip independently.

    References:
      ganhacks #6 "Use Soft and Noisy Labels": "occasionally flip the labels when
      training the discriminator".
    """
    real_key, fake_key = jax.random.split(key)
    flip_real = jax.random.bernoulli(real_key, prob, labels.real.shape)
    flip_fake = jax.random.bernoulli(fake_key, prob, labels.fake.shape)
    return DLabels(jnp.where(flip_real, labels.fake, labels.real), jnp.where(flip_fake, labels.real, labels.fake))


LABELS: dict[str, Callable[[Array, Shape], DLabels]] = {
    "none": hard_labels,
    "one_sided": one_sided_smoothing,
    "noisy": noisy_labels,
}


def d_labels(
    key: Array, shape: Shape, scheme: str = "none", flip_prob: float | Array = 0.0, real_label: float | Array = 0.9
) -> DLabels:
    """D's targets from the config: the ``scheme`` of :data:`LABELS`, then flips with ``flip_prob`` (if > 0).

    ``real_label`` is the real target of ``'one_sided'`` smoothing. Either value
    may be a traced array (a population member's own value); a traced
    ``flip_prob`` always draws its flips.

    Example:
      >>> from ganjax import losses
      >>> real_logits, fake_logits = jnp.full((64,), 2.0), jnp.full((64,), -2.0)
      >>> real_y, fake_y = d_labels(jax.random.key(0), real_logits.shape, "noisy", flip_prob=0.05)
      >>> d_loss = losses.minimax_d_loss(real_logits, fake_logits, real_y, fake_y)
      >>> bool(0.0 <= fake_y.min()) and real_y.shape
      (64,)
    """
    scheme_key, flip_key = jax.random.split(key)
    labels = (
        one_sided_smoothing(scheme_key, shape, real_label)
        if scheme == "one_sided"
        else LABELS[scheme](scheme_key, shape)
    )
    flips = isinstance(flip_prob, jax.core.Tracer) or flip_prob > 0
    return flip_labels(flip_key, labels, flip_prob) if flips else labels
