"""Progressive growing GAN generator and discriminator (Karras, Aila, Laine and Lehtinen 2018).

Both networks are built for ``num_stages`` resolutions ``4, 8, ..., 4 * 2^(num_stages - 1)``
and called at one ``stage`` (a Python int) with a fade-in weight ``alpha`` (an
array, so it can change every step without recompiling). At stage ``s > 0``
the new layers are blended in:

* G: ``alpha * to_rgb_s(block_s(h)) + (1 - alpha) * upsample(to_rgb_{s-1}(h))``;
* D: ``alpha * block_s(from_rgb_s(x)) + (1 - alpha) * from_rgb_{s-1}(avgpool(x))``.

At ``alpha = 1`` the output is the new branch alone; at ``alpha = 0`` G's output is
its previous stage's output upsampled. Every layer has an equalized learning rate
(:class:`ganjax.nn.EqualizedConv`, :class:`ganjax.nn.EqualizedDense`); G
pixel-normalizes every feature map (:class:`ganjax.nn.PixelNorm`) and D ends
with minibatch stddev (:class:`ganjax.nn.MinibatchStdDev`). Layers are named
``block_i``, ``to_rgb_i``, ``from_rgb_i``, so one parameter tree (the union
over stages, :func:`init_all_stages`) serves every stage.

Training runs through stages of resolution ``4, 8, 16, ...`` (:class:`Schedule`).
Stage 0 trains for ``stable_images`` images; every later stage first fades its
new layers in over ``fade_images`` images (``alpha`` rising linearly from 0 to
1), then trains them for ``stable_images`` more; the last stage runs until the
end. :meth:`PGGAN.phases` gives the two phases of one stage for
:func:`ganjax.training.phases.make_step`, over the players ``'g'`` and ``'d'``:
the critic's WGAN-GP loss with the drift term of the paper,
``E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)|| - 1)^2] + eps_drift E[D(x)^2]``
(lambda 10, eps_drift 0.001, D's minibatch-stddev layer inside the penalty's
critic), then G's Wasserstein loss through the updated critic. ``alpha`` is a
function of ``state.step`` inside the step, so each stage compiles once (the
stage is static) and a run restored at any step continues at the same stage
and weight.

Example::

    schedule = Schedule(num_stages=3, batch_size=16, fade_images=800_000, stable_images=800_000)
    model = PGGAN(schedule, latent_dim=128)
    state = create_state(key, Generator(num_stages=3), Discriminator(num_stages=3), 1, g_tx, d_tx, ema_decay=0.999)
    step = staged(lambda stage: jax.jit(make_step(model.phases(stage)), donate_argnums=0), schedule)
    state, metrics = step(state, {"image": full_size_images})
    images = generate(state, z, schedule.stage(int(state.step)), alpha=1.0, use_ema=True)
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from ganjax import losses, penalties, rng
from ganjax.nn.equalized import EqualizedConv, EqualizedDense
from ganjax.nn.minibatch import MinibatchStdDev
from ganjax.nn.normalization import PixelNorm
from ganjax.nn.resample import nearest_upsample
from ganjax.training.phases import Phase, PhaseInputs, PhaseOutput
from ganjax.training.state import Player, TrainState


def resolution(stage: int) -> int:
    """The image side at ``stage``: ``4 * 2^stage``."""
    return 4 * 2**stage


def _lrelu(x: jax.Array) -> jax.Array:
    return nn.leaky_relu(x, 0.2)


def _avg_pool2(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _features(stage: int, num_stages: int, width: int, max_width: int) -> int:
    """Channels at ``stage``: ``width`` at the finest, doubling towards 4x4, at most ``max_width``."""
    return min(max_width, width * 2 ** (num_stages - 1 - stage))


def _check_stage(stage: int, num_stages: int, who: str) -> None:
    if not 0 <= stage < num_stages:
        raise ValueError(f"{who}: stage must be in [0, {num_stages}), got {stage}")


def fade(alpha: jax.Array, new: jax.Array, old: jax.Array) -> jax.Array:
    """``alpha * new + (1 - alpha) * old`` in ``new``'s dtype; exactly ``new`` at ``alpha = 1``."""
    alpha = jnp.asarray(alpha).astype(new.dtype)
    return alpha * new + (1.0 - alpha) * old


class GBlock(nn.Module):
    """Stage 0: z -> dense 4x4 -> conv3. Stage > 0: 2x nearest upsampling -> conv3 -> conv3.

    LeakyReLU(0.2) and pixel norm after each layer.
    """

    features: int
    first: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.first:
            x = EqualizedDense(16 * self.features, gain=math.sqrt(2.0) / 4)(PixelNorm()(x))
            x = PixelNorm()(_lrelu(x.reshape(x.shape[0], 4, 4, self.features)))
        else:
            x = nearest_upsample(x, 2)
            x = PixelNorm()(_lrelu(EqualizedConv(self.features)(x)))
        return PixelNorm()(_lrelu(EqualizedConv(self.features)(x)))


class DBlock(nn.Module):
    """Stage > 0: conv3 -> conv3 -> 2x avgpool. Stage 0: minibatch stddev -> conv3 -> conv4 'VALID' -> dense 1."""

    features: int
    out_features: int
    last: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.last:
            x = _lrelu(EqualizedConv(self.features)(MinibatchStdDev()(x)))
            x = _lrelu(EqualizedConv(self.features, (4, 4), padding="VALID")(x))
            return EqualizedDense(1, gain=1.0)(x.reshape(x.shape[0], -1).astype(jnp.float32))[:, 0]
        x = _lrelu(EqualizedConv(self.features)(x))
        return _avg_pool2(_lrelu(EqualizedConv(self.out_features)(x)))


class Generator(nn.Module):
    """``(z, alpha, stage)`` -> images ``(N, r, r, channels)`` with ``r = resolution(stage)``.

    Attributes:
      num_stages: resolutions 4 up to ``4 * 2^(num_stages - 1)``.
      channels: image channels.
      width: channels at the finest stage; coarser stages double them up to ``max_width``.
      max_width: the most channels of any stage.
      latent_dim: size of z.
      dtype: the computation dtype (:mod:`ganjax.nn.precision`); params stay float32, images are float32.
    """

    num_stages: int = 4
    channels: int = 1
    width: int = 16
    max_width: int = 128
    latent_dim: int = 128
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, z: jax.Array, alpha: jax.Array, stage: int, train: bool = True) -> jax.Array:
        del train  # no statistics
        _check_stage(stage, self.num_stages, "pggan.Generator")

        def to_rgb(i, h):
            return EqualizedConv(self.channels, (1, 1), gain=1.0, name=f"to_rgb_{i}")(h)

        h = z.astype(self.dtype)
        previous = None
        for i in range(stage + 1):
            previous = h
            h = GBlock(_features(i, self.num_stages, self.width, self.max_width), first=i == 0, name=f"block_{i}")(h)
        if stage == 0:
            return to_rgb(0, h).astype(jnp.float32)
        return fade(alpha, to_rgb(stage, h), nearest_upsample(to_rgb(stage - 1, previous), 2)).astype(jnp.float32)


class Discriminator(nn.Module):
    """``(images (N, r, r, C), alpha, stage)`` -> critic scores ``(N,)`` with ``r = resolution(stage)``.

    Attributes:
      num_stages: as for :class:`Generator`.
      width: channels at the finest stage; coarser stages double them up to ``max_width``.
      max_width: the most channels of any stage.
      dtype: the computation dtype of the blocks (:mod:`ganjax.nn.precision`); params stay float32, the last
        dense layer and the scores are float32.
    """

    num_stages: int = 4
    width: int = 16
    max_width: int = 128
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, alpha: jax.Array, stage: int, train: bool = True) -> jax.Array:
        del train
        _check_stage(stage, self.num_stages, "pggan.Discriminator")
        if x.ndim != 4 or x.shape[1:3] != (resolution(stage),) * 2:
            raise ValueError(
                f"pggan.Discriminator at stage {stage} expects NHWC images of side {resolution(stage)}, got {x.shape}"
            )
        features = lambda i: _features(i, self.num_stages, self.width, self.max_width)
        x = x.astype(self.dtype)

        def from_rgb(i, images):
            return _lrelu(EqualizedConv(features(i), (1, 1), name=f"from_rgb_{i}")(images))

        def block(i, h):
            return DBlock(features(i), features(max(i - 1, 0)), last=i == 0, name=f"block_{i}")(h)

        if stage == 0:
            return block(0, from_rgb(0, x))
        h = fade(alpha, block(stage, from_rgb(stage, x)), from_rgb(stage - 1, _avg_pool2(x)))
        for i in reversed(range(stage)):
            h = block(i, h)
        return h


def init_all_stages(module: nn.Module, key: jax.Array, inputs_at: Callable[[int], jax.Array]) -> dict:
    """The union over every stage of ``module``'s params, from one key; ``inputs_at(stage)`` is z or images.

    Layers shared by several stages get the values of the last stage that has
    them; every stage's call then finds all of its layers in the one tree. The
    inits draw through :func:`ganjax.rng.flat_draws`, as every player's do.
    """
    params, key = {}, rng.flat_draws(key)
    for stage in range(module.num_stages):
        params.update(module.init(key, inputs_at(stage), jnp.ones(()), stage)["params"])
    return params


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
        return self._steps(self.stable_images) + (stage - 1) * (
            self._steps(self.fade_images) + self._steps(self.stable_images)
        )

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


def _downsample(images: jax.Array, side: int) -> jax.Array:
    factor = images.shape[1] // side
    return nn.avg_pool(images, (factor, factor), strides=(factor, factor)) if factor > 1 else images


def real_images(images: jax.Array, stage: int, alpha: jax.Array) -> jax.Array:
    """Full-size reals as D sees them at ``stage``: average-pooled to its side, faded like G's output."""
    side = resolution(stage)
    new = _downsample(images, side)
    if stage == 0:
        return new
    return fade(alpha, new, nearest_upsample(_downsample(images, side // 2), 2))


@dataclasses.dataclass(frozen=True)
class PGGAN:
    """What a progressive train step does; static under jit.

    Attributes:
      schedule: the stage schedule (it gives each step's fade-in weight).
      latent_dim: size of z.
      penalty_weight: the gradient penalty's weight (lambda).
      drift: the weight of ``E[D(x)^2]``, which keeps the critic's scores near 0.
    """

    schedule: Schedule
    latent_dim: int = 128
    penalty_weight: float = 10.0
    drift: float = 0.001

    def _fakes(self, stage: int, g_params, inputs: PhaseInputs):
        """``(G's fakes, alpha)`` at ``stage``; both phases of a step draw the same z."""
        alpha = self.schedule.alpha(inputs.state.step, stage)
        shape = (inputs.batch["image"].shape[0], self.latent_dim)
        z = rng.per_device_normal(rng.named(inputs.key, "z"), shape, inputs.axis_name)
        fake, _ = inputs.state.players["g"](g_params, z, alpha, stage, train=True)
        return fake, alpha

    def d_loss(self, stage: int, params, inputs: PhaseInputs) -> tuple[jax.Array, PhaseOutput]:
        """The critic's WGAN-GP loss with drift; reports its parts and ``alpha``."""
        fake, alpha = self._fakes(stage, inputs.state.players["g"].params, inputs)
        real = real_images(inputs.batch["image"], stage, alpha)
        fake = lax.stop_gradient(fake)
        critic = lambda x: inputs.state.players["d"](params["d"], x, alpha, stage, train=True)[0]
        real_scores = critic(real)
        penalty_key = rng.device_key(rng.named(inputs.key, "penalty"), inputs.axis_name)
        parts = {
            "d_loss": losses.wasserstein_d_loss(real_scores, critic(fake)),
            "penalty": penalties.wgan_gp(critic, real, fake, penalty_key),
            "drift": jnp.mean(jnp.square(real_scores)),
        }
        total = parts["d_loss"] + self.penalty_weight * parts["penalty"] + self.drift * parts["drift"]
        return total, PhaseOutput(metrics={**parts, "alpha": alpha})

    def g_loss(self, stage: int, params, inputs: PhaseInputs) -> tuple[jax.Array, PhaseOutput]:
        """G's Wasserstein loss through the critic this step's D phase updated, on the same z."""
        fake, alpha = self._fakes(stage, params["g"], inputs)
        d = inputs.state.players["d"]
        g_loss = losses.wasserstein_g_loss(d(d.params, fake, alpha, stage, train=True)[0])
        return g_loss, PhaseOutput(metrics={"g_loss": g_loss})

    def phases(self, stage: int) -> tuple[Phase, ...]:
        """The critic's update, then G's, at ``stage`` (a Python int: one compilation per stage).

        Metrics: ``d_loss`` (the Wasserstein part alone), ``penalty``, ``drift``,
        ``alpha``, ``d_grad_norm``, ``g_loss``, ``g_grad_norm``.
        """
        if not 0 <= stage < self.schedule.num_stages:
            raise ValueError(f"PGGAN.phases: stage must be in [0, {self.schedule.num_stages}), got {stage}")
        return (
            Phase("d", ("d",), functools.partial(self.d_loss, stage)),
            Phase("g", ("g",), functools.partial(self.g_loss, stage)),
        )


def staged(make_step: Callable[[int], Callable], schedule: Schedule) -> Callable:
    """``step(state, batch)`` that runs ``make_step(stage)(state, batch)`` for the stage of each step.

    ``make_step`` is called once per stage (so each stage compiles once). The
    step counter is read from the state on the first call only (one host sync),
    then counted on the host.
    """
    steps: dict[int, Callable] = {}
    counter: list[int] = []

    def step(state: TrainState, batch: dict[str, jax.Array]):
        if not counter:
            counter.append(int(state.step))
        stage = schedule.stage(counter[0])
        if stage not in steps:
            steps[stage] = make_step(stage)
        counter[0] += 1
        return steps[stage](state, batch)

    return step


def create_state(
    key: jax.Array,
    generator: Generator,
    discriminator: Discriminator,
    channels: int,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    ema_decay: float = 0.0,
) -> TrainState:
    """Players ``'g'`` and ``'d'`` with the params of every stage (:func:`init_all_stages`).

    ``ema_decay``: keep a moving average of G's params with this decay (0: none).
    """
    g_key, d_key, run_key = jax.random.split(key, 3)
    g_params = init_all_stages(generator, g_key, lambda s: jnp.zeros((2, generator.latent_dim)))
    d_params = init_all_stages(discriminator, d_key, lambda s: jnp.zeros((2, resolution(s), resolution(s), channels)))
    players = {
        "g": Player.from_variables({"params": g_params}, generator.apply, g_tx),
        "d": Player.from_variables({"params": d_params}, discriminator.apply, d_tx),
    }
    return TrainState.create(run_key, players, ema_decay={"g": ema_decay})


def generate(state: TrainState, z: jax.Array, stage: int, alpha: jax.Array | float, use_ema: bool = False) -> jax.Array:
    """G's images for ``z`` at ``stage`` and fade-in weight ``alpha`` (its moving average with ``use_ema``)."""
    return state.players["g"](state.params("g", use_ema), z, jnp.asarray(alpha, jnp.float32), stage, train=False)[0]
