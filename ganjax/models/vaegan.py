"""The VAE-GAN hybrid: its players and its train phases (Larsen, Sønderby, Larochelle and Winther 2016).

"Autoencoding beyond pixels using a learned similarity metric". An encoder
``q(z | x)``, G as the decoder, and D on real images, on reconstructions
``G(z ~ q(z | x))`` and on samples ``G(z ~ p(z))``. With D's hidden layer
``f`` (sown by D under :data:`ganjax.nn.names.FEATURES`), the three
players minimise::

  encoder:  kl_weight * KL(q(z|x) || N(0, I)) + L_like
  decoder:  gamma * L_like + L_GAN(G)           (G's loss on reconstructions and samples)
  D:        L_GAN(D)                            (reals against reconstructions and samples)
  L_like = E_x 1/2 ||f(G(z)) - f(x)||^2          (a Gaussian likelihood in D's feature space)

The players: the encoder is DCGAN's D body (:class:`ganjax.models.dcgan.Features`)
with a dense head giving the mean and log-variance of ``q(z | x)``; the decoder
is the DCGAN generator (:class:`ganjax.models.dcgan.Generator`); D is
:class:`ganjax.models.conditional.Discriminator` with ``conditioning='none'``.
:func:`players` builds all three.

The step is two phases of :func:`ganjax.training.phases.make_step` over the
players ``'enc'``, ``'g'`` and ``'d'``:

* ``'d'``: :meth:`ganjax.training.gan.GAN.d_loss` (the GAN's loss, labels,
  penalty and instance noise) with every real twice, against its
  reconstruction and against a sample;
* ``'vae'``: the encoder and decoder through the updated D, one forward pass
  and a loss per player, ``{'enc': ..., 'g': ...}``, so that L_GAN reaches the
  decoder only and L_like never reaches D (the paper's Algorithm 1).

Example::

    model = VAEGAN(GAN(Latent(dim=32)), gamma=0.5)
    state = create_state(key, model, *players(28, 1, 32), image_shape=(28, 28, 1))
    step = jax.jit(make_step(model.phases()), donate_argnums=0)
    state, metrics = step(state, {"image": images})
    rebuilt = reconstruct(state, images)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ganjax import rng
from ganjax.models import conditional, dcgan
from ganjax.training import gan as gan_phases
from ganjax.training.gan import GAN
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput
from ganjax.training.state import Player, TrainState


class Encoder(dcgan.Features):
    """Images ``(N, S, S, C)`` -> ``(mean, log_variance)``, each ``(N, latent_dim)``.

    Attributes:
      latent_dim: size of z.
      image_size, width, norm, bn_axis_name, dtype: as for :class:`ganjax.models.dcgan.Features` (the posterior
        head is float32, on the body's float32 features).
    """

    latent_dim: int = 100

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = True) -> tuple[jax.Array, jax.Array]:
        h = self.body_module()(x, train)
        out = nn.Dense(2 * self.latent_dim, kernel_init=dcgan.weight_init, name="posterior")(h)
        mean, log_variance = out[:, : self.latent_dim], out[:, self.latent_dim :]
        return mean, log_variance


def players(
    image_size: int = 28,
    channels: int = 1,
    latent_dim: int = 100,
    width: int = 64,
    encoder_norm: str = "batch",
    g_norm: str = "batch",
    d_norm: str = "layer",
    bn_axis_name: str | None = None,
    dtype: Any = jnp.float32,
) -> tuple[Encoder, dcgan.Generator, conditional.Discriminator]:
    """``(encoder, decoder, discriminator)``, DCGAN-shaped, ``width`` channels at the image end of each.

    D defaults to LayerNorm: its features of reals and of reconstructions are
    compared example by example, which BatchNorm's batch statistics would mix.
    All three compute in ``dtype`` (:mod:`ganjax.nn.precision`) and return float32.
    """
    return (
        Encoder(image_size, width, encoder_norm, bn_axis_name, dtype, latent_dim=latent_dim),
        dcgan.Generator(image_size, channels, width, latent_dim, bn_axis_name=bn_axis_name, norm=g_norm, dtype=dtype),
        conditional.Discriminator(image_size, width, d_norm, bn_axis_name, dtype, conditioning="none"),
    )


def kl_divergence(mean: jax.Array, log_variance: jax.Array) -> jax.Array:
    """``KL(N(mean, exp(log_variance)) || N(0, I))`` per example, summed over z: ``(N, D) -> (N,)``."""
    return 0.5 * jnp.sum(jnp.square(mean) + jnp.exp(log_variance) - 1.0 - log_variance, axis=-1)


def feature_reconstruction(real_features: jax.Array, fake_features: jax.Array) -> jax.Array:
    """``L_like``: the mean over examples of ``1/2 ||f(x~) - f(x)||^2`` (a unit-variance Gaussian, up to a constant)."""
    diff = (fake_features - real_features).reshape(real_features.shape[0], -1)
    return 0.5 * jnp.mean(jnp.sum(jnp.square(diff), axis=-1))


@dataclasses.dataclass(frozen=True)
class VAEGAN:
    """What a VAE-GAN step does; static under jit (hashable, compared by value).

    Attributes:
      gan: the GAN side: z's size (its distribution must be Gaussian, the VAE's
        prior), the loss pair, D's labels, penalty (not lazy) and instance noise.
        G's objective is fixed (L_GAN plus the reconstruction), so feature matching
        and class conditioning are refused.
      gamma: weight of the feature-space reconstruction in the decoder's loss (the paper's gamma).
      kl_weight: weight of the KL term in the encoder's loss.
    """

    gan: GAN = dataclasses.field(default_factory=GAN)
    gamma: float = 1.0
    kl_weight: float = 1.0

    def __post_init__(self):
        refused = {
            "gan.latent.distribution": self.gan.latent.distribution != "gaussian",
            "gan.conditioning.num_classes": bool(self.gan.conditioning.num_classes),
            "gan.objective.g_objective": self.gan.objective.g_objective != "adversarial",
            "gan.objective.penalty_every": self.gan.objective.penalty_every != 1,
            "gan.objective.packing": self.gan.objective.packing != 1,
        }
        for field, bad in refused.items():
            if bad:
                raise ValueError(f"VAEGAN.{field}: not supported by the VAE-GAN step")
        if self.gamma < 0 or self.kl_weight < 0:
            raise ValueError(f"VAEGAN: gamma and kl_weight must not be negative, got {self.gamma}, {self.kl_weight}")

    def forward(self, enc_params, g_params, inputs: PhaseInputs):
        """The encoder and decoder on this batch, in train mode: ``(images, kl, batch_stats)``.

        ``images`` are the reconstructions ``G(mean + sigma * eps)`` of the reals
        followed by as many samples ``G(z ~ N(0, I))``; ``kl`` is the mean KL of
        ``q(z | x)``. Both phases of a step draw the same ``eps``, z and G noise
        (named keys), so D trains on the very images the encoder and decoder then
        descend through.
        """
        state, axis = inputs.state, inputs.axis_name
        enc, g = state.players["enc"], state.players["g"]
        real = inputs.batch["image"]
        shape = (real.shape[0], self.gan.latent.dim)
        eps = rng.per_device_normal(rng.named(inputs.key, "posterior"), shape, axis)
        z_prior = rng.per_device_normal(rng.named(inputs.key, "prior"), shape, axis)
        (mean, log_variance), enc_stats = enc(enc_params, real, train=True)
        z = jnp.concatenate([mean + jnp.exp(0.5 * log_variance) * eps, z_prior])
        noise_key, dropout_key = jax.random.split(rng.device_key(rng.named(inputs.key, "g"), axis))
        images, g_stats = g(g_params, z, train=True, rngs={"noise": noise_key, "dropout": dropout_key})
        kl = jnp.mean(kl_divergence(mean, log_variance))
        return images, kl, {"enc": enc_stats, "g": g_stats}

    def _d_main(self, params, inputs: PhaseInputs):
        """D's phase: every real twice, against its reconstruction and a sample (the loss of one real batch)."""
        state = inputs.state
        images, _, _ = self.forward(state.players["enc"].params, state.players["g"].params, inputs)
        reals = jnp.concatenate([inputs.batch["image"]] * 2)
        return self.gan.d_loss(params["d"], inputs, reals, None, lax.stop_gradient(images), None)

    def _vae_main(self, params, inputs: PhaseInputs):
        """The encoder's and decoder's phase: a loss per player over one forward pass through the updated D."""
        d, step, axis = inputs.state.players["d"], inputs.state.step, inputs.axis_name
        images, kl, stats = self.forward(params["enc"], params["g"], inputs)
        n = inputs.batch["image"].shape[0]
        real_noise, fake_noise = jax.random.split(rng.named(inputs.key, "noise"))
        reals = self.gan.noise(real_noise, jnp.concatenate([inputs.batch["image"]] * 2), step, axis)
        real_logits, real_features, _ = d.with_features(d.params, reals)
        logits, features, _ = d.with_features(d.params, self.gan.noise(fake_noise, images, step, axis))
        # D's params are no input of this phase: neither loss reaches D.
        like = feature_reconstruction(lax.stop_gradient(real_features[:n]), features[:n])
        g_loss = self.gan.objective.pair.g(logits, real_logits)
        losses = {"enc": self.kl_weight * kl + like, "g": self.gamma * like + g_loss}
        metrics = {"g_loss": g_loss, "kl": kl, "reconstruction": like}
        return losses, PhaseOutput(metrics=metrics, batch_stats=stats)

    def phases(self, n_critic: int = 1) -> tuple[Phase, ...]:
        """D's update (``n_critic`` times per step, each on its own real batch), then the encoder's and decoder's.

        Metrics: ``d_loss``, D's verdicts (``d_real``/``d_fake`` for the
        probabilistic losses), ``penalty`` when one is on, ``d_grad_norm``;
        ``g_loss`` (G's GAN loss), ``kl``, ``reconstruction`` (``L_like``),
        ``enc_grad_norm``, ``g_grad_norm``.
        """
        if n_critic < 1:
            raise ValueError(f"n_critic must be at least 1, got {n_critic}")
        return (Phase("d", ("d",), self._d_main, repeat=n_critic), Phase("vae", ("enc", "g"), self._vae_main))


def create_state(
    key: jax.Array,
    model: VAEGAN,
    encoder: nn.Module,
    decoder: nn.Module,
    discriminator: nn.Module,
    image_shape: tuple[int, ...],
    enc_tx: optax.GradientTransformation | None = None,
    g_tx: optax.GradientTransformation | None = None,
    d_tx: optax.GradientTransformation | None = None,
    ema_decay: float = 0.0,
) -> TrainState:
    """The players ``'enc'``, ``'g'`` and ``'d'``; optimizers default to Adam(2e-4, b1=0.5), the encoder's to G's.

    Args:
      key: the run's key; it seeds the players' init and every later step.
      model: the step's options (``model.gan.latent.dim`` is the decoder's input size).
      encoder: ``encoder(images, train=...) -> (mean, log_variance)``.
      decoder: ``decoder(z, train=...) -> images``.
      discriminator: ``discriminator(images, train=...) -> logits``, sowing its features.
      image_shape: one example's shape, e.g. ``(H, W, C)``.
      enc_tx, g_tx, d_tx: the players' optimizers.
      ema_decay: keep a moving average of the decoder's params with this decay (0: none).
    """
    enc_tx = enc_tx or g_tx or optax.adam(2e-4, b1=0.5)
    gan_key, enc_key = jax.random.split(key)
    state = gan_phases.create_state(
        gan_key, model.gan, decoder, discriminator, image_shape, g_tx=g_tx, d_tx=d_tx, ema_decay=ema_decay
    )
    enc = Player.create(encoder, enc_tx, enc_key, jnp.zeros((2, *image_shape)))
    return state.replace(players={**state.players, "enc": enc})


def reconstruct(state: TrainState, images: jax.Array, use_ema: bool = False) -> jax.Array:
    """``G(mean of q(z | x))`` for each image, with running BatchNorm statistics."""
    mean, _ = state.players["enc"](state.params("enc"), images, train=False)[0]
    return generate(state, mean, use_ema)


def generate(state: TrainState, z: jax.Array, use_ema: bool = False) -> jax.Array:
    """The decoder's images for ``z``, with running BatchNorm statistics (its moving average with ``use_ema``)."""
    return gan_phases.generate(state, z, use_ema=use_ema)
