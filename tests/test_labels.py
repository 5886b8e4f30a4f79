"""Label samplers: ranges, the one-sided value, and the flip rate over many draws."""

import chex
import jax
import jax.numpy as jnp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganjax import labels

SHAPE = (4096, 1)
d_labels = jax.jit(labels.d_labels, static_argnames=("shape", "scheme", "flip_prob"))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_noisy_labels_in_range(seed):
    real, fake = d_labels(jax.random.key(seed), SHAPE, "noisy")
    chex.assert_shape((real, fake), SHAPE)
    assert 0.7 <= real.min() and real.max() <= 1.2 and 0.0 <= fake.min() and fake.max() <= 0.3
    # They are spread over their ranges, not constant.
    assert real.max() - real.min() > 0.45 and fake.max() - fake.min() > 0.25


def test_one_sided_and_hard():
    real, fake = d_labels(jax.random.key(0), SHAPE, "one_sided")
    chex.assert_trees_all_close((real, fake), (jnp.full(SHAPE, 0.9), jnp.zeros(SHAPE)))
    real, fake = d_labels(jax.random.key(0), SHAPE, "none")
    chex.assert_trees_all_close((real, fake), (jnp.ones(SHAPE), jnp.zeros(SHAPE)))


@pytest.mark.parametrize("prob", [0.05, 0.3])
def test_flip_rate(prob):
    """Over 10 x 4096 draws per side the flipped fraction is within 5 standard errors of p."""
    flip = jax.jit(jax.vmap(labels.flip_labels, in_axes=(0, None, None)), static_argnums=2)
    hard = labels.hard_labels(None, SHAPE)
    real, fake = flip(jax.random.split(jax.random.key(1), 10), hard, prob)
    n = real.size
    tolerance = 5 * (prob * (1 - prob) / n) ** 0.5
    assert abs(float(jnp.mean(real == 0.0)) - prob) < tolerance
    assert abs(float(jnp.mean(fake == 1.0)) - prob) < tolerance
    assert set(jnp.unique(real).tolist()) == {0.0, 1.0}


def test_flip_swaps_drawn_values_and_keeps_ranges():
    real, _ = d_labels(jax.random.key(2), SHAPE, "noisy", 0.5)
    assert jnp.all(((real >= 0.7) & (real <= 1.2)) | ((real >= 0.0) & (real <= 0.3)))
    assert 0.4 < float(jnp.mean(real <= 0.3)) < 0.6


def test_no_flip_is_identity():
    a = d_labels(jax.random.key(3), SHAPE, "noisy", 0.0)
    b = labels.noisy_labels(jax.random.split(jax.random.key(3))[0], SHAPE)
    chex.assert_trees_all_close(a, b)
