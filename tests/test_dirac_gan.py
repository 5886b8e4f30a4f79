"""The Dirac-GAN of Mescheder et al. 2018, built from ganjax's losses, penalties and optimizers.

Real data is a point mass at 0, G is a point mass at theta and D(x) = psi x.
The only equilibrium is (theta, psi) = (0, 0). Both players take simultaneous
gradient steps from (1, 1).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from ganjax import losses, optim, penalties

REAL = jnp.zeros((1, 1))


def _d_fn(psi):
    return lambda x: psi * x[:, 0]


@functools.partial(jax.jit, static_argnames=("loss", "g_tx", "d_tx", "steps"))
def dirac_gan(
    loss: str, penalty_weight, g_tx: optax.GradientTransformation, d_tx: optax.GradientTransformation, steps: int
):
    """The distance of (theta, psi) from (0, 0) after every simultaneous step."""
    pair = losses.LOSSES[loss]

    def d_loss(psi, theta):
        fake = jnp.full((1, 1), theta)
        d_fn = _d_fn(psi)
        return pair.d(d_fn(REAL), d_fn(fake)) + penalty_weight * penalties.r1(d_fn, REAL, fake, jax.random.key(0))

    def g_loss(theta, psi):
        d_fn = _d_fn(psi)
        return pair.g(d_fn(jnp.full((1, 1), theta)), d_fn(REAL))

    def step(carry, _):
        theta, psi, g_state, d_state = carry
        g_grad, d_grad = jax.grad(g_loss)(theta, psi), jax.grad(d_loss)(psi, theta)  # both at the same point
        g_update, g_state = g_tx.update(g_grad, g_state, theta)
        d_update, d_state = d_tx.update(d_grad, d_state, psi)
        theta, psi = theta + g_update, psi + d_update
        return (theta, psi, g_state, d_state), jnp.hypot(theta, psi)

    theta, psi = jnp.float32(1.0), jnp.float32(1.0)
    _, distances = jax.lax.scan(step, (theta, psi, g_tx.init(theta), d_tx.init(psi)), None, steps)
    chex.assert_shape(distances, (steps,))
    return distances


SGD = optim.player_optimizer("sgd", 0.1)


@pytest.mark.parametrize("loss", ["minimax", "wasserstein"])
def test_unregularised_gan_moves_away(loss):
    distances = dirac_gan(loss, 0.0, SGD, SGD, 2000)
    chex.assert_tree_all_finite(distances)
    assert distances[-1] > 2.0 * jnp.sqrt(2.0), distances[-1]  # spirals out from sqrt(2)
    assert distances[-1] > distances[999] > distances[99]


@pytest.mark.parametrize(
    "loss", ["minimax", "non_saturating", "wasserstein", "hinge", "relativistic", "relativistic_average"]
)
def test_r1_converges(loss):
    """With R1 (gamma = 1, so weight gamma / 2) simultaneous gradient descent converges to (0, 0)."""
    distances = dirac_gan(loss, 0.5, SGD, SGD, 2000)
    assert distances[-1] < 1e-3, distances[-1]


def test_optimism_damps_the_rotation():
    """Optimistic GD converges on the unregularised WGAN where SGD spirals out; optimistic Adam beats Adam."""
    optimistic = optim.player_optimizer("sgd", 0.1, optimistic=True)
    assert dirac_gan("wasserstein", 0.0, optimistic, optimistic, 1000)[-1] < 0.05
    adam = optim.player_optimizer("adam", 0.01, b1=0.5, b2=0.9)
    optimistic_adam = optim.player_optimizer("adam", 0.01, b1=0.5, b2=0.9, optimistic=True)
    assert dirac_gan("wasserstein", 0.0, adam, adam, 3000)[-1] > 0.1
    assert dirac_gan("wasserstein", 0.0, optimistic_adam, optimistic_adam, 3000)[-1] < 0.05
