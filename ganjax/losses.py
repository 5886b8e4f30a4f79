"""GAN losses as pure functions of discriminator logits.

Every D loss has the signature ``(real_logits, fake_logits, ...) -> scalar``
and every G loss ``(fake_logits, ...) -> scalar``, so a config can swap them by
name (see :data:`LOSSES`). Logits are D's raw outputs; probabilities are never
formed, so no loss takes ``log(sigmoid(x))`` (it uses ``log_sigmoid``, which is
exact where ``sigmoid`` underflows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def sigmoid_cross_entropy(logits: Array, labels: Array | float) -> Array:
    """Elementwise ``-[y log sigmoid(l) + (1 - y) log(1 - sigmoid(l))]``, stable for any logit.

    Uses ``log(1 - sigmoid(l)) = log_sigmoid(-l)``. ``labels`` may be soft
    (any real values, as label smoothing and noisy labels produce).
    """
    labels = jnp.asarray(labels, logits.dtype)
    return -(labels * jax.nn.log_sigmoid(logits) + (1.0 - labels) * jax.nn.log_sigmoid(-logits))


def minimax_d_loss(real_logits: Array, fake_logits: Array, real_labels: Array | float = 1.0,
                   fake_labels: Array | float = 0.0) -> Array:
    """D's loss of the original GAN: ``-E[log D(x)] - E[log(1 - D(G(z)))]``.

    The binary cross-entropy of D's logits against the labels real = 1 and
    fake = 0 (or the soft labels passed in), summed over the real and the fake
    batch, each averaged over its own examples.

    References:
      Goodfellow et al. 2014, Generative Adversarial Nets.
    """
    return (jnp.mean(sigmoid_cross_entropy(real_logits, real_labels))
            + jnp.mean(sigmoid_cross_entropy(fake_logits, fake_labels)))


def minimax_g_loss(fake_logits: Array) -> Array:
    """G's loss of the original minimax game: ``E[log(1 - D(G(z)))]`` (G minimises it).

    Saturates: where D confidently rejects a fake (logit -> -inf) its gradient
    vanishes, which is why ``non_saturating_g_loss`` is the default.

    References:
      Goodfellow et al. 2014, Generative Adversarial Nets.
    """
    return jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def non_saturating_g_loss(fake_logits: Array) -> Array:
    """G's non-saturating loss ``-E[log D(G(z))]`` (``max log D``).

    The cross-entropy of the fakes against the label *real*: the ganhacks
    "flip labels when training the generator" trick. Its gradient stays near -1
    per unit logit where D rejects the fakes, exactly where the minimax loss vanishes.

    References:
      Goodfellow et al. 2014, section 3; ganhacks trick 2 ("max log D").
    """
    return jnp.mean(sigmoid_cross_entropy(fake_logits, 1.0))
