"""Progressive growing: the stage schedule, the fade-in weight and the WGAN-GP train step (Karras et al. 2018).

Training runs through stages of resolution ``4, 8, 16, ...``
(:mod:`ganjax.models.pggan`). Stage 0 trains for ``stable_images`` images;
every later stage first fades its new layers in over ``fade_images`` images
(``alpha`` rising linearly from 0 to 1), then trains them for ``stable_images``
more; the last stage runs until the end. ``alpha`` is a function of the step
counter inside the jitted step, so each stage compiles once
(:class:`StepConfig` with its ``stage`` is static) and a run restored at any
step continues at the same stage and weight.

The loss is WGAN-GP with the drift term of the paper,
``E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)|| - 1)^2] + eps_drift E[D(x)^2]``
(lambda 10, eps_drift 0.001), with D's minibatch-stddev layer inside the
penalty's critic, as in the paper.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from ganjax import losses, penalties
from ganjax.models import pggan
from ganjax.nn.resample import nearest_upsample
from ganjax.optim import EMA
from ganjax.train import GANState, Metrics, Player, device_key, mean_over_devices, per_device_normal, step_keys


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How many steps each stage and its fade-in take.

    Attributes:
      num_stages: stages ``0 .. num_stages - 1`` (resolutions ``4 .. 4 * 2^(num_stages - 1)``).
      batch_size: images per step (the global batch).
      fade_images: images over which a new stage's layers fade in (0: switched in at once).
      stable_images: images each stage trains after its fade-in (the last stage: until the end).
    """

    num_stages: int
    batch_size: int
    fade_images: int
    stable_images: int

    def _steps(self, images: int) -> int:
        return math.ceil(images / self.batch_size)

    def start(self, stage: int) -> int:
        """The first step of ``stage``."""
        if stage == 0:
            return 0
        return self._steps(self.stable_images) + (stage - 1) * (self._steps(self.fade_images)
                                                                + self._steps(self.stable_images))

    def stage(self, step: int) -> int:
        """The stage that step ``step`` (a Python int) trains."""
        return max(s for s in range(self.num_stages) if self.start(s) <= step)

    def alpha(self, step: jax.Array | int, stage: int) -> jax.Array:
        """The fade-in weight at ``step`` of ``stage``: ``min(1, images seen in the stage / fade_images)``."""
        if stage == 0 or self.fade_images == 0:
            return jnp.ones((), jnp.float32)
        seen = (jnp.asarray(step, jnp.float32) - self.start(stage)) * self.batch_size
        return jnp.clip(seen / self.fade_images, 0.0, 1.0)

    def total_steps(self) -> int:
        """Steps until the last stage's fade-in and one stable period are done."""
        return self.start(self.num_stages - 1) + self._steps(self.fade_images) + self._steps(self.stable_images)


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What a progressive train step does; static under jit (one compilation per stage).

    Attributes:
      schedule: the stage schedule.
      stage: the stage this step trains.
      latent_dim: size of z.
      penalty_weight: the gradient penalty's weight (lambda).
      drift: the weight of ``E[D(x)^2]``, which keeps the critic's scores near 0.
      axis_name: the mapped axis to average over when run per device, or None.
    """

    schedule: Schedule
    stage: int
    latent_dim: int = 128
    penalty_weight: float = 10.0
    drift: float = 0.001
    axis_name: str | None = None


def create_state(key: jax.Array, generator: pggan.Generator, discriminator: pggan.Discriminator, channels: int,
                 g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation,
                 ema_decay: float = 0.0) -> GANState:
    """Both players with the params of every stage (:func:`ganjax.models.pggan.init_all_stages`)."""
    g_key, d_key, run_key = jax.random.split(key, 3)
    g_params = pggan.init_all_stages(generator, g_key, lambda s: jnp.zeros((2, generator.latent_dim)))
    d_params = pggan.init_all_stages(
        discriminator, d_key, lambda s: jnp.zeros((2, pggan.resolution(s), pggan.resolution(s), channels)))
    g = Player(g_params, {}, g_tx.init(g_params), generator.apply, g_tx)
    d = Player(d_params, {}, d_tx.init(d_params), discriminator.apply, d_tx)
    g_ema = EMA.create(g_params, ema_decay) if ema_decay else None
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d, key=run_key, g_ema=g_ema)


def _downsample(images: jax.Array, side: int) -> jax.Array:
    factor = images.shape[1] // side
    return nn.avg_pool(images, (factor, factor), strides=(factor, factor)) if factor > 1 else images


def real_images(images: jax.Array, stage: int, alpha: jax.Array) -> jax.Array:
    """Full-size reals as D sees them at ``stage``: average-pooled to its side, faded like G's output."""
    side = pggan.resolution(stage)
    new = _downsample(images, side)
    if stage == 0:
        return new
    return pggan.fade(alpha, new, nearest_upsample(_downsample(images, side // 2), 2))


def train_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """One critic update then one G update at ``config.stage``, with this step's fade-in weight.

    Returns:
      The new state and ``{'d_loss', 'penalty', 'drift', 'g_loss', 'alpha',
      'd_grad_norm', 'g_grad_norm'}``; ``d_loss`` is the Wasserstein part alone.
    """
    keys = step_keys(state, "z", "penalty")
    stage = config.stage
    alpha = config.schedule.alpha(state.step, stage)
    real = real_images(batch["image"], stage, alpha)
    z = per_device_normal(keys["z"], (real.shape[0], config.latent_dim), config.axis_name)
    fake, g_vjp = jax.vjp(lambda p: state.g(p, z, alpha, stage, train=True)[0], state.g.params)

    def d_loss_fn(params):
        critic = lambda x: state.d(params, x, alpha, stage, train=True)[0]
        real_scores, fake_scores = critic(real), critic(jax.lax.stop_gradient(fake))
        parts = {"d_loss": losses.wasserstein_d_loss(real_scores, fake_scores),
                 "penalty": penalties.wgan_gp(critic, real, jax.lax.stop_gradient(fake),
                                              device_key(keys["penalty"], config.axis_name)),
                 "drift": jnp.mean(jnp.square(real_scores))}
        return parts["d_loss"] + config.penalty_weight * parts["penalty"] + config.drift * parts["drift"], parts

    (_, d_metrics), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(state.d.params)
    d_grads = mean_over_devices(d_grads, config.axis_name)
    d = state.d.apply_gradients(d_grads, {})

    def g_loss_fn(images):
        return losses.wasserstein_g_loss(d(d.params, images, alpha, stage, train=True)[0])

    g_loss, fake_grad = jax.value_and_grad(g_loss_fn)(fake)
    (g_grads,) = g_vjp(fake_grad)
    g_grads = mean_over_devices(g_grads, config.axis_name)
    g = state.g.apply_gradients(g_grads, {})
    g_ema = None if state.g_ema is None else state.g_ema.update(g.params)
    metrics = {**d_metrics, "g_loss": g_loss, "alpha": alpha, "d_grad_norm": optax.tree.norm(d_grads),
               "g_grad_norm": optax.tree.norm(g_grads)}
    return state.replace(step=state.step + 1, g=g, d=d, g_ema=g_ema), mean_over_devices(metrics, config.axis_name)


def staged(make_step: Callable[[int], Callable], schedule: Schedule) -> Callable:
    """``step(state, batch)`` that runs ``make_step(stage)(state, batch)`` for the stage of each step.

    ``make_step`` is called once per stage (so each stage compiles once). The
    step counter is read from the state on the first call only (one host sync),
    then counted on the host.
    """
    steps: dict[int, Callable] = {}
    counter: list[int] = []

    def step(state: GANState, batch: dict[str, jax.Array]):
        if not counter:
            counter.append(int(state.step))
        stage = schedule.stage(counter[0])
        if stage not in steps:
            steps[stage] = make_step(stage)
        counter[0] += 1
        return steps[stage](state, batch)

    return step


def generate(state: GANState, z: jax.Array, stage: int, alpha: jax.Array, use_ema: bool = False) -> jax.Array:
    """G's images for ``z`` at ``stage`` and fade-in weight ``alpha`` (EMA params if ``use_ema``)."""
    params = state.g_ema.params if use_ema else state.g.params
    return state.g(params, z, alpha, stage, train=False)[0]
