"""DiffAugment (Zhao, Liu, Lin, Zhu and Han 2020): colour, translation and cutout, every op applied to
every example with its own random parameters."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ganjax.augment.ops import (
    Array,
    Augment,
    Shape,
    chain,
    check_images,
    gather,
    per_example,
    policy_names,
    uniform_ints,
)


def _brightness_draw(key: Array, shape: Shape) -> Array:
    return jax.random.uniform(key, shape[:1]) - 0.5


def _brightness_apply(b: Array, images: Array) -> Array:
    return images + per_example(b, images)


def _saturation_draw(key: Array, shape: Shape) -> Array:
    return jax.random.uniform(key, shape[:1]) * 2.0


def _saturation_apply(s: Array, images: Array) -> Array:
    mean = jnp.mean(images, axis=-1, keepdims=True)
    return (images - mean) * per_example(s, images) + mean


def _contrast_draw(key: Array, shape: Shape) -> Array:
    return jax.random.uniform(key, shape[:1]) + 0.5


def _contrast_apply(c: Array, images: Array) -> Array:
    mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) * per_example(c, images) + mean


#: Brightness: adds ``b ~ U[-0.5, 0.5)`` per example.
rand_brightness = Augment(_brightness_draw, _brightness_apply)
#: Saturation: scales each pixel's deviation from its channel mean by ``s ~ U[0, 2)``.
rand_saturation = Augment(_saturation_draw, _saturation_apply)
#: Contrast: scales the deviation from the image's mean by ``c ~ U[0.5, 1.5)``.
rand_contrast = Augment(_contrast_draw, _contrast_apply)


def _shift_range(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def rand_translation(ratio: float = 0.125) -> Augment:
    """Translation by whole pixels, up to ``ratio`` of the image in each direction, with zero padding.

    Each example draws ``(dy, dx)`` uniformly from ``{-s, ..., s}`` with
    ``s = int(size * ratio + 0.5)`` (a separate ``s`` for height and width) and
    becomes ``out[y, x] = images[y + dy, x + dx]``, 0 outside the image: its
    content moves by ``(-dy, -dx)``. A gather, so it is differentiable.

    References:
      Zhao et al. 2020, Differentiable Augmentation for Data-Efficient GAN
      Training, reference code ``rand_translation``.
    """

    def draw(key: Array, shape: Shape) -> Array:
        check_images(shape)
        limits = jnp.array([_shift_range(shape[1], ratio), _shift_range(shape[2], ratio)])
        return uniform_ints(jax.random.uniform(key, (shape[0], 2)), -limits, limits + 1)

    def apply(shift: Array, images: Array) -> Array:
        _, h, w, _ = images.shape
        rows = jnp.arange(h)[None, :, None] + shift[:, 0, None, None]
        cols = jnp.arange(w)[None, None, :] + shift[:, 1, None, None]
        inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        moved = gather(images, jnp.clip(rows, 0, h - 1), jnp.clip(cols, 0, w - 1))
        return jnp.where(inside[..., None], moved, jnp.zeros((), images.dtype))

    return Augment(draw, apply)


def _cutout_sizes(shape: Shape, ratio: float) -> tuple[int, int]:
    return _shift_range(shape[1], ratio), _shift_range(shape[2], ratio)


def rand_cutout(ratio: float = 0.5) -> Augment:
    """Cutout: sets a square of ``ratio`` of the image's side to 0, at a random place, clipped by the border.

    The square of side ``size = int(side * ratio + 0.5)`` covers
    ``[o - size // 2, o - size // 2 + size)`` in each axis, its offset ``o`` drawn
    uniformly from ``{0, ..., side - size % 2}``; near the border it is cut off,
    so it covers less than ``ratio^2`` of the image on average.

    References:
      Zhao et al. 2020, reference code ``rand_cutout``; DeVries and Taylor 2017,
      Improved Regularization of Convolutional Neural Networks with Cutout.
    """

    def draw(key: Array, shape: Shape) -> Array:
        check_images(shape)
        sizes = jnp.array(_cutout_sizes(shape, ratio))
        return uniform_ints(jax.random.uniform(key, (shape[0], 2)), 0, jnp.array(shape[1:3]) + 1 - sizes % 2)

    def apply(offset: Array, images: Array) -> Array:
        _, h, w, _ = images.shape
        size_h, size_w = _cutout_sizes(images.shape, ratio)
        top, left = offset[:, 0, None, None] - size_h // 2, offset[:, 1, None, None] - size_w // 2
        rows, cols = jnp.arange(h)[None, :, None], jnp.arange(w)[None, None, :]
        cut = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
        return jnp.where(cut[..., None], jnp.zeros((), images.dtype), images)

    return Augment(draw, apply)


#: DiffAugment's policies by name, each a sequence of ops (the reference code's ``AUGMENT_FNS``).
DIFF_AUGMENT: dict[str, tuple[Augment, ...]] = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation(),),
    "cutout": (rand_cutout(),),
}


def diff_augment(policy: str = "color,translation,cutout") -> Augment:
    """DiffAugment: the ops of ``policy`` (comma-separated keys of :data:`DIFF_AUGMENT`), in its order.

    ``aug(key, images)`` augments every example, each with its own parameters
    (colour: brightness, saturation, contrast; translation by up to 1/8 of the
    image with zero padding; cutout of a square of half the image's side). The
    transform is differentiable with respect to ``images``, so G's loss is taken
    through it; apply it to reals and fakes, in D's and G's updates alike. An
    empty policy is the identity.

    Example:
      >>> aug = jax.jit(diff_augment("translation,cutout"))
      >>> aug(jax.random.key(0), jnp.ones((4, 32, 32, 1))).shape
      (4, 32, 32, 1)

    References:
      Zhao, Liu, Lin, Zhu and Han 2020, Differentiable Augmentation for
      Data-Efficient GAN Training (NeurIPS), section 3 and its reference code
      (``DiffAugment_pytorch.py``); "color,translation,cutout" is its policy
      for limited data.
    """
    return chain(*(op for name in policy_names(policy, DIFF_AUGMENT) for op in DIFF_AUGMENT[name]))
