"""Gradient penalties on linear critics (closed forms) and weight clipping."""

import chex
import jax
import jax.numpy as jnp
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganjax import penalties

SHAPE = (16, 4, 4, 1)


def linear_critic(w):
    """D(x) = <w, x>: its input gradient is w everywhere, so every penalty has a closed form."""
    return lambda x: x.reshape(x.shape[0], -1) @ w.reshape(-1)


@jax.jit
@chex.assert_max_traces(n=1)
def all_penalties(w, real, fake, key):
    d_fn = linear_critic(w)
    return {name: p.fn(*[d_fn] * len(p.views), real, fake, key) for name, p in penalties.PENALTIES.items()}


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 3.0))
def test_linear_critic_closed_forms(seed, scale):
    """GP, DRAGAN = (||w|| - 1)^2; one-sided GP = max(0, ||w|| - 1)^2; R1 = R2 = ||w||^2 (no gamma/2 factor)."""
    w_key, real_key, fake_key, key = jax.random.split(jax.random.key(seed), 4)
    w = jax.random.normal(w_key, SHAPE[1:])
    w = w * scale / jnp.linalg.norm(w)
    values = all_penalties(w, jax.random.normal(real_key, SHAPE), jax.random.normal(fake_key, SHAPE), key)
    norm = jnp.linalg.norm(w)
    expected = {
        "wgan_gp": (norm - 1) ** 2,
        "dragan": (norm - 1) ** 2,
        "one_sided_gp": jax.nn.relu(norm - 1) ** 2,
        "r1": norm**2,
        "r2": norm**2,
        "r1_r2": 2 * norm**2,
    }
    chex.assert_trees_all_close(values, expected, rtol=1e-4, atol=1e-6)


def test_penalties_act_where_they_should():
    """On D(x) = sum(x^2)/2, grad = x: R1 sees only the reals, R2 the fakes, GP their interpolates."""
    d_fn = lambda x: 0.5 * jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=1)
    real, fake, key = jnp.zeros(SHAPE), jnp.full(SHAPE, 0.5), jax.random.key(0)

    @jax.jit
    def values(real, fake, key):
        gp_grad = jax.grad(lambda r: penalties.wgan_gp(d_fn, r, fake, key))(real)
        return (
            penalties.r1(d_fn, real, fake, key),
            penalties.r2(d_fn, real, fake, key),
            penalties.wgan_gp(d_fn, real, fake, key),
            gp_grad,
        )

    r1, r2, gp, gp_grad = values(real, fake, key)
    assert r1 == 0.0
    chex.assert_trees_all_close(r2, jnp.float32(0.25 * 16))
    assert 0.0 < gp < 1.0  # ||x_hat|| = 2u, u ~ U[0, 1] per example
    chex.assert_tree_all_finite(gp_grad)


def test_penalty_gradient_reaches_d_params():
    """The penalty is differentiable in D's params: for D = <w, x>, d R1 / dw = 2 w."""
    real, fake, key = jnp.ones(SHAPE), jnp.ones(SHAPE), jax.random.key(1)
    w = jnp.full(SHAPE[1:], 0.1)
    grad = jax.jit(jax.grad(lambda w: penalties.r1(linear_critic(w), real, fake, key)))(w)
    chex.assert_trees_all_close(grad, 2 * w, rtol=1e-5)


def test_weight_clipping_transform():
    params = {"w": jnp.array([0.5, -0.003, 0.0]), "b": jnp.array([-0.2])}
    tx = optax.chain(optax.sgd(1.0), penalties.weight_clipping(0.01))
    state = tx.init(params)
    updates, state = jax.jit(tx.update)({"w": jnp.array([1.0, 0.0, 1.0]), "b": jnp.array([-1.0])}, state, params)
    new = optax.apply_updates(params, updates)
    chex.assert_trees_all_close(new, {"w": jnp.array([-0.01, -0.003, -0.01]), "b": jnp.array([0.01])}, atol=1e-7)
    chex.assert_trees_all_close(new, penalties.clip_weights(new, 0.01))
    with pytest.raises(ValueError):
        penalties.weight_clipping(0.0)


def test_r1_r2_differentiates_each_batch_through_its_own_critic():
    """R1 + R2 = E||grad d_real(x)||^2 + E||grad d_fake(G(z))||^2: each batch through its own view of D."""
    square = lambda scale: lambda x: scale * jnp.sum(jnp.square(x).reshape(x.shape[0], -1), axis=1)  # grad 2 scale x
    real, fake, size = jnp.full(SHAPE, 1.0), jnp.full(SHAPE, 0.25), 16
    value = penalties.r1_r2(square(0.5), square(1.0), real, fake, jax.random.key(0))  # grads 1 and 0.5
    chex.assert_trees_all_close(value, size * (1.0 + 0.25))
    swapped = penalties.r1_r2(square(1.0), square(0.5), real, fake, jax.random.key(0))  # grads 2 and 0.25
    chex.assert_trees_all_close(swapped, size * (4.0 + 0.0625))
