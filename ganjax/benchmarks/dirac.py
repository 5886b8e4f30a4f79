"""The Dirac-GAN: the smallest GAN whose training dynamics show whether a method converges.

Real data is a point mass at 0, G a point mass at ``theta`` and D the linear
``D(x) = psi * x``; the only equilibrium is ``(theta, psi) = (0, 0)``. The
protocol of Mescheder et al. 2018 (section 2 and figure 3) starts both players
at ``(1, 1)`` and runs gradient steps of size ``h`` (here the optimizers'
learning rate, ``h = 0.2`` in the paper), simultaneous or alternating, and
reads off how far ``(theta, psi)`` ends from the equilibrium: unregularised GAN
and WGAN training circle or spiral out, R1 and R2 (``gamma > 0``) converge.

References:
  Mescheder, Geiger & Nowozin 2018, Which Training Methods for GANs do actually Converge?
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from ganjax import losses, penalties

REAL = jnp.zeros((1, 1))
"""The real batch: one point at 0."""


def _d_fn(psi: jax.Array):
    return lambda x: psi * x[:, 0]


@functools.partial(jax.jit, static_argnames=("loss", "penalty", "g_tx", "d_tx", "steps"))
def distance_after(
    loss: str,
    penalty: str | None,
    penalty_weight: float | jax.Array,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    steps: int = 500,
    start: tuple[float, float] = (1.0, 1.0),
    alternating: bool | jax.Array = False,
) -> jax.Array:
    """The distance of ``(theta, psi)`` from ``(0, 0)`` after each of ``steps`` steps: shape ``(steps,)``.

    Args:
      loss: a key of :data:`ganjax.losses.LOSSES`.
      penalty: a key of :data:`ganjax.penalties.PENALTIES` added to D's loss, or None.
      penalty_weight: its weight (``gamma / 2`` for R1 and R2).
      g_tx, d_tx: the players' optimizers; their learning rate is the step size ``h``.
      steps: how many steps both players take.
      start: ``(theta, psi)`` before the first step.
      alternating: D steps first and G then steps against the new D; otherwise
        both step from the same point (simultaneous). Traced, so both orders share one compilation.
    """
    pair = losses.LOSSES[loss]

    def d_loss(psi, theta):
        d_fn, fake = _d_fn(psi), jnp.full((1, 1), theta)
        value = pair.d(d_fn(REAL), d_fn(fake))
        if penalty is None:
            return value
        chosen = penalties.PENALTIES[penalty]  # a point mass looks the same through every view of D
        return value + penalty_weight * chosen.fn(*[d_fn] * len(chosen.views), REAL, fake, jax.random.key(0))

    def g_loss(theta, psi):
        d_fn = _d_fn(psi)
        return pair.g(d_fn(jnp.full((1, 1), theta)), d_fn(REAL))

    def step(carry, _):
        theta, psi, g_state, d_state = carry
        d_update, d_state = d_tx.update(jax.grad(d_loss)(psi, theta), d_state, psi)
        g_grad = jax.grad(g_loss)(theta, jnp.where(alternating, psi + d_update, psi))
        g_update, g_state = g_tx.update(g_grad, g_state, theta)
        theta, psi = theta + g_update, psi + d_update
        return (theta, psi, g_state, d_state), jnp.hypot(theta, psi)

    theta, psi = jnp.float32(start[0]), jnp.float32(start[1])
    _, distances = jax.lax.scan(step, (theta, psi, g_tx.init(theta), d_tx.init(psi)), None, steps)
    return distances
