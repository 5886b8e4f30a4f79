"""GAN losses as pure functions of discriminator logits.

Every D loss has the signature ``(real_logits, fake_logits, real_labels=1.0,
fake_labels=0.0) -> scalar`` (the labelled ones; the others take only the
logits) and every G loss ``(fake_logits, real_logits=None) -> scalar`` (only the
relativistic ones read ``real_logits``), so a config can swap them by name (see
:data:`LOSSES`). Logits are D's raw outputs; probabilities are never
formed, so no loss takes ``log(sigmoid(x))``: the cross-entropies are
``optax.sigmoid_binary_cross_entropy``, which uses ``log_sigmoid`` (exact where
``sigmoid`` underflows) and takes soft labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize

Array = jax.Array


def minimax_d_loss(
    real_logits: Array, fake_logits: Array, real_labels: Array | float = 1.0, fake_labels: Array | float = 0.0
) -> Array:
    """D's loss of the original GAN: ``-E[log D(x)] - E[log(1 - D(G(z)))]``.

    The binary cross-entropy of D's logits against the labels real = 1 and
    fake = 0 (or the soft labels passed in), summed over the real and the fake
    batch, each averaged over its own examples.

    References:
      Goodfellow et al. 2014, Generative Adversarial Nets.
    """
    return jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits, real_labels)) + jnp.mean(
        optax.sigmoid_binary_cross_entropy(fake_logits, fake_labels)
    )


def minimax_g_loss(fake_logits: Array, real_logits: Array | None = None) -> Array:
    """G's loss of the original minimax game: ``E[log(1 - D(G(z)))]`` (G minimises it).

    Saturates: where D confidently rejects a fake (logit -> -inf) its gradient
    vanishes, which is why ``non_saturating_g_loss`` is the default.

    References:
      Goodfellow et al. 2014, Generative Adversarial Nets.
    """
    del real_logits
    return jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def non_saturating_g_loss(fake_logits: Array, real_logits: Array | None = None) -> Array:
    """G's non-saturating loss ``-E[log D(G(z))]`` (``max log D``).

    The cross-entropy of the fakes against the label *real*: the ganhacks
    "flip labels when training the generator" trick. Its gradient stays near -1
    per unit logit where D rejects the fakes, exactly where the minimax loss vanishes.

    References:
      Goodfellow et al. 2014, section 3; ganhacks trick 2 ("max log D").
    """
    del real_logits
    return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits, 1.0))


def wasserstein_d_loss(real_logits: Array, fake_logits: Array) -> Array:
    """The critic's loss of WGAN: ``E[D(G(z))] - E[D(x)]``.

    Takes no labels. Needs a Lipschitz critic: pair it with a gradient penalty
    (:func:`ganjax.penalties.wgan_gp`) or weight clipping.

    References:
      Arjovsky et al. 2017, Wasserstein GAN.
    """
    return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_g_loss(fake_logits: Array, real_logits: Array | None = None) -> Array:
    """G's loss of WGAN and of the hinge GAN: ``-E[D(G(z))]``.

    References:
      Arjovsky et al. 2017, Wasserstein GAN; Lim & Ye 2017, Geometric GAN.
    """
    del real_logits
    return -jnp.mean(fake_logits)


def hinge_d_loss(real_logits: Array, fake_logits: Array) -> Array:
    """D's hinge loss ``-E[min(0, -1 + D(x))] - E[min(0, -1 - D(G(z)))]``.

    Flat (zero gradient) beyond the margin: real logits above 1 and fake
    logits below -1 no longer train D. Takes no labels.

    References:
      Lim & Ye 2017, Geometric GAN; Miyato et al. 2018 (SN-GAN).
    """
    return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


hinge_g_loss = wasserstein_g_loss


def least_squares_d_loss(
    real_logits: Array, fake_logits: Array, real_labels: Array | float = 1.0, fake_labels: Array | float = 0.0
) -> Array:
    """D's least-squares loss ``1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2]``.

    ``b = real_labels`` and ``a = fake_labels`` (1 and 0 by default, the
    0-1 coding of the paper); soft or flipped labels move the targets.

    References:
      Mao et al. 2017, Least Squares Generative Adversarial Networks.
    """
    return 0.5 * (jnp.mean(jnp.square(real_logits - real_labels)) + jnp.mean(jnp.square(fake_logits - fake_labels)))


def least_squares_g_loss(fake_logits: Array, real_logits: Array | None = None) -> Array:
    """G's least-squares loss ``1/2 E[(D(G(z)) - 1)^2]``.

    References:
      Mao et al. 2017, Least Squares Generative Adversarial Networks.
    """
    del real_logits
    return 0.5 * jnp.mean(jnp.square(fake_logits - 1.0))


def _required(real_logits: Array | None, loss: str) -> Array:
    if real_logits is None:
        raise ValueError(f"{loss} is relativistic: it needs real_logits (LOSSES[...].g_needs_real is True)")
    return real_logits


def relativistic_d_loss(
    real_logits: Array, fake_logits: Array, real_labels: Array | float = 1.0, fake_labels: Array | float = 0.0
) -> Array:
    """D's relativistic standard loss (RSGAN) ``-E[log sigmoid(C(x_r) - C(x_f))]``.

    Pairs the i-th real with the i-th fake (equal batch sizes). Written as
    ``1/2 [CE(C_r - C_f, y_r) + CE(C_f - C_r, y_f)]``, which is the loss above
    for hard labels and lets soft or flipped labels act on both terms.

    References:
      Jolicoeur-Martineau 2019, The relativistic discriminator.
    """
    diff = real_logits - fake_logits
    return 0.5 * jnp.mean(
        optax.sigmoid_binary_cross_entropy(diff, real_labels) + optax.sigmoid_binary_cross_entropy(-diff, fake_labels)
    )


def relativistic_g_loss(fake_logits: Array, real_logits: Array | None = None) -> Array:
    """G's relativistic standard loss (RSGAN) ``-E[log sigmoid(C(x_f) - C(x_r))]``.

    References:
      Jolicoeur-Martineau 2019, The relativistic discriminator.
    """
    real_logits = _required(real_logits, "relativistic_g_loss")
    return jnp.mean(optax.sigmoid_binary_cross_entropy(fake_logits - real_logits, 1.0))


def relativistic_average_d_loss(
    real_logits: Array, fake_logits: Array, real_labels: Array | float = 1.0, fake_labels: Array | float = 0.0
) -> Array:
    """D's relativistic average loss (RaSGAN).

    ``-E_r[log sigmoid(C(x_r) - E_f C(x_f))] - E_f[log(1 - sigmoid(C(x_f) - E_r C(x_r)))]``,
    each term a cross-entropy against its (possibly soft) label.

    References:
      Jolicoeur-Martineau 2019, The relativistic discriminator.
    """
    return jnp.mean(optax.sigmoid_binary_cross_entropy(real_logits - jnp.mean(fake_logits), real_labels)) + jnp.mean(
        optax.sigmoid_binary_cross_entropy(fake_logits - jnp.mean(real_logits), fake_labels)
    )


def relativistic_average_g_loss(fake_logits: Array, real_logits: Array | None = None) -> Array:
    """G's relativistic average loss (RaSGAN): D's loss with the roles of real and fake swapped.

    References:
      Jolicoeur-Martineau 2019, The relativistic discriminator.
    """
    real_logits = _required(real_logits, "relativistic_average_g_loss")
    return relativistic_average_d_loss(fake_logits, real_logits)


def feature_matching_g_loss(fake_features: Array, real_features: Array) -> Array:
    """G's feature-matching loss ``||E f(x) - E f(G(z))||^2`` on an intermediate layer ``f`` of D.

    Takes D's features ``(batch, ...)`` rather than its logits, so it is not in
    :data:`LOSSES`; D keeps its own loss.

    References:
      Salimans et al. 2016, Improved Techniques for Training GANs, section 3.1.
    """
    return jnp.sum(jnp.square(jnp.mean(real_features, axis=0) - jnp.mean(fake_features, axis=0)))


def class_entropy_g_loss(class_logits: Array, axis_name: str | None = None) -> Array:
    """CatGAN's class term for G: the mean entropy of D's class prediction on each fake,
    minus the entropy of the batch's mean prediction.

    Minimising it makes each sample one class with confidence while the batch
    spreads over all classes (Springenberg 2016, Unsupervised and
    Semi-supervised Learning with Categorical Generative Adversarial Networks,
    eq. 7). ``class_logits`` are ``(batch, classes)``; the mean prediction is
    over the global batch when ``axis_name`` names the devices' axis.

    Example:
      >>> confident = jnp.eye(4) * 20.0  # four samples, one per class
      >>> round(float(class_entropy_g_loss(confident)), 3)  # 0 - log(4)
      -1.386
    """
    log_p = jax.nn.log_softmax(class_logits)
    p = jnp.exp(log_p)
    conditional = -jnp.mean(jnp.sum(p * log_p, axis=-1))
    marginal = jnp.mean(p, axis=0)
    if axis_name is not None:
        marginal = jax.lax.pmean(marginal, axis_name)
    return conditional + jnp.sum(marginal * jnp.log(marginal + 1e-12))


def least_d_loss(d_loss: Callable[..., Array], real_labels: Array, fake_labels: Array) -> float:
    """The least value of a labelled D loss that D can reach against these targets.

    The targets are drawn independently of the images, so D cannot predict an
    example's own target: its best is one output for every real and one for
    every fake example. This is the loss's minimum over those two outputs: 0
    for hard labels, the targets' entropy for the cross-entropy losses with
    smoothed, noisy or flipped targets (with one-sided smoothing at 0.9,
    ``H(0.9) = 0.325``), the targets' variance for the least-squares loss.

    Example:
      >>> real_y, fake_y = jnp.full((64,), 0.9), jnp.zeros((64,))
      >>> round(least_d_loss(minimax_d_loss, real_y, fake_y), 3)
      0.325
    """

    def loss(outputs: Array) -> Array:
        real, fake = jnp.full(real_labels.shape, outputs[0]), jnp.full(fake_labels.shape, outputs[1])
        return d_loss(real, fake, real_labels, fake_labels)

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    fun = lambda x: tuple(np.asarray(v, np.float64) for v in value_and_grad(jnp.asarray(x, jnp.float32)))
    return float(scipy.optimize.minimize(fun, np.zeros(2), jac=True, method="L-BFGS-B").fun)


class LossPair(NamedTuple):
    """A named GAN loss: its D side, its G side and what they take.

    Attributes:
      d: ``(real_logits, fake_logits[, real_labels, fake_labels]) -> scalar``.
      g: ``(fake_logits, real_logits=None) -> scalar``.
      uses_labels: whether ``d`` takes ``real_labels``/``fake_labels`` (so label
        smoothing, noisy labels and flips apply).
      g_needs_real: whether ``g`` needs D's logits on a real batch.
      probabilistic: whether ``sigmoid(logit)`` is D's probability that the
        input is real (the cross-entropy losses). The others score on their own
        scale (a Wasserstein critic's scores are unbounded), so only their raw
        scores are meaningful to report.
      d_loss_bounded_below: whether ``d`` has a least value that a D winning
        outright approaches (0 for hard targets); False for the Wasserstein
        critic's loss, which falls without bound as the critic's scores spread.
    """

    d: Callable[..., Array]
    g: Callable[..., Array]
    uses_labels: bool
    g_needs_real: bool
    probabilistic: bool
    d_loss_bounded_below: bool


LOSSES: dict[str, LossPair] = {
    "minimax": LossPair(
        minimax_d_loss,
        minimax_g_loss,
        uses_labels=True,
        g_needs_real=False,
        probabilistic=True,
        d_loss_bounded_below=True,
    ),
    "non_saturating": LossPair(
        minimax_d_loss,
        non_saturating_g_loss,
        uses_labels=True,
        g_needs_real=False,
        probabilistic=True,
        d_loss_bounded_below=True,
    ),
    "wasserstein": LossPair(
        wasserstein_d_loss,
        wasserstein_g_loss,
        uses_labels=False,
        g_needs_real=False,
        probabilistic=False,
        d_loss_bounded_below=False,
    ),
    "hinge": LossPair(
        hinge_d_loss,
        hinge_g_loss,
        uses_labels=False,
        g_needs_real=False,
        probabilistic=False,
        d_loss_bounded_below=True,
    ),
    "least_squares": LossPair(
        least_squares_d_loss,
        least_squares_g_loss,
        uses_labels=True,
        g_needs_real=False,
        probabilistic=False,
        d_loss_bounded_below=True,
    ),
    "relativistic": LossPair(
        relativistic_d_loss,
        relativistic_g_loss,
        uses_labels=True,
        g_needs_real=True,
        probabilistic=False,
        d_loss_bounded_below=True,
    ),
    "relativistic_average": LossPair(
        relativistic_average_d_loss,
        relativistic_average_g_loss,
        uses_labels=True,
        g_needs_real=True,
        probabilistic=False,
        d_loss_bounded_below=True,
    ),
}
