"""Optimizers for the two players as optax transforms and chains.

Each player gets its own chain, and its own optimizer state::

    [clip_by_global_norm] -> [add_noise] -> adam | optimistic adam | sgd | rmsprop

The raw gradient norm, before clipping, is a metric of every player update
(``{phase}_grad_norm``, :func:`ganjax.training.phases.update_players`) that the
monitor watches (ganhacks #10 "Track failures early": "check norms of gradients").
:func:`gan_optimizers` builds both chains from the experiment config's
``g_optimizer``, ``d_optimizer``, ``lr_g``, ``lr_d`` (constants or schedules such as
:func:`linear_decay`), ``grad_clip``, ``grad_noise`` and ``optimistic``. Two
tricks are settings of it: SGD for D and Adam for G (ganhacks #9 "Use the ADAM
Optimizer": "Use SGD for discriminator and ADAM for generator") is
``d_optimizer='sgd'`` (``--optim.d-optimizer sgd``), and the two time-scale
update rule (Heusel et al. 2017, GANs Trained by a Two Time-Scale Update Rule;
SAGAN's Adam lr_D 4e-4, lr_G 1e-4, b1 0, b2 0.9) is ``lr_d > lr_g``
(``--optim.lr-d 4e-4 --optim.lr-g 1e-4``). The EMA of G's weights
(:class:`EMA`) lives beside the optimizer, in the train state.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

PyTree = Any


def _base(
    name: str, learning_rate: optax.ScalarOrSchedule, b1: float, b2: optax.ScalarOrSchedule, optimistic: bool
) -> optax.GradientTransformation:
    """The update rule of one player: optimistic variants where asked (Daskalakis et al. 2018).

    A scheduled ``b2`` is re-read at every update by ``optax.inject_hyperparams``, which keeps the
    hyperparameters' current values in the optimizer state (``opt_state.hyperparams['b2']``).
    """
    if name == "adam":
        adam = optax.optimistic_adam_v2 if optimistic else optax.adam
        if callable(b2):
            adam = optax.inject_hyperparams(adam)
        return adam(learning_rate, b1=b1, b2=b2)
    if callable(b2):
        raise ValueError(f"a scheduled b2 is Adam's; optimizer {name!r} has none")
    if name == "sgd":
        return optax.optimistic_gradient_descent(learning_rate) if optimistic else optax.sgd(learning_rate)
    if name == "rmsprop" and not optimistic:
        return optax.rmsprop(learning_rate)
    raise ValueError(f"unknown optimizer {name!r} (optimistic={optimistic}); choose 'adam', 'sgd' or 'rmsprop'")


def player_optimizer(
    name: str,
    learning_rate: optax.ScalarOrSchedule,
    *,
    b1: float = 0.5,
    b2: optax.ScalarOrSchedule = 0.999,
    grad_clip: float | None = None,
    grad_noise: float | None = None,
    key: jax.Array | None = None,
    optimistic: bool = False,
) -> optax.GradientTransformation:
    """One player's chain: optional clipping and gradient noise, then the update rule.

    Args:
      name: ``'adam'`` (Radford et al. 2015: lr 2e-4, b1 0.5), ``'sgd'`` or
        ``'rmsprop'`` (Arjovsky et al. 2017 train WGAN's critic with RMSprop).
      learning_rate: a float or an optax schedule.
      b1, b2: Adam's moment decays; ``b2`` may be an optax schedule of the player's updates
        (R3GAN anneals it from 0.9 to 0.99, Huang et al. 2024).
      grad_clip: if set, ``optax.clip_by_global_norm(grad_clip)``.
      grad_noise: if set, ``optax.add_noise(grad_noise, 0.55, key)``: Gaussian
        gradient noise of variance ``grad_noise / (1 + t)^0.55`` (Neelakantan
        et al. 2015).
      key: the noise's key, required with ``grad_noise``.
      optimistic: optimistic Adam / optimistic gradient descent (Daskalakis et
        al. 2018, Training GANs with Optimism), which damps the rotation of
        the game.
    """
    parts = []
    if grad_clip is not None:
        parts.append(optax.clip_by_global_norm(grad_clip))
    if grad_noise is not None:
        if key is None:
            raise ValueError("player_optimizer: grad_noise needs a key")
        parts.append(optax.add_noise(grad_noise, 0.55, key))
    parts.append(_base(name, learning_rate, b1, b2, optimistic))
    return optax.chain(*parts)


def cosine_anneal(base: float, final: float, steps: int) -> optax.Schedule:
    """``final + (base - final) (1 + cos(pi min(t / steps, 1))) / 2``: from ``base`` at 0 to ``final`` at ``steps``.

    Down or up: R3GAN anneals its learning rates and penalty weight down and
    Adam's ``b2`` and G's EMA half-life up with it, over the whole run.
    ``optax.cosine_decay_schedule`` of ``base - final``, shifted by ``final``
    (its ``alpha`` cannot start from 0, as the EMA half-life does).

    Example:
      >>> schedule = cosine_anneal(0.9, 0.99, steps=100)
      >>> [round(float(schedule(t)), 4) for t in (0, 50, 100, 200)]
      [0.9, 0.945, 0.99, 0.99]

    References:
      Huang, Gokaslan, Kuleshov and Tompkin 2024, The GAN is dead; long live the GAN!
      A Modern GAN Baseline (R3GAN); Loshchilov and Hutter 2017, SGDR.
    """
    if steps < 1:
        raise ValueError(f"cosine_anneal: steps must be at least 1, got {steps}")
    cosine = optax.cosine_decay_schedule(base - final, steps)
    return lambda t: final + cosine(t)


def half_life_decay(half_life: optax.ScalarOrSchedule, batch_size: int) -> float | optax.Schedule:
    """The EMA decay per step whose half-life is ``half_life`` images: ``0.5 ** (batch_size / half_life)``.

    A schedule of half-lives gives a schedule of decays; a half-life of 0 gives
    decay 0 (the average is the current weights).

    Example:
      >>> half_life_decay(6400.0, batch_size=64)  # 100 steps to halve a weight
      0.9930924954370359

    References:
      Karras et al. 2020 (StyleGAN2-ADA): ``ema_kimg``, the EMA's half-life in images.
    """
    if callable(half_life):
        return lambda t: 0.5 ** (batch_size / half_life(t))
    return 0.5 ** (batch_size / half_life)


def linear_decay(learning_rate: float, total_steps: int) -> optax.Schedule:
    """``learning_rate`` for the first half of ``total_steps``, then linearly down to 0 at the end.

    References:
      Zhu et al. 2017 (CycleGAN): constant for 100 epochs, then linearly to 0 over 100 more.
    """
    half = total_steps // 2
    return optax.join_schedules(
        [optax.constant_schedule(learning_rate), optax.linear_schedule(learning_rate, 0.0, max(total_steps - half, 1))],
        [half],
    )


class GANOptimizers(NamedTuple):
    """G's and D's optimizers (each player keeps its own state)."""

    g: optax.GradientTransformation
    d: optax.GradientTransformation


def gan_optimizers(
    lr_g: optax.ScalarOrSchedule = 2e-4,
    lr_d: optax.ScalarOrSchedule = 2e-4,
    *,
    g_optimizer: str = "adam",
    d_optimizer: str = "adam",
    b1: float = 0.5,
    b2: optax.ScalarOrSchedule = 0.999,
    b2_d: optax.ScalarOrSchedule | None = None,
    grad_clip: float | None = None,
    grad_noise: float | None = None,
    optimistic: bool = False,
    key: jax.Array | None = None,
) -> GANOptimizers:
    """Both players' chains from the experiment config; the defaults are DCGAN's Adam(2e-4, b1=0.5).

    SGD for D and Adam for G is ``d_optimizer='sgd'`` (ganhacks #9); the two
    time-scale update rule is ``lr_d > lr_g`` (Heusel et al. 2017), as in the example.

    ``key`` seeds the gradient noise (split between the players); the other
    options are those of :func:`player_optimizer`, shared by both players,
    except D's ``b2`` where ``b2_d`` is given: a schedule counts its player's own
    updates, and D may take several per step.

    Example:
      >>> tx = gan_optimizers(lr_g=1e-4, lr_d=4e-4, grad_clip=10.0)
      >>> params = {"w": jnp.ones(3)}
      >>> updates, _ = tx.d.update({"w": jnp.full(3, 100.0)}, tx.d.init(params), params)
      >>> round(float(updates["w"][0]), 6)  # Adam's first step: -lr whatever the clipped size
      -0.0004
    """
    g_key, d_key = jax.random.split(key) if key is not None else (None, None)
    common = dict(b1=b1, grad_clip=grad_clip, grad_noise=grad_noise, optimistic=optimistic)
    return GANOptimizers(
        g=player_optimizer(g_optimizer, lr_g, b2=b2, key=g_key, **common),
        d=player_optimizer(d_optimizer, lr_d, b2=b2 if b2_d is None else b2_d, key=d_key, **common),
    )


def ema_update(ema_params: PyTree, params: PyTree, decay: float | jax.Array) -> PyTree:
    """One step of the exponential moving average ``decay * ema + (1 - decay) * params``.

    References:
      Yazıcı et al. 2019, The Unusual Effectiveness of Averaging in GAN Training;
      Karras et al. 2018 (PGGAN).
    """
    return optax.incremental_update(params, ema_params, 1.0 - decay)


class EMA(struct.PyTreeNode):
    """An exponential moving average of G's weights, for sampling and evaluation, debiased from its start.

    After ``n`` updates it is ``sum_k w_k params_k`` with weights proportional
    to ``decay^(n - k)`` over the ``n`` updates only: the debiasing of Adam's
    moments (Kingma and Ba 2015), applied to the average itself, so the
    initial weights it was created from carry no weight once it has been
    updated. (A plain average started at G's initial weights keeps
    ``decay^n`` of them: 5% after 3,000 steps at 0.999, enough to pull a 2D
    G's samples 0.05 towards the origin.) Average ``{'params': ...,
    'batch_stats': ...}`` to keep G's BatchNorm statistics in step with its
    averaged weights.

    ``decay`` may also be a schedule of the update count ``beta_k`` (R3GAN's
    EMA half-life, annealed up from 0 with :func:`cosine_anneal` and turned into
    decays by :func:`half_life_decay`). The average then is ``m_n / (1 - prod_k
    beta_k)`` of ``m_n = beta_n m_{n-1} + (1 - beta_n) params_n``: the
    debiasing divides by the weight the updates hold, which for a varying
    decay is ``1 - prod_k beta_k``. A schedule must start at decay 0 (a
    half-life of 0): the first update then replaces the start, the product is
    0 from then on and the debiased average is the plain one, ``avg_n = beta_n
    avg_{n-1} + (1 - beta_n) params_n``, with nothing to carry but the count.

    Example:
      >>> ema = EMA.create({"w": jnp.zeros(2)}, decay=0.9)
      >>> ema = ema.update({"w": jnp.ones(2)})  # after every G step
      >>> [round(w, 4) for w in ema.params["w"].tolist()]  # the first update replaces the start
      [1.0, 1.0]
      >>> [round(w, 4) for w in ema.update({"w": jnp.zeros(2)}).params["w"].tolist()]  # weights 0.9 : 1
      [0.4737, 0.4737]
      >>> ramp = EMA.create({"w": jnp.zeros(2)}, decay=lambda n: jnp.minimum(0.5 * n, 0.9))  # 0, 0.5, 0.9, ...
      >>> [round(w, 4) for w in ramp.update({"w": jnp.ones(2)}).update({"w": jnp.zeros(2)}).params["w"].tolist()]
      [0.5, 0.5]
    """

    params: PyTree
    count: jax.Array
    decay: float | optax.Schedule = struct.field(pytree_node=False)

    @classmethod
    def create(cls, params: PyTree, decay: float | optax.Schedule) -> EMA:
        """Starts the average at a copy of ``params`` (a copy, so the train step may donate both)."""
        if callable(decay):
            if float(decay(0)) != 0.0:
                raise ValueError(f"a scheduled EMA decay must start at 0 (a half-life of 0), got {float(decay(0))}")
        elif not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        return cls(params=jax.tree.map(jnp.copy, params), count=jnp.zeros((), jnp.int32), decay=decay)

    def update(self, params: PyTree) -> EMA:
        """The average after one more step of ``params``.

        The debiased average ``m_n / (1 - decay^n)`` of ``m_n = decay m_{n-1} + (1 - decay) params_n``
        obeys ``avg_n = avg_{n-1} + (params_n - avg_{n-1}) (1 - decay) / (1 - decay^n)``; a scheduled
        decay, 0 at the first update, gives ``1 - decay_n`` (see the class).
        """
        count = self.count + 1
        if callable(self.decay):
            decay = self.decay(self.count)
        elif self.decay:
            # 1 - decay^n as -expm1(n log decay): accurate in float32 for decays near 1.
            decay = 1.0 - (1.0 - self.decay) / -jnp.expm1(count * math.log(self.decay))
        else:
            decay = 0.0
        return self.replace(params=ema_update(self.params, params, decay), count=count)
