"""Latent samplers and interpolations: shapes, the sphere, endpoints, paths and grids."""

import chex
import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganjax import latent

D = 64


@pytest.mark.parametrize("name", sorted(latent.LATENTS))
def test_samplers(name):
    z = jax.jit(latent.LATENTS[name], static_argnums=1)(jax.random.key(0), (512, D))
    chex.assert_shape(z, (512, D))
    chex.assert_tree_all_finite(z)
    if name == "uniform":
        assert z.min() >= -1.0 and z.max() <= 1.0
    if name == "gaussian":
        assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1.0) < 0.02


def test_spherical_radius():
    z = latent.spherical(jax.random.key(1), (256, D))
    chex.assert_trees_all_close(jnp.linalg.norm(z, axis=-1), jnp.full(256, D**0.5), rtol=1e-5)


slerp = jax.jit(chex.assert_max_traces(latent.slerp, n=1))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.floats(0.0, 1.0))
def test_slerp_stays_on_sphere(seed, t):
    z = latent.spherical(jax.random.key(seed), (2, 8, D))
    ts = jnp.full(8, t, jnp.float32)
    out = slerp(z[0], z[1], ts)
    chex.assert_shape(out, (8, D))
    chex.assert_trees_all_close(jnp.linalg.norm(out, axis=-1), jnp.full(8, D**0.5), rtol=1e-4)


def test_slerp_and_lerp_hit_both_ends():
    z0, z1 = latent.gaussian(jax.random.key(2), (2, 5, D))
    for fn in (latent.slerp, latent.lerp):
        chex.assert_trees_all_close(fn(z0, z1, jnp.zeros(5)), z0, atol=1e-5)
        chex.assert_trees_all_close(fn(z0, z1, jnp.ones(5)), z1, atol=1e-5)
    chex.assert_trees_all_close(latent.lerp(z0, z1, 0.5), (z0 + z1) / 2, atol=1e-6)


def test_slerp_follows_the_arc():
    """Between orthogonal unit codes, slerp at t is (cos(t pi/2), sin(t pi/2)); parallel codes fall back to lerp."""
    e0, e1 = jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])
    t = jnp.array(1 / 3)
    chex.assert_trees_all_close(
        latent.slerp(e0, e1, t), jnp.array([jnp.cos(jnp.pi / 6), jnp.sin(jnp.pi / 6)]), atol=1e-6
    )
    chex.assert_trees_all_close(latent.slerp(e0, 2 * e0, t), latent.lerp(e0, 2 * e0, t), atol=1e-6)


def test_path_passes_every_code():
    codes = latent.spherical(jax.random.key(3), (3, 4, D))  # 3 paths through 4 codes
    out = jax.jit(latent.path, static_argnums=(1, 2))(codes, 7, "slerp")  # (4 - 1) divides (7 - 1)
    chex.assert_shape(out, (3, 7, D))
    chex.assert_trees_all_close(out[:, ::2], codes, atol=1e-4)


def test_interpolation_grid():
    grid_fn = jax.jit(latent.interpolation_grid, static_argnames=("rows", "cols", "latent_dim", "sampler"))
    grid = grid_fn(jax.random.key(4), rows=3, cols=8, latent_dim=D, sampler="spherical")
    chex.assert_shape(grid, (3, 8, D))
    chex.assert_trees_all_close(jnp.linalg.norm(grid, axis=-1), jnp.full((3, 8), D**0.5), rtol=1e-4)
    assert not jnp.allclose(grid[0, 0], grid[1, 0])  # rows are different paths
