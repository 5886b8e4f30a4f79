"""The GAN train state and the D step, G step and combined train step.

All steps are pure functions ``(state, batch) -> (state, metrics)``. They are
jitted with the state donated and the :class:`StepConfig` static, so each
compiles once. Randomness comes from ``fold_in(state.key, state.step)``: the
same seed gives bit-identical runs, and a resumed run continues exactly.

Every step runs unchanged per device under ``shard_map`` or ``pmap``: with
``StepConfig.axis_name`` set, gradients and metrics are averaged over that axis
with ``lax.pmean``, and random draws are made for the global batch and sliced
per device, so no two devices draw the same z.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from ganjax import losses

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
    """

    step: jax.Array
    g: Player
    d: Player
    key: jax.Array


class GANLoss(NamedTuple):
    """A D loss ``(real_logits, fake_logits) -> scalar`` and a G loss ``(fake_logits) -> scalar``."""

    d: Callable[..., jax.Array]
    g: Callable[..., jax.Array]


LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(losses.minimax_d_loss, losses.minimax_g_loss),
    "non_saturating": GANLoss(losses.minimax_d_loss, losses.non_saturating_g_loss),
}


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """What a train step does; static under jit (hashable, compared by value).

    Attributes:
      latent_dim: size of z.
      loss: a key of :data:`LOSSES`.
      axis_name: the mapped axis to average over when run per device, or None.
    """

    latent_dim: int = 100
    loss: str = "non_saturating"
    axis_name: str | None = None

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"StepConfig.loss: unknown loss {self.loss!r}; choose one of {sorted(LOSSES)}")
        if self.latent_dim <= 0:
            raise ValueError(f"StepConfig.latent_dim must be positive, got {self.latent_dim}")


def create_state(key: jax.Array, generator: nn.Module, discriminator: nn.Module, image_shape: tuple[int, ...],
                 config: StepConfig, g_tx: optax.GradientTransformation | None = None,
                 d_tx: optax.GradientTransformation | None = None) -> GANState:
    """Initialises both players. Optimizers default to Adam(2e-4, b1=0.5), as in DCGAN.

    Args:
      key: the run's key; it seeds both players' init and every later step.
      generator: a module called as ``generator(z, train=...)``.
      discriminator: a module called as ``discriminator(images, train=...)``.
      image_shape: ``(H, W, C)`` of one image.
      config: the step config (for ``latent_dim``).
      g_tx: G's optimizer.
      d_tx: D's optimizer.
    """
    g_tx = g_tx or optax.adam(2e-4, b1=0.5)
    d_tx = d_tx or optax.adam(2e-4, b1=0.5)
    g_key, d_key, run_key = jax.random.split(key, 3)
    g = Player.create(generator, g_tx, g_key, jnp.zeros((2, config.latent_dim)))
    d = Player.create(discriminator, d_tx, d_key, jnp.zeros((2, *image_shape)))
    return GANState(step=jnp.zeros((), jnp.int32), g=g, d=d, key=run_key)


# ----------------------------------------------------------------------------- helpers

def step_keys(state: GANState, *names: str) -> dict[str, jax.Array]:
    """Independent keys for this step, one per name, from ``fold_in(state.key, state.step)``."""
    keys = jax.random.split(jax.random.fold_in(state.key, state.step), len(names))
    return dict(zip(names, keys))


def per_device_normal(key: jax.Array, shape: tuple[int, ...], axis_name: str | None) -> jax.Array:
    """N(0, 1) of ``shape`` for this device: the device's slice of one draw for the global batch.

    Without an axis this is ``jax.random.normal(key, shape)``; on ``n`` devices
    every device draws the ``(n * shape[0], ...)`` global array and keeps its own
    rows, so the result does not depend on the device count.
    """
    if axis_name is None:
        return jax.random.normal(key, shape)
    n, index = lax.psum(1, axis_name), lax.axis_index(axis_name)
    draws = jax.random.normal(key, (n * shape[0], *shape[1:]))
    return lax.dynamic_slice_in_dim(draws, index * shape[0], shape[0])


def _mean(tree, axis_name):
    return tree if axis_name is None else lax.pmean(tree, axis_name)


def _d_update(d: Player, real: jax.Array, fake: jax.Array, config: StepConfig) -> tuple[Player, Metrics]:
    """One D update on an all-real and an all-fake batch, each its own BatchNorm call (ganhacks trick 4)."""
    loss = LOSSES[config.loss]

    def loss_fn(params):
        real_logits, stats = d(params, real, train=True)
        fake_logits, stats = d.replace(batch_stats=stats)(params, fake, train=True)
        return loss.d(real_logits, fake_logits), (stats, real_logits, fake_logits)

    (d_loss, (stats, real_logits, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
    grads, stats = _mean((grads, stats), config.axis_name)
    metrics = {"d_loss": d_loss, "d_real": jnp.mean(jax.nn.sigmoid(real_logits)),
               "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits)), "d_grad_norm": optax.tree.norm(grads)}
    return d.apply_gradients(grads, stats), metrics


def _g_update(g: Player, d: Player, fake: jax.Array, g_vjp: Callable, g_stats: PyTree,
              config: StepConfig) -> tuple[Player, Metrics]:
    """One G update through D, from G's forward output ``fake`` and its ``jax.vjp`` function."""
    loss = LOSSES[config.loss]

    def loss_fn(images):
        fake_logits, _ = d(d.params, images, train=True)  # D's statistics are updated in D's step only.
        return loss.g(fake_logits)

    g_loss, fake_grad = jax.value_and_grad(loss_fn)(fake)
    (grads,) = g_vjp(fake_grad)
    grads, g_stats = _mean((grads, g_stats), config.axis_name)
    return g.apply_gradients(grads, g_stats), {"g_loss": g_loss, "g_grad_norm": optax.tree.norm(grads)}


def _generate_linearized(g: Player, z: jax.Array):
    """G's fake batch in train mode, its VJP function and its new BatchNorm statistics."""
    return jax.vjp(lambda p: g(p, z, train=True), g.params, has_aux=True)


# ----------------------------------------------------------------------------- steps

def _batch_size(batch) -> int:
    return batch["image"].shape[0]


def d_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """Updates D once on ``batch['image']`` and a fresh fake batch of the same size (G in train mode)."""
    keys = step_keys(state, "z")
    z = per_device_normal(keys["z"], (_batch_size(batch), config.latent_dim), config.axis_name)
    fake, g_stats = state.g(state.g.params, z, train=True)
    d, metrics = _d_update(state.d, batch["image"], lax.stop_gradient(fake), config)
    state = state.replace(step=state.step + 1, d=d, g=state.g.replace(batch_stats=g_stats))
    return state, _mean(metrics, config.axis_name)


def g_step(state: GANState, batch_size: int, config: StepConfig) -> tuple[GANState, Metrics]:
    """Updates G once on a fresh batch of ``batch_size`` latents (per device)."""
    keys = step_keys(state, "z")
    z = per_device_normal(keys["z"], (batch_size, config.latent_dim), config.axis_name)
    g, metrics = _g_update(state.g, state.d, *_generate_linearized(state.g, z), config)
    return state.replace(step=state.step + 1, g=g), _mean(metrics, config.axis_name)


def train_step(state: GANState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[GANState, Metrics]:
    """One D update then one G update, G running forward once (as in the PyTorch DCGAN example).

    The fake batch that trains D is the one G is trained on, through the
    updated D: G's forward pass is linearised once and reused for its update.

    Returns:
      The new state and ``{'d_loss', 'g_loss', 'd_real', 'd_fake', 'd_grad_norm',
      'g_grad_norm'}``, where ``d_real``/``d_fake`` are D's mean probabilities of
      "real" on the real and fake batches before D's update.
    """
    keys = step_keys(state, "z")
    z = per_device_normal(keys["z"], (_batch_size(batch), config.latent_dim), config.axis_name)
    fake, g_vjp, g_stats = _generate_linearized(state.g, z)
    d, d_metrics = _d_update(state.d, batch["image"], lax.stop_gradient(fake), config)
    g, g_metrics = _g_update(state.g, d, fake, g_vjp, g_stats, config)
    state = state.replace(step=state.step + 1, g=g, d=d)
    return state, _mean({**d_metrics, **g_metrics}, config.axis_name)


def jit_step(step_fn: Callable) -> Callable:
    """``step_fn`` jitted with its state donated and its ``config`` static."""
    return jax.jit(step_fn, static_argnames=("config",), donate_argnums=0)


def generate(state: GANState, z: jax.Array, train: bool = False, rngs=None) -> jax.Array:
    """G's images for ``z`` (by default with BatchNorm running statistics)."""
    return state.g(state.g.params, z, train=train, rngs=rngs)[0]
