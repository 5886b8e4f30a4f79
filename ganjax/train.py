"""The GAN train state and the D step, G step and combined train step.

All steps are pure functions ``(state, batch) -> (state, metrics)``. They are
jitted with the state donated and the :class:`StepConfig` static, so each
compiles once. Randomness comes from ``fold_in(state.key, state.step)``: the
same seed gives bit-identical runs, and a resumed run continues exactly.

The tricks of :mod:`ganjax.losses`, :mod:`ganjax.labels`, :mod:`ganjax.latent`,
:mod:`ganjax.noise` and :mod:`ganjax.penalties` are switched on by
:class:`StepConfig` fields; the defaults are DCGAN's (non-saturating loss, hard
labels, Gaussian z, no penalty, no noise, one D step per G step).

Every step runs unchanged per device under ``shard_map`` or ``pmap``: with
``StepConfig.axis_name`` set, gradients and metrics are averaged over that axis
with ``lax.pmean``, and random draws (z, labels, instance noise) are made for
the global batch and sliced per device, so no two devices draw the same and the
result does not depend on the device count.
"""

from __future__ import annotations

import dataclasses
import functools
import zlib
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from ganjax import labels, latent, losses, noise, penalties
from ganjax.optim import EMA

PyTree = Any
Metrics = dict[str, jax.Array]


class Player(struct.PyTreeNode):
    """One player (G or D): its params, BatchNorm statistics, optimizer and optimizer state."""

    params: PyTree
    batch_stats: PyTree
    opt_state: optax.OptState
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, module: nn.Module, tx: optax.GradientTransformation, key: jax.Array, *inputs) -> Player:
        """Initialises ``module`` on ``inputs`` (with ``train=False``) and ``tx`` on its params."""
        variables = module.init(key, *inputs, train=False)
        params = variables["params"]
        return cls(params=params, batch_stats=variables.get("batch_stats", {}), opt_state=tx.init(params),
                   apply_fn=module.apply, tx=tx)

    def __call__(self, params: PyTree, *inputs, train: bool, rngs=None) -> tuple[jax.Array, PyTree]:
        """Applies the module with ``params``; returns ``(output, batch_stats)``.

        In training mode the returned statistics are updated by this call; in
        evaluation mode the running statistics are used and returned unchanged.
        """
        variables = {"params": params}
        if self.batch_stats:
            variables["batch_stats"] = self.batch_stats
        if train and self.batch_stats:
            out, updates = self.apply_fn(variables, *inputs, train=True, rngs=rngs, mutable=["batch_stats"])
            return out, updates["batch_stats"]
        return self.apply_fn(variables, *inputs, train=train, rngs=rngs), self.batch_stats

    def apply_gradients(self, grads: PyTree, batch_stats: PyTree) -> Player:
        """One optimizer update; also stores the new BatchNorm statistics."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(params=optax.apply_updates(self.params, updates), opt_state=opt_state,
                            batch_stats=batch_stats)


class GANState(struct.PyTreeNode):
    """Everything a GAN run carries from step to step.

    Attributes:
      step: the number of completed train steps.
      g: the generator.
      d: the discriminator.
      key: the run's base key; step ``t`` draws from ``fold_in(key, t)``.
      g_ema: an exponential moving average of G's params for sampling, or None.
    """

    step: jax.Array
    g: Player
    d: Player
    key: jax.Array
    g_ema: EMA | None = None


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What a train step does; static under jit (hashable, compared by value).

    Values that do not fit together are refused at construction, naming the field.

    Attributes:
      latent_dim: size of z.
      latent: z's distribution, a key of :data:`ganjax.latent.LATENTS`.
      loss: a key of :data:`ganjax.losses.LOSSES`.
      d_labels: D's targets, a key of :data:`ganjax.labels.LABELS` (only for losses that take labels).
      label_flip_prob: probability of flipping each of D's targets.
      penalty: ``'none'`` or a key of :data:`ganjax.penalties.PENALTIES`.
      penalty_weight: the penalty's weight in D's loss.
      instance_noise_std: std of the Gaussian noise added to D's inputs (0: off).
      instance_noise_decay_steps: steps over which that std decays linearly to 0 (0: constant).
      n_critic: D updates per G update; ``train_step`` then takes ``n_critic`` real batches at once.
      ema_decay: decay of the moving average of G's params kept for sampling (0: none).
      axis_name: the mapped axis to average over when run per device, or None.
    """

    latent_dim: int = 100
    latent: str = "gaussian"
    loss: str = "non_saturating"
    d_labels: str = "none"
    label_flip_prob: float = 0.0
    penalty: str = "none"
    penalty_weight: float = 0.0
    instance_noise_std: float = 0.0
    instance_noise_decay_steps: int = 0
    n_critic: int = 1
    ema_decay: float = 0.0
    axis_name: str | None = None

    def __post_init__(self):
        def refuse(field, problem):
            raise ValueError(f"StepConfig.{field}: {problem}")

        for field, table in (("loss", losses.LOSSES), ("latent", latent.LATENTS), ("d_labels", labels.LABELS),
                             ("penalty", {"none": None, **penalties.PENALTIES})):
            if getattr(self, field) not in table:
                refuse(field, f"unknown name {getattr(self, field)!r}; choose one of {sorted(table)}")
        for field in ("latent_dim", "n_critic"):
            if getattr(self, field) < 1:
                refuse(field, f"must be at least 1, got {getattr(self, field)}")
        for field in ("penalty_weight", "instance_noise_std", "instance_noise_decay_steps"):
            if getattr(self, field) < 0:
                refuse(field, f"must not be negative, got {getattr(self, field)}")
        if not 0.0 <= self.label_flip_prob <= 1.0:
            refuse("label_flip_prob", f"must be a probability in [0, 1], got {self.label_flip_prob}")
        if not 0.0 <= self.ema_decay < 1.0:
            refuse("ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        if not losses.LOSSES[self.loss].uses_labels:
            if self.d_labels != "none":
                refuse("d_labels", f"{self.d_labels!r} needs a loss that takes labels; {self.loss!r} takes none")
            if self.label_flip_prob:
                refuse("label_flip_prob", f"flipping needs a loss that takes labels; {self.loss!r} takes none")
        if (self.penalty == "none") != (self.penalty_weight == 0):
            refuse("penalty_weight", f"is {self.penalty_weight} with penalty {self.penalty!r}: set both or neither")


def create_state(key: jax.Array, generator: nn.Module, discriminator: nn.Module, image_shape: tuple[int, ...],
                 config: StepConfig, g_tx: optax.GradientTransformation | None = None,
                 d_tx: optax.GradientTransformation | None = None) -> GANState:
    """Initialises both players. Optimizers default to Adam(2e-4, b1=0.5), as in DCGAN.

    Args:
      key: the run's key; it seeds both players' init and every later step.
      generator: a module called as ``generator(z, train=...)``.
      discriminator: a module called as ``discriminator(images, train=...)``.
      image_shape: the shape of one example, e.g. ``(H, W, C)``.
      config: the step config (``latent_dim``, ``ema_decay``).
      g_tx: G's optimizer.
      d_tx: D's optimizer.
    """
    g_tx = g_tx or optax.adam(2e-4, b1=0.5)
    d_tx = d_tx or optax.adam(2e-4, b1=0.5)
    g_key, d_key, run_key = jax.random.split(key, 3)
    g = Player.create(generator, g_tx, g_key, jnp.zeros((2, config.latent_dim)))
    d = Player.create(discriminator, d_tx, d_key, jnp.zeros((2, *image_shape)))
    g_ema = EMA.create(g.params, config.ema_decay) if config.ema_decay else None
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d, key=run_key, g_ema=g_ema)


# ----------------------------------------------------------------------------- randomness

def step_keys(state: GANState, *names: str) -> dict[str, jax.Array]:
    """This step's key for each name: ``fold_in(fold_in(state.key, state.step), crc32(name))``.

    A name gets the same key whichever other names are asked for, so the D
    step, the G step and the combined step draw the same z at the same step.
    """
    step_key = jax.random.fold_in(state.key, state.step)
    return {name: jax.random.fold_in(step_key, zlib.crc32(name.encode())) for name in names}


def per_device(draw: Callable[[jax.Array, tuple[int, ...]], PyTree], key: jax.Array, shape: tuple[int, ...],
               axis_name: str | None) -> PyTree:
    """``draw(key, shape)`` for this device: its slice of one draw for the global batch.

    Without an axis this is ``draw(key, shape)``; on ``n`` devices every device
    draws for the global ``(n * shape[0], ...)`` batch and keeps its own rows, so
    the result does not depend on the device count.
    """
    if axis_name is None:
        return draw(key, shape)
    n, index = lax.psum(1, axis_name), lax.axis_index(axis_name)
    draws = draw(key, (n * shape[0], *shape[1:]))
    return jax.tree.map(lambda a: lax.dynamic_slice_in_dim(a, index * shape[0], shape[0]), draws)


def per_device_normal(key: jax.Array, shape: tuple[int, ...], axis_name: str | None) -> jax.Array:
    """N(0, 1) of ``shape``, sliced per device as :func:`per_device` does."""
    return per_device(jax.random.normal, key, shape, axis_name)


def _device_key(key: jax.Array, axis_name: str | None) -> jax.Array:
    """A key of this device's own (for draws made inside library functions, such as a penalty's)."""
    return key if axis_name is None else jax.random.fold_in(key, lax.axis_index(axis_name))


def _sample_z(key, batch_size, config):
    return per_device(latent.LATENTS[config.latent], key, (batch_size, config.latent_dim), config.axis_name)


def _instance_noise(key, images, step, config):
    """``images`` plus the instance noise of this step (ganhacks trick 10); unchanged when it is off."""
    if not config.instance_noise_std:
        return images
    std = noise.instance_noise_schedule(config.instance_noise_std, config.instance_noise_decay_steps)(step)
    return images + std * per_device(jax.random.normal, key, images.shape, config.axis_name)


def _mean(tree, axis_name):
    return tree if axis_name is None else lax.pmean(tree, axis_name)


# ----------------------------------------------------------------------------- the two updates

def _d_update(d: Player, real: jax.Array, fake: jax.Array, key: jax.Array, step: jax.Array,
              config: StepConfig) -> tuple[Player, Metrics]:
    """One D update on an all-real and an all-fake batch, each its own BatchNorm call (ganhacks trick 4)."""
    loss = losses.LOSSES[config.loss]
    label_key, real_noise, fake_noise, penalty_key = jax.random.split(key, 4)
    real = _instance_noise(real_noise, real, step, config)
    fake = _instance_noise(fake_noise, fake, step, config)

    def loss_fn(params):
        real_logits, stats = d(params, real, train=True)
        fake_logits, stats = d.replace(batch_stats=stats)(params, fake, train=True)
        if loss.uses_labels:
            draw = functools.partial(labels.d_labels, scheme=config.d_labels, flip_prob=config.label_flip_prob)
            targets = per_device(draw, label_key, real_logits.shape, config.axis_name)
            d_loss = loss.d(real_logits, fake_logits, targets.real, targets.fake)
        else:
            d_loss = loss.d(real_logits, fake_logits)
        parts = {"d_loss": d_loss}
        if config.penalty != "none":
            # Per-example gradients need examples scored independently: BatchNorm uses running statistics here.
            critic = lambda x: d.replace(batch_stats=stats)(params, x, train=False)[0]
            parts["penalty"] = penalties.PENALTIES[config.penalty](
                critic, real, fake, _device_key(penalty_key, config.axis_name))
        total = d_loss + config.penalty_weight * parts.get("penalty", 0.0)
        return total, (stats, real_logits, fake_logits, parts)

    (_, (stats, real_logits, fake_logits, parts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
    grads, stats = _mean((grads, stats), config.axis_name)
    metrics = {**parts, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
               "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), "d_grad_norm": optax.tree.norm(grads)}
    return d.apply_gradients(grads, stats), metrics


def _generate_linearized(g: Player, z: jax.Array):
    """G's fake batch in train mode, its VJP function and its new BatchNorm statistics."""
    return jax.vjp(lambda p: g(p, z, train=True), g.params, has_aux=True)


def _g_update(state: GANState, d: Player, real: jax.Array, fake: jax.Array, g_vjp: Callable, g_stats: PyTree,
              key: jax.Array, config: StepConfig) -> tuple[GANState, Metrics]:
    """One G update through D, from G's forward output ``fake`` and its ``jax.vjp`` function."""
    loss = losses.LOSSES[config.loss]
    real_noise, fake_noise = jax.random.split(key)
    real = _instance_noise(real_noise, real, state.step, config)

    def loss_fn(images):
        images = _instance_noise(fake_noise, images, state.step, config)
        fake_logits, _ = d(d.params, images, train=True)  # D's statistics are updated in D's step only.
        real_logits = d(d.params, real, train=True)[0] if loss.g_needs_real else None
        return loss.g(fake_logits, real_logits)

    g_loss, fake_grad = jax.value_and_grad(loss_fn)(fake)
    (grads,) = g_vjp(fake_grad)
    grads, g_stats = _mean((grads, g_stats), config.axis_name)
    g = state.g.apply_gradients(grads, g_stats)
    g_ema = None if state.g_ema is None else state.g_ema.update(g.params)
    return state.replace(g=g, g_ema=g_ema), {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(grads)}


# ----------------------------------------------------------------------------- steps

def d_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """Updates D once on ``batch['image']`` and a fresh fake batch of the same size (G in train mode)."""
    keys = step_keys(state, "z", "d")
    real = batch["image"]
    fake, g_stats = state.g(state.g.params, _sample_z(keys["z"], real.shape[0], config), train=True)
    d, metrics = _d_update(state.d, real, lax.stop_gradient(fake), keys["d"], state.step, config)
    state = state.replace(step=state.step + 1, d=d, g=state.g.replace(batch_stats=g_stats))
    return state, _mean(metrics, config.axis_name)


def g_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """Updates G once on fresh latents, one per image of ``batch`` (whose reals only relativistic losses use)."""
    keys = step_keys(state, "z", "g")
    real = batch["image"]
    fake, g_vjp, g_stats = _generate_linearized(state.g, _sample_z(keys["z"], real.shape[0], config))
    state, metrics = _g_update(state, state.d, real, fake, g_vjp, g_stats, keys["g"], config)
    return state.replace(step=state.step + 1), _mean(metrics, config.axis_name)


def train_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """``n_critic`` D updates, then one G update; G runs forward once for the last D update and its own.

    ``batch['image']`` holds ``n_critic`` real batches stacked along the batch
    axis. The fake batch of the last D update is the one G is trained on,
    through the updated D (as in the PyTorch DCGAN example): G's forward pass is
    linearised once and reused for its update.

    Returns:
      The new state and ``{'d_loss', 'g_loss', 'd_real', 'd_fake', 'd_grad_norm',
      'g_grad_norm'}`` (plus ``'penalty'`` when one is on), D's entries averaged
      over its updates; ``d_real``/``d_fake`` are D's mean probabilities of
      "real" on the real and fake batches before each update.
    """
    keys = step_keys(state, "critic", "z", "d", "g")
    reals = batch["image"]
    if reals.shape[0] % config.n_critic:
        raise ValueError(f"train_step: batch of {reals.shape[0]} does not split into n_critic={config.n_critic} batches")
    reals = reals.reshape(config.n_critic, -1, *reals.shape[1:])
    batch_size = reals.shape[1]

    def critic_update(carry, xs):
        d, g_stats = carry
        real, key = xs
        z_key, d_key = jax.random.split(key)
        fake, g_stats = state.g.replace(batch_stats=g_stats)(state.g.params, _sample_z(z_key, batch_size, config),
                                                            train=True)
        d, metrics = _d_update(d, real, lax.stop_gradient(fake), d_key, state.step, config)
        return (d, g_stats), metrics

    # Unrolled: XLA:CPU runs convolutions inside a while loop (lax.scan) about 50 times slower.
    critic_keys = jax.random.split(keys["critic"], config.n_critic - 1)
    (d, g_stats), early = lax.scan(critic_update, (state.d, state.g.batch_stats), (reals[:-1], critic_keys),
                                   unroll=True)
    g = state.g.replace(batch_stats=g_stats)
    fake, g_vjp, g_stats = _generate_linearized(g, _sample_z(keys["z"], batch_size, config))
    d, last = _d_update(d, reals[-1], lax.stop_gradient(fake), keys["d"], state.step, config)
    d_metrics = jax.tree.map(lambda e, l: (jnp.sum(e) + l) / config.n_critic, early, last)
    state, g_metrics = _g_update(state.replace(g=g, d=d), d, reals[-1], fake, g_vjp, g_stats, keys["g"], config)
    return state.replace(step=state.step + 1), _mean({**d_metrics, **g_metrics}, config.axis_name)


def jit_step(step_fn: Callable) -> Callable:
    """``step_fn`` jitted with its state donated and its ``config`` static."""
    return jax.jit(step_fn, static_argnames=("config",), donate_argnums=0)


def generate(state: GANState, z: jax.Array, train: bool = False, use_ema: bool = False, rngs=None) -> jax.Array:
    """G's images for ``z``, with BatchNorm running statistics unless ``train``; EMA params if ``use_ema``."""
    params = state.g_ema.params if use_ema else state.g.params
    return state.g(params, z, train=train, rngs=rngs)[0]
