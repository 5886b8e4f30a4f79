"""CycleGAN's train state and step (Zhu, Park, Isola and Efros 2017, Unpaired Image-to-Image Translation).

Two generators ``G_ab: A -> B`` and ``G_ba: B -> A`` and two discriminators
``D_a`` and ``D_b``, each a :class:`ganjax.train.Player` with its own optimizer.
One step updates both generators on

``L_G = LS(D_b(G_ab(a))) + LS(D_a(G_ba(b)))
      + lambda_cyc (|G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1)
      + lambda_id (|G_ba(a) - a|_1 + |G_ab(b) - b|_1)``

(least-squares adversarial terms, :func:`ganjax.losses.least_squares_g_loss`;
lambda_cyc 10, lambda_id 0.5 * lambda_cyc), then each D on its real images and
a fake batch half of which is drawn from a pool of its 50 most recent fakes
(:mod:`ganjax.replay`, after Shrivastava et al. 2017), with the least-squares D
loss. :func:`ganjax.optim.linear_decay` is the paper's learning rate: constant
for the first half, then linearly to 0. Batches carry both domains: ``{'a': ..., 'b': ...}``.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax import lax

from ganjax import losses
from ganjax.replay import ReplayBuffer, mix
from ganjax.train import Metrics, Player, device_key, mean_over_devices, step_keys


class CycleState(struct.PyTreeNode):
    """Everything a CycleGAN run carries from step to step.

    Attributes:
      step: completed train steps.
      g_ab, g_ba: the generators A -> B and B -> A.
      d_a, d_b: the discriminators of domains A and B.
      pool_a, pool_b: past fakes of domain A (from ``g_ba``) and of domain B (from ``g_ab``).
      key: the run's base key; step ``t`` draws from ``fold_in(key, t)``.
    """

    step: jax.Array
    g_ab: Player
    g_ba: Player
    d_a: Player
    d_b: Player
    pool_a: ReplayBuffer
    pool_b: ReplayBuffer
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The weights of the CycleGAN step; static under jit.

    Attributes:
      cycle_weight: lambda_cyc, the weight of the cycle-consistency L1 losses.
      identity_weight: lambda_id, the weight of the identity L1 losses (0.5 * lambda_cyc in the paper).
      pool_share: share of each D's fake batch drawn from its pool.
      axis_name: the mapped axis to average over when run per device, or None.
    """

    cycle_weight: float = 10.0
    identity_weight: float = 5.0
    pool_share: float = 0.5
    axis_name: str | None = None


def create_state(key: jax.Array, generator: nn.Module, discriminator: nn.Module, image_shape: tuple[int, ...],
                 tx: optax.GradientTransformation, pool_size: int = 50) -> CycleState:
    """Both generators (one architecture) and both discriminators, each with its own copy of ``tx``'s state.

    Args:
      key: seeds the four inits and every later step.
      generator: maps a batch of either domain to the other (same image shape).
      discriminator: maps images to patch logits.
      image_shape: ``(H, W, C)`` of both domains.
      tx: every player's optimizer (Adam(2e-4, b1=0.5) with :func:`ganjax.optim.linear_decay` in the paper).
      pool_size: images in each pool of past fakes.
    """
    keys = jax.random.split(key, 5)
    example = jnp.zeros((2, *image_shape))
    g_ab, g_ba = (Player.create(generator, tx, k, example) for k in keys[:2])
    d_a, d_b = (Player.create(discriminator, tx, k, example) for k in keys[2:4])
    pool_a, pool_b = (ReplayBuffer.create(pool_size, image_shape) for _ in range(2))  # two buffers: both are donated
    return CycleState(step=jnp.zeros((), jnp.int32), g_ab=g_ab, g_ba=g_ba, d_a=d_a, d_b=d_b, pool_a=pool_a,
                      pool_b=pool_b, key=keys[4])


def _l1(x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.abs(x - y))


def generator_losses(g_params: tuple, state: CycleState, a: jax.Array, b: jax.Array,
                     config: StepConfig) -> tuple[jax.Array, tuple[dict, tuple[jax.Array, jax.Array]]]:
    """``L_G`` for the params ``(g_ab, g_ba)``; aux: its parts and the fakes ``(G_ab(a), G_ba(b))``."""
    ab_params, ba_params = g_params
    g_ab = lambda x: state.g_ab(ab_params, x, train=True)[0]
    g_ba = lambda x: state.g_ba(ba_params, x, train=True)[0]
    fake_b, fake_a = g_ab(a), g_ba(b)
    adversarial = (losses.least_squares_g_loss(state.d_b(state.d_b.params, fake_b, train=True)[0])
                   + losses.least_squares_g_loss(state.d_a(state.d_a.params, fake_a, train=True)[0]))
    parts = {"g_loss": adversarial, "cycle_loss": _l1(g_ba(fake_b), a) + _l1(g_ab(fake_a), b)}
    if config.identity_weight:
        parts["identity_loss"] = _l1(g_ba(a), a) + _l1(g_ab(b), b)
    total = adversarial + config.cycle_weight * parts["cycle_loss"] + config.identity_weight * parts.get(
        "identity_loss", 0.0)
    return total, (parts, (fake_b, fake_a))


def _d_update(d: Player, real: jax.Array, fake: jax.Array, axis_name: str | None) -> tuple[Player, jax.Array]:
    def loss_fn(params):
        return losses.least_squares_d_loss(d(params, real, train=True)[0], d(params, fake, train=True)[0])

    loss, grads = jax.value_and_grad(loss_fn)(d.params)
    return d.apply_gradients(mean_over_devices(grads, axis_name), d.batch_stats), loss


def _pooled(pool: ReplayBuffer, key: jax.Array, fake: jax.Array, config: StepConfig):
    """D's fake batch with ``pool_share`` of it from the pool, and the pool with this (global) batch pushed."""
    mixed = mix(pool, device_key(key, config.axis_name), fake, config.pool_share)
    pushed = fake if config.axis_name is None else lax.all_gather(fake, config.axis_name, tiled=True)
    return mixed, pool.push(pushed)


def train_step(state: CycleState, batch: dict[str, jax.Array], config: StepConfig) -> tuple[CycleState, Metrics]:
    """One update of both generators, then of both discriminators on pooled fakes.

    Returns:
      The new state and ``{'g_loss', 'cycle_loss', 'identity_loss', 'd_loss',
      'd_a_loss', 'd_b_loss', 'g_grad_norm'}`` (``identity_loss`` only with a
      positive weight); ``g_loss`` is the adversarial part, ``d_loss`` the mean
      of the two D losses.
    """
    keys = step_keys(state, "pool_a", "pool_b")
    a, b = batch["a"], batch["b"]
    g_params = (state.g_ab.params, state.g_ba.params)
    (_, (parts, (fake_b, fake_a))), grads = jax.value_and_grad(generator_losses, has_aux=True)(
        g_params, state, a, b, config)
    grads = mean_over_devices(grads, config.axis_name)
    g_ab = state.g_ab.apply_gradients(grads[0], state.g_ab.batch_stats)
    g_ba = state.g_ba.apply_gradients(grads[1], state.g_ba.batch_stats)
    fake_a, pool_a = _pooled(state.pool_a, keys["pool_a"], lax.stop_gradient(fake_a), config)
    fake_b, pool_b = _pooled(state.pool_b, keys["pool_b"], lax.stop_gradient(fake_b), config)
    d_a, d_a_loss = _d_update(state.d_a, a, fake_a, config.axis_name)
    d_b, d_b_loss = _d_update(state.d_b, b, fake_b, config.axis_name)
    metrics = {**parts, "d_a_loss": d_a_loss, "d_b_loss": d_b_loss, "d_loss": 0.5 * (d_a_loss + d_b_loss),
               "g_grad_norm": optax.tree.norm(grads)}
    state = state.replace(step=state.step + 1, g_ab=g_ab, g_ba=g_ba, d_a=d_a, d_b=d_b, pool_a=pool_a, pool_b=pool_b)
    return state, mean_over_devices(metrics, config.axis_name)


def translate(state: CycleState, images: jax.Array, direction: str) -> jax.Array:
    """``images`` through ``G_ab`` (``direction='ab'``) or ``G_ba`` (``'ba'``), in evaluation mode."""
    g = {"ab": state.g_ab, "ba": state.g_ba}[direction]
    return g(g.params, images, train=False)[0]
