"""Noise that regularises the game: instance noise on D's inputs (:class:`InputNoise`, a GAN's part),
noise layers and always-on dropout in G."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import optax

from ganjax import rng
from ganjax.validate import in_range, traced

Array = jax.Array


def instance_noise_schedule(std: float, decay_steps: int) -> optax.Schedule:
    """The instance-noise standard deviation per step: ``std`` decayed linearly to 0 over ``decay_steps``.

    ``decay_steps = 0`` keeps ``std`` constant. ``std`` may be traced (a population member's).

    References:
      Sønderby et al. 2016, Amortised MAP Inference for Image Super-resolution;
      Huszár 2016, "Instance noise"; ganhacks #13 "Add noise to inputs, decay
      over time".
    """
    if decay_steps < 0 or (not traced(std) and std < 0):  # a traced std is checked where set
        raise ValueError(f"instance noise: std and decay_steps must be >= 0, got {std} and {decay_steps}")
    return optax.linear_schedule(std, 0.0, decay_steps) if decay_steps else optax.constant_schedule(std)


@dataclasses.dataclass(frozen=True)
class InputNoise:
    """Gaussian instance noise on D's inputs, real and fake, each batch its own draw, decayed by the step.

    The GAN's step (:mod:`ganjax.training.gan`) calls it on every batch D sees, in D's phase and G's.

    Attributes:
      std: its standard deviation at step 0 (0: off).
      decay_steps: steps over which it decays linearly to 0 (0: constant).

    Example:
      >>> noise = InputNoise(std=0.1, decay_steps=10_000)
      >>> noisy = noise(jax.random.key(0), jax.numpy.zeros((4, 2)), jax.numpy.int32(5_000), None)
      >>> round(float(instance_noise_schedule(0.1, 10_000)(5_000)), 6), noisy.shape
      (0.05, (4, 2))

    References:
      Arjovsky & Bottou 2017, Towards Principled Methods for Training GANs;
      Sønderby et al. 2016; ganhacks #13 "Add noise to inputs, decay over time".
    """

    std: float = 0.0
    decay_steps: int = 0

    def __post_init__(self):
        in_range(self, "std", 0.0)
        in_range(self, "decay_steps", 0)

    def __call__(self, key: jax.Array, images: jax.Array, step: jax.Array, axis_name: str | None) -> jax.Array:
        """``images`` plus this step's noise; unchanged when off."""
        if not traced(self.std) and not self.std:
            return images
        std = instance_noise_schedule(self.std, self.decay_steps)(step)
        return images + std * rng.per_device(jax.random.normal, key, images.shape, axis_name)


class GaussianNoise(nn.Module):
    """Adds ``N(0, stddev^2)`` noise to its input; for the layers of G. Draws from the rng collection ``'noise'``.

    Off when ``deterministic`` (pass ``deterministic=not train``).

    Attributes:
      stddev: the noise's standard deviation.
      deterministic: if true, the layer is the identity.

    References:
      Zhao et al. 2017, Energy-based GAN; ganhacks #13 "Add noise to inputs, decay
      over time": "adding gaussian noise to every layer of generator".
    """

    stddev: float
    deterministic: bool | None = None

    @nn.compact
    def __call__(self, x: Array, deterministic: bool | None = None) -> Array:
        if nn.merge_param("deterministic", self.deterministic, deterministic) or self.stddev == 0:
            return x
        return x + self.stddev * jax.random.normal(self.make_rng("noise"), x.shape, x.dtype)


class DropoutAlways(nn.Module):
    """Dropout that stays on at generation time too: G's noise source in pix2pix. Uses the rng collection ``'dropout'``.

    Attributes:
      rate: the drop probability (0.5, as in the paper).

    References:
      Isola et al. 2016, Image-to-Image Translation with Conditional Adversarial
      Networks, section 3.1; ganhacks #17 "Use Dropouts in G in both train and
      test phase".
    """

    rate: float = 0.5

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return nn.Dropout(self.rate, deterministic=False, rng_collection="dropout")(x)
