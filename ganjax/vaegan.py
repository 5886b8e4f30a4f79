"""The VAE-GAN hybrid (Larsen, Sønderby, Larochelle and Winther 2016, Autoencoding beyond pixels).

An encoder ``q(z | x)``, G as the decoder, and D on real images, on
reconstructions ``G(z ~ q(z | x))`` and on samples ``G(z ~ p(z))``. With D's
hidden layer ``f`` (sown by D as ``intermediates/features``, see
:func:`ganjax.feature_matching.apply_with_features`), the three losses are::

  encoder:  kl_weight * KL(q(z|x) || N(0, I)) + L_like
  decoder:  gamma * L_like + L_GAN(G)           (G's loss on reconstructions and samples)
  D:        L_GAN(D)                            (reals against reconstructions and samples)
  L_like = E_x 1/2 ||f(G(z)) - f(x)||^2          (a Gaussian likelihood in D's feature space)

The GAN losses are those of :class:`ganjax.train.StepConfig` (``loss``), and D's
update is :mod:`ganjax.train`'s own, with its labels, penalties and instance
noise; L_GAN reaches the decoder only, L_like never reaches D (the paper's
Algorithm 1). Seed items 001 §7, 004 §6: "hybrid models: KL + GAN, VAE + GAN".

The step is pure and jitted with the state donated (:func:`ganjax.train.jit_step`).
The encoder and decoder run forward once; their two gradients come from two
pullbacks of that one linearisation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from ganjax import losses, train
from ganjax.feature_matching import apply_with_features
from ganjax.train import Player, StepConfig

PyTree = Any


@dataclasses.dataclass(frozen=True)
class VAEGANConfig:
    """What a VAE-GAN step does; static under jit.

    Attributes:
      gan: the GAN side: ``latent_dim``, ``loss``, D's labels, penalty and instance
        noise, ``axis_name``; the options of G's batch (``n_critic``, EMA,
        replay, classes) are refused.
      gamma: weight of the feature-space reconstruction in the decoder's loss (the paper's gamma).
      kl_weight: weight of the KL term in the encoder's loss.
    """

    gan: StepConfig = StepConfig()
    gamma: float = 1.0
    kl_weight: float = 1.0

    def __post_init__(self):
        for field in ("n_critic", "ema_decay", "replay_capacity", "num_classes"):
            if getattr(self.gan, field) != getattr(StepConfig, field):
                raise ValueError(f"VAEGANConfig.gan.{field}: not supported by the VAE-GAN step")
        if self.gamma < 0 or self.kl_weight < 0:
            raise ValueError(f"VAEGANConfig: gamma and kl_weight must not be negative, got {self.gamma}, "
                             f"{self.kl_weight}")


class VAEGANState(struct.PyTreeNode):
    """The three players, the step count and the run's key (step ``t`` draws from ``fold_in(key, t)``)."""

    step: jax.Array
    enc: Player
    g: Player
    d: Player
    key: jax.Array


def create_state(key: jax.Array, encoder: nn.Module, decoder: nn.Module, discriminator: nn.Module,
                 image_shape: tuple[int, ...], config: VAEGANConfig, enc_tx: optax.GradientTransformation | None = None,
                 g_tx: optax.GradientTransformation | None = None,
                 d_tx: optax.GradientTransformation | None = None) -> VAEGANState:
    """Initialises the players; optimizers default to Adam(2e-4, b1=0.5) (G's is the encoder's default too).

    Args:
      key: the run's key.
      encoder: ``encoder(images, train=...) -> (mean, log_variance)``.
      decoder: ``decoder(z, train=...) -> images``.
      discriminator: ``discriminator(images, train=...) -> logits``, sowing ``intermediates/features``.
      image_shape: one example's shape, e.g. ``(H, W, C)``.
      config: the step config.
    """
    enc_tx = enc_tx or g_tx or optax.adam(2e-4, b1=0.5)
    gan_key, enc_key = jax.random.split(key)
    gan = train.create_state(gan_key, decoder, discriminator, image_shape, config.gan, g_tx=g_tx, d_tx=d_tx)
    enc = Player.create(encoder, enc_tx, enc_key, jnp.zeros((2, *image_shape)))
    return VAEGANState(step=gan.step, enc=enc, g=gan.g, d=gan.d, key=gan.key)


def kl_divergence(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """``KL(N(mean, exp(log_variance)) || N(0, I))`` per example, summed over z: ``(N, D) -> (N,)``."""
    return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(log_variance) - 1.0 - log_variance, axis=-1)


def feature_reconstruction(real_features: jax.Array, fake_features: jax.Array) -> jax.Array:
    """``L_like``: the mean over examples of ``1/2 ||f(x~) - f(x)||^2`` (a unit-variance Gaussian, up to a constant)."""
    diff = (fake_features - real_features).reshape(real_features.shape[0], -1)
    return 0.5 * jnp.mean(jnp.sum(jnp.square(diff), axis=-1))


def train_step(state: VAEGANState, batch: dict[str, jax.Array],
               config: VAEGANConfig) -> tuple[VAEGANState, dict[str, jax.Array]]:
    """One update of D, then of the encoder and decoder through the updated D.

    Returns:
      The new state and ``{'d_loss', 'd_real', 'd_fake', 'd_grad_norm', 'g_loss',
      'kl', 'reconstruction', 'enc_grad_norm', 'g_grad_norm'}`` (plus ``'penalty'``
      when one is on); ``g_loss`` is G's GAN loss, ``reconstruction`` is ``L_like``.
    """
    gan = config.gan
    keys = train.step_keys(state, "posterior", "prior", "g", "d", "noise")
    real = batch["image"]
    n = real.shape[0]
    eps = train.per_device_normal(keys["posterior"], (n, gan.latent_dim), gan.axis_name)
    z_prior = train.per_device_normal(keys["prior"], (n, gan.latent_dim), gan.axis_name)

    def forward(enc_params, g_params):
        (mean, log_variance), enc_stats = state.enc(enc_params, real, train=True)
        z = mean + jnp.exp(0.5 * log_variance) * eps
        images, g_stats = train.run_g(state.g, g_params, jnp.concatenate([z, z_prior]), None, keys["g"], gan)
        return (images, jnp.mean(kl_divergence(mean, log_variance))), (enc_stats, g_stats)

    (images, kl), pullback, (enc_stats, g_stats) = jax.vjp(forward, state.enc.params, state.g.params, has_aux=True)
    # D sees every real twice, against the reconstruction and the sample of it: the same loss as one real batch.
    reals = jnp.concatenate([real, real])
    d, d_metrics = train.d_update(state.d, reals, None, lax.stop_gradient(images), None, keys["d"], state.step, gan)

    loss = losses.LOSSES[gan.loss]
    real_noise, fake_noise = jax.random.split(keys["noise"])
    noisy_reals = train.instance_noise(real_noise, reals, state.step, gan)
    real_logits, real_features, _ = apply_with_features(d, d.params, noisy_reals)
    real_features = lax.stop_gradient(real_features[:n])

    def image_losses(fakes):
        logits, features, _ = apply_with_features(d, d.params, train.instance_noise(fake_noise, fakes, state.step,
                                                                                     gan))
        return feature_reconstruction(real_features, features[:n]), loss.g(logits, real_logits)

    (reconstruction, g_loss), image_pullback = jax.vjp(image_losses, images)
    one, zero = jnp.ones_like(reconstruction), jnp.zeros_like(reconstruction)
    (enc_images,) = image_pullback((one, zero))
    (g_images,) = image_pullback((config.gamma * one, one))
    enc_grads = pullback((enc_images, config.kl_weight * one))[0]
    g_grads = pullback((g_images, zero))[1]
    enc_grads, g_grads, enc_stats, g_stats = train.mean_over_devices((enc_grads, g_grads, enc_stats, g_stats), gan.axis_name)
    metrics = {**d_metrics, "g_loss": g_loss, "kl": kl, "reconstruction": reconstruction,
               "enc_grad_norm": optax.tree.norm(enc_grads), "g_grad_norm": optax.tree.norm(g_grads)}
    state = state.replace(step=state.step + 1, d=d, enc=state.enc.apply_gradients(enc_grads, enc_stats),
                          g=state.g.apply_gradients(g_grads, g_stats))
    return state, train.mean_over_devices(metrics, gan.axis_name)


def reconstruct(state: VAEGANState, images: jax.Array) -> jax.Array:
    """``G(mean of q(z | x))`` for each image, with running BatchNorm statistics."""
    mean, _ = state.enc(state.enc.params, images, train=False)[0]
    return state.g(state.g.params, mean, train=False)[0]


def generate(state: VAEGANState, z: jax.Array) -> jax.Array:
    """G's images for ``z``, with running BatchNorm statistics."""
    return state.g(state.g.params, z, train=False)[0]
