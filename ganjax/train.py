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
from ganjax.replay import ReplayBuffer, mix

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
        params_key, noise_key, dropout_key = jax.random.split(key, 3)
        variables = module.init({"params": params_key, "noise": noise_key, "dropout": dropout_key}, *inputs,
                                train=False)
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
      replay: past fakes replayed to D (``ganjax.replay``), or None.
    """

    step: jax.Array
    g: Player
    d: Player
    key: jax.Array
    g_ema: EMA | None = None
    replay: ReplayBuffer | None = None


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
      replay_capacity: size of the buffer of past fakes (0: no replay).
      replay_share: share of D's fake batch drawn from that buffer.
      num_classes: classes of a conditional GAN (0: unconditional); batches then carry ``'label'``.
      aux_class_weight: weight of the AC-GAN class loss; D then returns ``(logit, class_logits)``
        and takes no labels, else a conditional D takes them.
      aux_fake_class_weight: weight of the fakes' term in D's class loss (1: Odena et al.'s loss;
        0: D learns classes from reals only, while G is still trained to make its fakes classifiable).
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
    replay_capacity: int = 0
    replay_share: float = 0.0
    num_classes: int = 0
    aux_class_weight: float = 0.0
    aux_fake_class_weight: float = 1.0
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
        for field in ("penalty_weight", "instance_noise_std", "instance_noise_decay_steps", "replay_capacity",
                      "num_classes", "aux_class_weight", "aux_fake_class_weight"):
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
        if not 0.0 <= self.replay_share <= 1.0:
            refuse("replay_share", f"must be in [0, 1], got {self.replay_share}")
        if (self.replay_capacity == 0) != (self.replay_share == 0):
            refuse("replay_share", f"is {self.replay_share} with replay_capacity {self.replay_capacity}: "
                                   "set both or neither")
        if self.aux_class_weight and not self.num_classes:
            refuse("aux_class_weight", "the AC-GAN class loss needs num_classes > 0")

    @property
    def d_takes_labels(self) -> bool:
        """Whether D is called with the class labels (a conditional GAN that is not an AC-GAN)."""
        return bool(self.num_classes) and not self.aux_class_weight


def create_state(key: jax.Array, generator: nn.Module, discriminator: nn.Module, image_shape: tuple[int, ...],
                 config: StepConfig, g_tx: optax.GradientTransformation | None = None,
                 d_tx: optax.GradientTransformation | None = None) -> GANState:
    """Initialises both players. Optimizers default to Adam(2e-4, b1=0.5), as in DCGAN.

    Args:
      key: the run's key; it seeds both players' init and every later step.
      generator: a module called as ``generator(z, train=...)`` (``generator(z, labels, train=...)``
        when ``config.num_classes``).
      discriminator: a module called as ``discriminator(images, train=...)`` (with labels too in a
        conditional GAN that is not an AC-GAN).
      image_shape: the shape of one example, e.g. ``(H, W, C)``.
      config: the step config (``latent_dim``, ``ema_decay``).
      g_tx: G's optimizer.
      d_tx: D's optimizer.
    """
    g_tx = g_tx or optax.adam(2e-4, b1=0.5)
    d_tx = d_tx or optax.adam(2e-4, b1=0.5)
    g_key, d_key, run_key = jax.random.split(key, 3)
    y = (jnp.zeros((2,), jnp.int32),) if config.num_classes else ()
    g = Player.create(generator, g_tx, g_key, jnp.zeros((2, config.latent_dim)), *y)
    d = Player.create(discriminator, d_tx, d_key, jnp.zeros((2, *image_shape)), *(y if config.d_takes_labels else ()))
    g_ema = EMA.create(g.params, config.ema_decay) if config.ema_decay else None
    replay = ReplayBuffer.create(config.replay_capacity, image_shape) if config.replay_capacity else None
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d, key=run_key, g_ema=g_ema, replay=replay)


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


def device_key(key: jax.Array, axis_name: str | None) -> jax.Array:
    """A key of this device's own (for draws made inside library functions, such as a penalty's)."""
    return key if axis_name is None else jax.random.fold_in(key, lax.axis_index(axis_name))


def sample_z(key: jax.Array, batch_size: int, config: StepConfig) -> jax.Array:
    """This device's latents for a batch, from ``config.latent``'s distribution (see :func:`per_device`)."""
    return per_device(latent.LATENTS[config.latent], key, (batch_size, config.latent_dim), config.axis_name)


def instance_noise(key: jax.Array, images: jax.Array, step: jax.Array, config: StepConfig) -> jax.Array:
    """``images`` plus the instance noise of this step (ganhacks trick 10); unchanged when it is off."""
    if not config.instance_noise_std:
        return images
    std = noise.instance_noise_schedule(config.instance_noise_std, config.instance_noise_decay_steps)(step)
    return images + std * per_device(jax.random.normal, key, images.shape, config.axis_name)


def mean_over_devices(tree: PyTree, axis_name: str | None) -> PyTree:
    """``lax.pmean`` over ``axis_name`` when the step runs per device; ``tree`` itself otherwise."""
    return tree if axis_name is None else lax.pmean(tree, axis_name)


# ----------------------------------------------------------------------------- the players' calls

def _g_rngs(key: jax.Array, config: StepConfig) -> dict[str, jax.Array]:
    """Keys for G's noise layers and always-on dropout (``ganjax.noise``), this device's own."""
    noise_key, dropout_key = jax.random.split(device_key(key, config.axis_name))
    return {"noise": noise_key, "dropout": dropout_key}


def run_g(g: Player, params: PyTree, z: jax.Array, y: jax.Array | None, key: jax.Array, config: StepConfig):
    """G in train mode on ``z`` (and class labels ``y`` when conditional): ``(images, batch_stats)``."""
    inputs = (z,) if y is None else (z, y)
    return g(params, *inputs, train=True, rngs=_g_rngs(key, config))


def _run_d(d: Player, params: PyTree, images: jax.Array, y: jax.Array | None, config: StepConfig, train: bool = True):
    """D on ``images``: ``(logits, class_logits or None, batch_stats)``.

    D takes the labels ``y`` in a conditional GAN; an AC-GAN's D instead
    returns class logits beside its real/fake logit.
    """
    inputs = (images, y) if config.d_takes_labels else (images,)
    out, stats = d(params, *inputs, train=train)
    logits, class_logits = out if config.aux_class_weight else (out, None)
    return logits, class_logits, stats


def _class_loss(class_logits: jax.Array, y: jax.Array) -> jax.Array:
    """The AC-GAN auxiliary loss: cross-entropy of D's class logits against the labels."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, y))


def _sample_labels(key: jax.Array, batch_size: int, config: StepConfig) -> jax.Array | None:
    """Uniform class labels for a fake batch, or None for an unconditional GAN."""
    if not config.num_classes:
        return None
    draw = lambda k, shape: jax.random.randint(k, shape, 0, config.num_classes)
    return per_device(draw, key, (batch_size,), config.axis_name)


def _fakes(g: Player, key: jax.Array, batch_size: int, config: StepConfig):
    """A fresh fake batch from G in train mode: ``(images, labels or None, G's new batch_stats)``."""
    z_key, y_key, g_key = jax.random.split(key, 3)
    y = _sample_labels(y_key, batch_size, config)
    images, stats = run_g(g, g.params, sample_z(z_key, batch_size, config), y, g_key, config)
    return lax.stop_gradient(images), y, stats


def linearized_fakes(g: Player, key: jax.Array, batch_size: int, config: StepConfig):
    """Like :func:`_fakes`, plus G's VJP function: ``(images, labels, vjp_fn, batch_stats)``."""
    z_key, y_key, g_key = jax.random.split(key, 3)
    y = _sample_labels(y_key, batch_size, config)
    z = sample_z(z_key, batch_size, config)
    images, vjp_fn, stats = jax.vjp(lambda p: run_g(g, p, z, y, g_key, config), g.params, has_aux=True)
    return images, y, vjp_fn, stats


def _replayed(replay: ReplayBuffer | None, key: jax.Array, fake: jax.Array, config: StepConfig):
    """D's fake batch with replayed past fakes mixed in, and the buffer with this batch pushed (global batch)."""
    if replay is None:
        return fake, None
    mixed = mix(replay, device_key(key, config.axis_name), fake, config.replay_share)
    pushed = fake if config.axis_name is None else lax.all_gather(fake, config.axis_name, tiled=True)
    return mixed, replay.push(pushed)


# ----------------------------------------------------------------------------- the two updates

def d_update(d: Player, real: jax.Array, real_y: jax.Array | None, fake: jax.Array, fake_y: jax.Array | None,
              key: jax.Array, step: jax.Array, config: StepConfig) -> tuple[Player, Metrics]:
    """One D update on an all-real and an all-fake batch, each its own BatchNorm call (ganhacks trick 4)."""
    loss = losses.LOSSES[config.loss]
    label_key, real_noise, fake_noise, penalty_key = jax.random.split(key, 4)
    real = instance_noise(real_noise, real, step, config)
    fake = instance_noise(fake_noise, fake, step, config)

    def loss_fn(params):
        real_logits, real_classes, stats = _run_d(d, params, real, real_y, config)
        fake_logits, fake_classes, stats = _run_d(d.replace(batch_stats=stats), params, fake, fake_y, config)
        if loss.uses_labels:
            draw = functools.partial(labels.d_labels, scheme=config.d_labels, flip_prob=config.label_flip_prob)
            targets = per_device(draw, label_key, real_logits.shape, config.axis_name)
            d_loss = loss.d(real_logits, fake_logits, targets.real, targets.fake)
        else:
            d_loss = loss.d(real_logits, fake_logits)
        parts = {"d_loss": d_loss}
        if config.penalty != "none":
            # Per-example gradients need examples scored independently: BatchNorm uses running statistics here.
            penalty_y = fake_y if config.penalty == "r2" else real_y
            critic = lambda x: _run_d(d.replace(batch_stats=stats), params, x, penalty_y, config, train=False)[0]
            parts["penalty"] = penalties.PENALTIES[config.penalty](
                critic, real, fake, device_key(penalty_key, config.axis_name))
        if config.aux_class_weight:
            parts["d_class_loss"] = (_class_loss(real_classes, real_y)
                                     + config.aux_fake_class_weight * _class_loss(fake_classes, fake_y))
        total = (d_loss + config.penalty_weight * parts.get("penalty", 0.0)
                 + config.aux_class_weight * parts.get("d_class_loss", 0.0))
        return total, (stats, real_logits, fake_logits, parts)

    (_, (stats, real_logits, fake_logits, parts)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
    grads, stats = mean_over_devices((grads, stats), config.axis_name)
    metrics = {**parts, **d_outputs(real_logits, fake_logits, loss), "d_grad_norm": optax.tree.norm(grads)}
    return d.apply_gradients(grads, stats), metrics


def d_outputs(real_logits: jax.Array, fake_logits: jax.Array, loss: losses.LossPair) -> Metrics:
    """D's mean verdict on the real and the fake batch.

    ``d_real``/``d_fake``: mean probabilities of "real" for the cross-entropy
    losses; ``d_real_score``/``d_fake_score``: mean raw scores for the others,
    whose scores are not logits of a probability (a Wasserstein critic's sigmoid
    sits at 0 or 1 and says nothing).
    """
    if loss.probabilistic:
        return {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    return {"d_real_score": jnp.mean(real_logits), "d_fake_score": jnp.mean(fake_logits)}


def _g_update(state: GANState, d: Player, real: jax.Array, real_y: jax.Array | None, fake: jax.Array,
              fake_y: jax.Array | None, g_vjp: Callable, g_stats: PyTree, key: jax.Array,
              config: StepConfig) -> tuple[GANState, Metrics]:
    """One G update through D, from G's forward output ``fake`` and its ``jax.vjp`` function."""
    loss = losses.LOSSES[config.loss]
    real_noise, fake_noise = jax.random.split(key)
    real = instance_noise(real_noise, real, state.step, config)

    def loss_fn(images):
        images = instance_noise(fake_noise, images, state.step, config)
        # D's statistics are updated in D's step only.
        fake_logits, fake_classes, _ = _run_d(d, d.params, images, fake_y, config)
        real_logits = _run_d(d, d.params, real, real_y, config)[0] if loss.g_needs_real else None
        parts = {"g_loss": loss.g(fake_logits, real_logits)}
        if config.aux_class_weight:
            parts["g_class_loss"] = _class_loss(fake_classes, fake_y)
        return parts["g_loss"] + config.aux_class_weight * parts.get("g_class_loss", 0.0), parts

    (_, parts), fake_grad = jax.value_and_grad(loss_fn, has_aux=True)(fake)
    (grads,) = g_vjp(fake_grad)
    grads, g_stats = mean_over_devices((grads, g_stats), config.axis_name)
    g = state.g.apply_gradients(grads, g_stats)
    g_ema = None if state.g_ema is None else state.g_ema.update(g.params)
    return state.replace(g=g, g_ema=g_ema), {**parts, "g_grad_norm": optax.tree.norm(grads)}


# ----------------------------------------------------------------------------- steps

def real_inputs(batch: dict[str, jax.Array], config: StepConfig) -> tuple[jax.Array, jax.Array | None]:
    """The real images and, for a conditional GAN, their labels."""
    if config.num_classes and "label" not in batch:
        raise ValueError(f"StepConfig.num_classes={config.num_classes}: the batch needs a 'label' entry")
    return batch["image"], batch["label"] if config.num_classes else None


def d_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """Updates D once on ``batch`` and a fresh fake batch of the same size (G in train mode)."""
    keys = step_keys(state, "fake", "replay", "d")
    real, real_y = real_inputs(batch, config)
    fake, fake_y, g_stats = _fakes(state.g, keys["fake"], real.shape[0], config)
    fake, replay = _replayed(state.replay, keys["replay"], fake, config)
    d, metrics = d_update(state.d, real, real_y, fake, fake_y, keys["d"], state.step, config)
    state = state.replace(step=state.step + 1, d=d, g=state.g.replace(batch_stats=g_stats), replay=replay)
    return state, mean_over_devices(metrics, config.axis_name)


def g_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """Updates G once on fresh latents, one per image of ``batch`` (whose reals only relativistic losses use)."""
    keys = step_keys(state, "fake", "g")
    real, real_y = real_inputs(batch, config)
    fake, fake_y, g_vjp, g_stats = linearized_fakes(state.g, keys["fake"], real.shape[0], config)
    state, metrics = _g_update(state, state.d, real, real_y, fake, fake_y, g_vjp, g_stats, keys["g"], config)
    return state.replace(step=state.step + 1), mean_over_devices(metrics, config.axis_name)


def train_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """``n_critic`` D updates, then one G update; G runs forward once for the last D update and its own.

    ``batch`` holds ``n_critic`` real batches stacked along the batch axis. The
    fake batch of the last D update is the one G is trained on, through the
    updated D (as in the PyTorch DCGAN example): G's forward pass is linearised
    once and reused for its update.

    Returns:
      The new state and ``{'d_loss', 'g_loss', 'd_real', 'd_fake', 'd_grad_norm',
      'g_grad_norm'}`` (plus ``'penalty'``, ``'d_class_loss'`` and
      ``'g_class_loss'`` when those are on), D's entries averaged over its
      updates; ``d_real``/``d_fake`` are D's mean probabilities of "real" on the
      real and fake batches before each update (``d_real_score``/``d_fake_score``,
      its mean raw scores, for losses without probabilities: see :func:`d_outputs`).
    """
    keys = step_keys(state, "critic", "fake", "replay", "d", "g")
    n = config.n_critic
    if batch["image"].shape[0] % n:
        raise ValueError(f"train_step: batch of {batch['image'].shape[0]} does not split into n_critic={n} batches")
    batches = jax.tree.map(lambda a: a.reshape(n, -1, *a.shape[1:]), batch)
    batch_size = batches["image"].shape[1]

    def critic_update(carry, xs):
        d, g_stats, replay = carry
        real_batch, key = xs
        fake_key, replay_key, d_key = jax.random.split(key, 3)
        real, real_y = real_inputs(real_batch, config)
        fake, fake_y, g_stats = _fakes(state.g.replace(batch_stats=g_stats), fake_key, batch_size, config)
        fake, replay = _replayed(replay, replay_key, fake, config)
        d, metrics = d_update(d, real, real_y, fake, fake_y, d_key, state.step, config)
        return (d, g_stats, replay), metrics

    # Unrolled: XLA:CPU runs convolutions inside a while loop (lax.scan) about 50 times slower.
    critic_keys = jax.random.split(keys["critic"], n - 1)
    early_batches = jax.tree.map(lambda a: a[:-1], batches)
    (d, g_stats, replay), early = lax.scan(critic_update, (state.d, state.g.batch_stats, state.replay),
                                           (early_batches, critic_keys), unroll=True)
    g = state.g.replace(batch_stats=g_stats)
    real, real_y = real_inputs(jax.tree.map(lambda a: a[-1], batches), config)
    fake, fake_y, g_vjp, g_stats = linearized_fakes(g, keys["fake"], batch_size, config)
    d_fake, replay = _replayed(replay, keys["replay"], lax.stop_gradient(fake), config)
    d, last = d_update(d, real, real_y, d_fake, fake_y, keys["d"], state.step, config)
    d_metrics = jax.tree.map(lambda e, l: (jnp.sum(e) + l) / n, early, last)
    state = state.replace(g=g, d=d, replay=replay)
    state, g_metrics = _g_update(state, d, real, real_y, fake, fake_y, g_vjp, g_stats, keys["g"], config)
    return state.replace(step=state.step + 1), mean_over_devices({**d_metrics, **g_metrics}, config.axis_name)


def jit_step(step_fn: Callable) -> Callable:
    """``step_fn`` jitted with its state donated and its ``config`` static."""
    return jax.jit(step_fn, static_argnames=("config",), donate_argnums=0)


def generate(state: GANState, z: jax.Array, labels: jax.Array | None = None, train: bool = False,
             use_ema: bool = False, rngs=None) -> jax.Array:
    """G's images for ``z`` (and class ``labels``), with BatchNorm running statistics unless ``train``.

    Args:
      state: the train state.
      z: latents ``(N, latent_dim)``.
      labels: class labels ``(N,)`` for a conditional G.
      train: use batch statistics instead of running ones.
      use_ema: use the moving average of G's params.
      rngs: keys for G's noise and dropout layers, if it has any.
    """
    params = state.g_ema.params if use_ema else state.g.params
    inputs = (z,) if labels is None else (z, labels)
    return state.g(params, *inputs, train=train, rngs=rngs)[0]
