"""Neural style transfer: content, style (Gram matrix) and total-variation losses, and the image optimisation.

Gatys, Ecker and Bethge 2016 (Image Style Transfer Using Convolutional Neural
Networks): the output image ``x`` minimises

``content_weight * sum_l mean((F_l(x) - F_l(c))^2)
  + style_weight * sum_l mean((G_l(x) - G_l(s))^2) / L_s
  + tv_weight * TV(x)``

where ``F_l`` are VGG-19 features (:class:`ganjax.style.vgg.VGG19`) of the
content image ``c``, ``G_l`` their Gram matrices (:func:`gram`) for the style
image ``s``, averaged over the ``L_s`` style layers, and ``TV`` the mean absolute
difference of neighbouring pixels (Mahendran and Vedaldi 2015). The image, in
[0, 1] and initialised at the content image, is optimised by any optax
transform: Adam, or L-BFGS (``optax.lbfgs``, with its line search), see :func:`transfer`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

Features = dict[str, jax.Array]
FeatureFn = Callable[[jax.Array], Features]


@dataclasses.dataclass(frozen=True)
class StyleConfig:
    """Which VGG layers carry content and style, and the weights of the three losses.

    Defaults are those of Gatys et al. 2016 (content ``conv4_2``; style the first
    layer of every block); the weights suit images in [0, 1] and :func:`gram` normalized by ``H * W``.
    """

    content_layers: tuple[str, ...] = ("conv4_2",)
    style_layers: tuple[str, ...] = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    content_weight: float = 1.0
    style_weight: float = 1e3
    tv_weight: float = 1e-2

    @property
    def layers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.content_layers + self.style_layers))


class Targets(NamedTuple):
    """The content image's features at the content layers and the style image's Gram matrices at the style layers."""

    content: Features
    style: Features


def gram(features: jax.Array) -> jax.Array:
    """``F^T F / (H W)`` per example: ``(N, H, W, C) -> (N, C, C)``, the channel correlations of a feature map."""
    n, h, w, c = features.shape
    flat = features.reshape(n, h * w, c)
    return jnp.einsum("npc,npd->ncd", flat, flat) / (h * w)


def content_loss(features: Features, targets: Features) -> jax.Array:
    """``sum_l mean((F_l - P_l)^2)`` over the layers of ``targets``."""
    return sum(jnp.mean(jnp.square(features[layer] - targets[layer])) for layer in targets)


def style_loss(features: Features, target_grams: Features) -> jax.Array:
    """``mean_l mean((gram(F_l) - A_l)^2)`` over the layers of ``target_grams`` (Gram matrices of the style image)."""
    return sum(jnp.mean(jnp.square(gram(features[layer]) - target_grams[layer])) for layer in target_grams) / len(
        target_grams
    )


def total_variation(images: jax.Array) -> jax.Array:
    """The mean absolute difference between vertically and horizontally neighbouring pixels, summed."""
    return jnp.mean(jnp.abs(images[:, 1:] - images[:, :-1])) + jnp.mean(jnp.abs(images[:, :, 1:] - images[:, :, :-1]))


def targets(features_fn: FeatureFn, content: jax.Array, style: jax.Array, config: StyleConfig) -> Targets:
    """What the output should match: the content features of ``content`` and the Gram matrices of ``style``."""
    content_features, style_features = features_fn(content), features_fn(style)
    return Targets(
        {layer: content_features[layer] for layer in config.content_layers},
        {layer: gram(style_features[layer]) for layer in config.style_layers},
    )


def losses(image: jax.Array, features_fn: FeatureFn, target: Targets, config: StyleConfig) -> dict[str, jax.Array]:
    """The three losses of ``image`` and their weighted sum, ``'total'``."""
    features = features_fn(image)
    parts = {
        "content": content_loss(features, target.content),
        "style": style_loss(features, target.style),
        "tv": total_variation(image),
    }
    parts["total"] = (
        config.content_weight * parts["content"] + config.style_weight * parts["style"] + config.tv_weight * parts["tv"]
    )
    return parts


def transfer(
    features_fn: FeatureFn,
    content: jax.Array,
    style: jax.Array,
    config: StyleConfig,
    tx: optax.GradientTransformationExtraArgs,
    steps: int,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Optimises an image from ``content`` by ``steps`` updates of ``tx`` (jit: ``config``, ``tx``, ``steps`` static).

    ``tx`` may be ``optax.adam(...)`` or ``optax.lbfgs()``: the loss's value,
    gradient and function are passed to every update, as L-BFGS's line search needs.

    Args:
      features_fn: images ``(1, H, W, 3)`` in [0, 1] -> VGG features (a closure over the weights).
      content: the content image ``(1, H, W, 3)`` in [0, 1]; also the starting point.
      style: the style image ``(1, H', W', 3)`` in [0, 1].
      config: layers and weights.
      tx: the optimizer.
      steps: updates.

    Returns:
      The image clipped to [0, 1], and every loss (``'content'``, ``'style'``,
      ``'tv'``, ``'total'``) before each update, shape ``(steps,)``.
    """
    target = targets(features_fn, content, style, config)

    def total(image):
        parts = losses(image, features_fn, target, config)
        return parts["total"], parts

    def value_fn(image):
        return total(image)[0]

    def update(carry, _):
        image, opt_state = carry
        (value, parts), grad = jax.value_and_grad(total, has_aux=True)(image)
        updates, opt_state = tx.update(grad, opt_state, image, value=value, grad=grad, value_fn=value_fn)
        return (optax.apply_updates(image, updates), opt_state), parts

    (image, _), history = lax.scan(update, (content, tx.init(content)), length=steps)
    return jnp.clip(image, 0.0, 1.0), history
