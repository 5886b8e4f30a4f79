"""ADA (Karras, Aittala, Hellsten, Laine, Lehtinen and Aila 2020): a pipeline of ops each applied with
probability ``p`` (:func:`ada_pipeline`), and the controller that adjusts ``p`` from the signs of D's real
logits (:class:`AdaState`, :func:`ada_init`, :func:`ada_update`)."""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ganjax.augment.ops import (
    Array,
    Augment,
    Shape,
    check_images,
    gather,
    normal,
    per_example,
    policy_names,
    uniform_ints,
)

HIGHEST = lax.Precision.HIGHEST

#: ADA's ops, in the order the reference pipeline applies them: pixel blitting (composed into one
#: gather), then colour (composed into one affine colour map).
ADA_OPS = ("xflip", "rotate90", "xint", "brightness", "contrast", "lumaflip", "hue", "saturation")
_GEOMETRIC = ADA_OPS[:3]
_COLOUR = ADA_OPS[3:]
#: The default pipeline: pixel blitting and colour, the reference code's ``'bc'``.
ADA_DEFAULT = ",".join(ADA_OPS)

# The paper's (and reference code's) parameter ranges.
XINT_MAX = 0.125
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5
HUE_MAX = 1.0
SATURATION_STD = 1.0

# The uniforms each op takes: whether it is applied, then its parameters (xint: one per axis).
_ADA_WIDTHS = {name: 3 if name == "xint" else 2 for name in ADA_OPS}
_ADA_COLUMNS = sum(_ADA_WIDTHS.values())
_ADA_SPLITS = list(itertools.accumulate(_ADA_WIDTHS.values()))[:-1]

_LUMA = np.array([1.0, 1.0, 1.0, 0.0], np.float32) / np.float32(math.sqrt(3.0))  # the luma axis, in homogeneous RGB


class AdaParams(NamedTuple):
    """One batch's draw of ADA's pipeline.

    Attributes:
      matrix: ``(B, 2, 2)`` int32: flip and quarter turn, acting on centred pixel coordinates.
      shift: ``(B, 2)`` int32: the integer translation ``(dx, dy)`` in pixels.
      colour: ``(B, 4, 4)`` float32: the affine colour map in homogeneous RGB.
      coloured: ``(B,)`` bool: whether any colour op was applied (the others are kept exactly).
    """

    matrix: Array
    shift: Array
    colour: Array
    coloured: Array


def _rotation(theta: Array) -> Array:
    """``(B, 4, 4)`` rotations by ``theta`` about the luma axis (Rodrigues' formula, homogeneous)."""
    vx, vy, vz = _LUMA[0], _LUMA[1], _LUMA[2]
    s, c = jnp.sin(theta), jnp.cos(theta)
    cc, zero, one = 1.0 - c, jnp.zeros_like(theta), jnp.ones_like(theta)
    rows = [
        [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, zero],
        [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, zero],
        [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, zero],
        [zero, zero, zero, one],
    ]
    return jnp.stack([jnp.stack(row, axis=-1) for row in rows], axis=-2)


def _ada_draw(ops: frozenset[str], key: Array, shape: Shape, p: Array | float) -> AdaParams:
    """Every example's ADA parameters; each op is applied with probability ``p``, from its own uniforms."""
    check_images(shape)
    n, h, w, channels = shape
    if "rotate90" in ops and h != w:
        raise ValueError(f"ADA: rotate90 needs square images, got {h}x{w}")
    if ops & set(_COLOUR) and channels not in (1, 3):
        raise ValueError(f"ADA: colour ops need 1 or 3 channels, got {channels}")
    # One draw for everything (random draws dominate the compile time); each op has its own columns,
    # so that its draws do not depend on which other ops are on.
    u = jax.random.uniform(key, (n, _ADA_COLUMNS))
    columns = dict(zip(ADA_OPS, jnp.split(u, _ADA_SPLITS, axis=1)))
    p = jnp.asarray(p, jnp.float32)
    applied = {name: columns[name][:, 0] < p for name in ops}
    value = {name: columns[name][:, 1] for name in ADA_OPS}

    matrix = jnp.broadcast_to(jnp.eye(2, dtype=jnp.int32), (n, 2, 2))
    shift = jnp.zeros((n, 2), jnp.int32)
    if "xflip" in ops:
        flip = uniform_ints(value["xflip"], 0, 2) * applied["xflip"]
        matrix = matrix.at[:, 0, 0].set(1 - 2 * flip)
    if "rotate90" in ops:
        quarter = uniform_ints(value["rotate90"], 0, 4) * applied["rotate90"]
        cos, sin = jnp.array([1, 0, -1, 0])[quarter], jnp.array([0, 1, 0, -1])[quarter]
        matrix = matrix @ jnp.stack([jnp.stack([cos, -sin], -1), jnp.stack([sin, cos], -1)], -2)
    if "xint" in ops:
        t = (columns["xint"][:, 1:] * 2.0 - 1.0) * XINT_MAX
        t = jnp.where(applied["xint"][:, None], t, 0.0)
        shift = jnp.round(t * jnp.array([w, h])).astype(jnp.int32)

    eye = jnp.broadcast_to(jnp.eye(4), (n, 4, 4))
    colour, coloured = eye, jnp.zeros((n,), bool)
    then = lambda op, c: jnp.matmul(op, c, precision=HIGHEST)
    if "brightness" in ops:
        b = normal(value["brightness"]) * BRIGHTNESS_STD
        b = jnp.where(applied["brightness"], b, 0.0)
        colour = then(eye.at[:, :3, 3].set(b[:, None]), colour)
    if "contrast" in ops:
        c = jnp.exp2(normal(value["contrast"]) * CONTRAST_STD)
        c = jnp.where(applied["contrast"], c, 1.0)
        colour = then(eye * jnp.stack([c, c, c, jnp.ones_like(c)], -1)[:, None, :], colour)
    if "lumaflip" in ops:
        flip = uniform_ints(value["lumaflip"], 0, 2) * applied["lumaflip"]
        colour = then(eye - 2.0 * jnp.outer(_LUMA, _LUMA) * flip[:, None, None], colour)
    if channels == 3 and "hue" in ops:
        theta = (value["hue"] * 2.0 - 1.0) * jnp.pi * HUE_MAX
        colour = then(_rotation(jnp.where(applied["hue"], theta, 0.0)), colour)
    if channels == 3 and "saturation" in ops:
        s = jnp.exp2(normal(value["saturation"]) * SATURATION_STD)
        s = jnp.where(applied["saturation"], s, 1.0)[:, None, None]
        luma = jnp.outer(_LUMA, _LUMA)
        colour = then(luma + (jnp.eye(4) - luma) * s, colour)
    for name in _COLOUR:
        if name in ops and (channels == 3 or name not in ("hue", "saturation")):
            coloured = coloured | applied[name]
    return AdaParams(matrix, shift, colour, coloured)


def _reflect(index: Array, size: int) -> Array:
    """Indices outside ``[0, size)`` mirrored back in (reflection without repeating the edge)."""
    index = jnp.abs(index)
    return jnp.where(index > size - 1, 2 * (size - 1) - index, index)


def _ada_blit(params: AdaParams, images: Array) -> Array:
    """Flip, quarter turn and integer translation as one gather, reflecting at the border.

    In centred coordinates, output pixel ``q`` reads input pixel ``matrix @ (q - shift)``.
    Coordinates are doubled (``2 x - (w - 1)``) so that pixel centres are integers.
    """
    _, h, w, _ = images.shape
    x = 2 * jnp.arange(w)[None, None, :] - (w - 1) - 2 * params.shift[:, 0, None, None]
    y = 2 * jnp.arange(h)[None, :, None] - (h - 1) - 2 * params.shift[:, 1, None, None]
    m = params.matrix[:, :, :, None, None]
    source_x = m[:, 0, 0] * x + m[:, 0, 1] * y
    source_y = m[:, 1, 0] * x + m[:, 1, 1] * y
    cols = _reflect((source_x + w - 1) // 2, w)
    rows = _reflect((source_y + h - 1) // 2, h)
    return gather(images, rows, cols)


def _ada_colour(params: AdaParams, images: Array) -> Array:
    """The affine colour map (greyscale: the mean of its RGB rows, as the reference code does)."""
    colour = params.colour.astype(images.dtype)
    if images.shape[-1] == 3:
        out = jnp.einsum("bij,bhwj->bhwi", colour[:, :3, :3], images, precision=HIGHEST)
        out = out + colour[:, None, None, :3, 3]
    else:
        grey = jnp.mean(colour[:, :3, :], axis=1)
        out = images * per_example(jnp.sum(grey[:, :3], -1), images) + per_example(grey[:, 3], images)
    return jnp.where(params.coloured[:, None, None, None], out, images)


def ada_pipeline(policy: str = ADA_DEFAULT) -> Augment:
    """ADA's augmentation pipeline: ``aug(key, images, p)``, each op applied with probability ``p`` per example.

    ``policy`` names ops of :data:`ADA_OPS` (comma-separated); they always run in
    the reference order, with the paper's ranges:

    - ``xflip``: mirror left-right with probability 1/2;
    - ``rotate90``: turn by a uniform multiple of 90 degrees (square images);
    - ``xint``: translate by ``round(t * side)`` pixels, ``t ~ U[-1/8, 1/8]`` per axis,
      reflecting at the border;
    - ``brightness``: add ``N(0, 0.2^2)``; ``contrast``: scale by ``2^N(0, 0.5^2)``;
    - ``lumaflip``: invert along the luma axis with probability 1/2;
    - ``hue``: rotate about the luma axis by ``U[-pi, pi]``;
      ``saturation``: scale off the luma axis by ``2^N(0, 1)`` (both RGB only).

    So at ``p = 1`` a flip-only pipeline mirrors half the examples, as in the paper;
    at ``p = 0`` the pipeline is the identity, exactly. ``p`` may be traced (ADA's
    controller's, or a population member's). The geometric ops are one pixel
    gather and the colour ops one affine map per example, both differentiable
    with respect to the images; the 90-degree turns, flips and whole-pixel shifts
    need no interpolation. The paper's non-integer geometric ops (scaling,
    arbitrary rotation, anisotropy, fractional translation) and its filtering and
    noise ops are not included.

    Example:
      >>> flip = jax.jit(ada_pipeline("xflip"))
      >>> x = jnp.arange(4.0).reshape(1, 1, 4, 1)
      >>> bool((flip(jax.random.key(0), x, 0.0) == x).all())
      True

    References:
      Karras, Aittala, Hellsten, Laine, Lehtinen and Aila 2020, Training
      Generative Adversarial Networks with Limited Data (NeurIPS), section 2.3
      and appendix B; the reference code's ``AugmentPipe`` (``'bc'``:
      pixel blitting and colour transforms).
    """
    ops = frozenset(policy_names(policy, ADA_OPS))

    def apply(params: AdaParams, images: Array) -> Array:
        if ops & set(_GEOMETRIC):
            images = _ada_blit(params, images)
        if ops & set(_COLOUR):
            images = _ada_colour(params, images)
        return images

    return Augment(lambda key, shape, p: _ada_draw(ops, key, shape, p), apply)


class AdaState(NamedTuple):
    """ADA's adaptive augmentation probability and the statistics of D on reals since its last adjustment.

    Attributes:
      p: the augmentation probability, in [0, 1] (float32 scalar).
      signs_sum: the sum of ``sign(D(x_real))`` since the last adjustment.
      signs_count: how many real logits that sum covers.
      steps: :func:`ada_update` calls since the last adjustment (int32).
      rt: the overfitting heuristic ``r_t = E[sign(D(x_real))]`` of the last adjustment (0 before the first).
    """

    p: Array
    signs_sum: Array
    signs_count: Array
    steps: Array
    rt: Array


def ada_init(p: float | Array = 0.0) -> AdaState:
    """The controller's state at the start of a run: ``p`` (0 in the paper) and empty statistics."""
    zero = jnp.zeros((), jnp.float32)
    return AdaState(jnp.asarray(p, jnp.float32), zero, zero, jnp.zeros((), jnp.int32), zero)


def ada_update(
    state: AdaState,
    real_logits: Array,
    *,
    target: float | Array = 0.6,
    interval: int = 4,
    ada_kimg: float | Array = 500.0,
    batch_size: int | None = None,
    axis_name: str | None = None,
) -> AdaState:
    """One D update's worth of ADA's controller: accumulate ``sign(D(x_real))``, adjust ``p`` every ``interval`` calls.

    On every ``interval``-th call, with ``r_t`` the mean sign over the calls since the last
    adjustment::

        p <- clip(p + sign(r_t - target) * batch_size * interval / (ada_kimg * 1000), 0, 1)

    and the statistics restart; on the other calls ``p`` is unchanged. ``p`` can
    thus cross [0, 1] in ``ada_kimg`` thousand real images. No Python branch
    depends on a traced value: it runs under ``jit`` and ``vmap``.

    Args:
      state: the controller's state.
      real_logits: D's raw outputs on this update's (this device's) reals, any shape;
        only their signs count (no gradient flows).
      target: the value of ``r_t`` to hold (0.6 in the paper).
      interval: calls between adjustments (4 in the paper).
      ada_kimg: thousands of images for ``p`` to go from 0 to 1 (500 in the paper).
      batch_size: real images per call, over all devices; default: the number of real
        logits over all devices.
      axis_name: the device axis to sum the statistics over, when run per device.

    Returns:
      The new state.

    References:
      Karras et al. 2020, Training Generative Adversarial Networks with Limited
      Data, section 3 (heuristic ``r_t``, target 0.6, ``p`` adjusted every 4 minibatches
      fast enough to rise from 0 to 1 in 500k images) and the reference code's
      ``training_loop.py`` (``ada_target``, ``ada_interval``, ``ada_kimg``).
    """
    if isinstance(interval, int) and interval < 1:
        raise ValueError(f"ada_update: interval must be at least 1, got {interval}")
    signs = jnp.sign(lax.stop_gradient(real_logits)).astype(jnp.float32)
    total, count = jnp.sum(signs), jnp.asarray(signs.size, jnp.float32)
    if axis_name is not None:
        total, count = lax.psum((total, count), axis_name)
    signs_sum, signs_count, steps = state.signs_sum + total, state.signs_count + count, state.steps + 1
    rt = signs_sum / jnp.maximum(signs_count, 1.0)
    images = count if batch_size is None else jnp.float32(batch_size)
    adjust = jnp.sign(rt - target) * images * interval / (ada_kimg * 1000.0)
    due = steps >= interval
    keep = lambda new, old: jnp.where(due, new, old).astype(old.dtype)
    return AdaState(
        p=keep(jnp.clip(state.p + adjust, 0.0, 1.0), state.p),
        signs_sum=keep(0.0, signs_sum),
        signs_count=keep(0.0, signs_count),
        steps=keep(0, steps),
        rt=keep(rt, state.rt),
    )
