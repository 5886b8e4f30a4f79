"""Losses: values on hand-picked logits, gradient signs, saturation, margins, stability, no recompiles."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ganjax import losses

REAL = jnp.array([1.0, 2.0])
FAKE = jnp.array([-1.0, 0.0])


def sp(x):
    """softplus, by hand: log(1 + e^x) = -log sigmoid(-x)."""
    return math.log1p(math.exp(x))


# (loss name, D loss at (REAL, FAKE), G loss at (FAKE, REAL)), worked out by hand from the papers' formulas.
VALUES = [
    ("minimax", (sp(-1) + sp(-2)) / 2 + (sp(-1) + sp(0)) / 2, -(sp(-1) + sp(0)) / 2),
    ("non_saturating", (sp(-1) + sp(-2)) / 2 + (sp(-1) + sp(0)) / 2, (sp(1) + sp(0)) / 2),
    ("wasserstein", (-1 + 0) / 2 - (1 + 2) / 2, 0.5),
    ("hinge", (0 + 0) / 2 + (0 + 1) / 2, 0.5),
    ("least_squares", 0.5 * (0 + 1) / 2 + 0.5 * (1 + 0) / 2, 0.5 * (4 + 1) / 2),
    ("relativistic", sp(-2), sp(2)),  # real - fake = (2, 2) in every pair
    ("relativistic_average", sp(-1.5) + sp(-2.5), sp(1.5) + sp(2.5)),  # mean(fake) = -0.5, mean(real) = 1.5
]


@pytest.mark.parametrize("name,d_value,g_value", VALUES, ids=[v[0] for v in VALUES])
def test_loss_values(name, d_value, g_value):
    pair = losses.LOSSES[name]
    chex.clear_trace_counter()  # pairs share functions (hinge's G loss is Wasserstein's)
    d = jax.jit(chex.assert_max_traces(pair.d, n=1))
    g = jax.jit(chex.assert_max_traces(pair.g, n=1))
    chex.assert_trees_all_close(d(REAL, FAKE), jnp.float32(d_value), rtol=1e-5)
    chex.assert_trees_all_close(g(FAKE, REAL), jnp.float32(g_value), rtol=1e-5)
    # New values of the same shapes must not retrace.
    chex.assert_tree_all_finite((d(REAL + 0.5, FAKE - 0.5), g(FAKE - 0.5, REAL + 0.5)))


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_gradient_signs(name):
    """Inside every margin, D pushes real logits up and fake ones down; G pushes fake logits up."""
    pair = losses.LOSSES[name]
    real, fake = jnp.array([0.5, 0.8]), jnp.array([0.3, 0.6])
    d_real, d_fake = jax.jit(jax.grad(pair.d, argnums=(0, 1)))(real, fake)
    g_fake = jax.jit(jax.grad(pair.g))(fake, real)
    assert jnp.all(d_real < 0) and jnp.all(d_fake > 0) and jnp.all(g_fake < 0), (d_real, d_fake, g_fake)


def test_soft_labels():
    """CE(l, y) = softplus(l) - y l, so a real label 0.9 on logit 2 costs softplus(2) - 1.8."""
    real, fake = jnp.array([2.0]), jnp.array([0.0])
    value = jax.jit(losses.minimax_d_loss)(real, fake, 0.9, 0.1)
    chex.assert_trees_all_close(value, jnp.float32(sp(2) - 1.8 + sp(0) - 0.0), rtol=1e-5)
    ls = jax.jit(losses.least_squares_d_loss)(real, fake, 0.9, 0.1)
    chex.assert_trees_all_close(ls, jnp.float32(0.5 * (1.1**2 + 0.1**2)), rtol=1e-5)


def test_non_saturating_keeps_gradient_where_minimax_vanishes():
    """With D(G(z)) = sigmoid(-10) ~ 4.5e-5, minimax's gradient is ~ -4.5e-5, the non-saturating one ~ -1."""
    fake = jnp.array([-10.0])
    minimax = jax.grad(losses.minimax_g_loss)(fake)
    non_saturating = jax.grad(losses.non_saturating_g_loss)(fake)
    chex.assert_trees_all_close(minimax, -jax.nn.sigmoid(fake), rtol=1e-4)
    assert abs(minimax[0]) < 1e-4 and non_saturating[0] < -0.99


@settings(max_examples=30, deadline=None)
@given(real=st.floats(1.0, 1e4), fake=st.floats(-1e4, -1.0))
def test_hinge_flat_beyond_margin(real, fake):
    d_real, d_fake = jax.grad(losses.hinge_d_loss, argnums=(0, 1))(jnp.array([real + 1e-3]), jnp.array([fake - 1e-3]))
    assert d_real[0] == 0.0 and d_fake[0] == 0.0
    assert losses.hinge_d_loss(jnp.array([real + 1e-3]), jnp.array([fake - 1e-3])) == 0.0


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_stable_at_extreme_logits(name):
    pair = losses.LOSSES[name]
    real, fake = jnp.array([1e4, -1e4, 80.0]), jnp.array([-1e4, 1e4, -80.0])
    values = (pair.d(real, fake), pair.g(fake, real))
    grads = (jax.grad(pair.d, argnums=(0, 1))(real, fake), jax.grad(pair.g)(fake, real))
    chex.assert_tree_all_finite((values, grads))


def test_registry_flags():
    for name, pair in losses.LOSSES.items():
        assert pair.uses_labels == (name not in ("wasserstein", "hinge")), name
        assert pair.g_needs_real == name.startswith("relativistic"), name
        # a D that wins outright: a bounded loss stays near its least, the critic's falls with its scores' spread
        winning = float(pair.d(jnp.full(2, 1e4), jnp.full(2, -1e4)))
        assert pair.d_loss_bounded_below == (winning > -1.0) == (name != "wasserstein"), name
        if pair.uses_labels:  # labelled D losses accept the two label arrays
            chex.assert_tree_all_finite(pair.d(REAL, FAKE, jnp.full(2, 0.9), jnp.full(2, 0.1)))
    with pytest.raises(ValueError, match="real_logits"):
        losses.relativistic_g_loss(FAKE)


def test_d_loss_minimised_by_separating_logits():
    """Every D loss is lower when D separates the batches than when it confuses them."""
    good, bad = (jnp.array([0.9]), jnp.array([-0.9])), (jnp.array([-0.9]), jnp.array([0.9]))
    for name, pair in losses.LOSSES.items():
        assert np.asarray(pair.d(*good)) < np.asarray(pair.d(*bad)), name


def test_feature_matching():
    """||mean real - mean fake||^2 over the features: means (1, 2) and (0, 0) give 5; the gradient pulls fakes up."""
    real = jnp.array([[0.0, 1.0], [2.0, 3.0]])
    fake = jnp.array([[0.0, -1.0], [0.0, 1.0]])
    value, grad = jax.jit(jax.value_and_grad(losses.feature_matching_g_loss))(fake, real)
    chex.assert_trees_all_close(value, jnp.float32(5.0))
    chex.assert_trees_all_close(grad, jnp.array([[-1.0, -2.0], [-1.0, -2.0]]))


def entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p)) if 0 < p < 1 else 0.0


@pytest.mark.parametrize(
    "name,real,fake,least",
    [
        ("minimax", 1.0, 0.0, 0.0),
        ("minimax", 0.9, 0.0, entropy(0.9)),  # one-sided smoothing: D cannot go below H(0.9)
        ("minimax", [0.7, 1.2], [0.0, 0.3], entropy(0.95) + entropy(0.15)),  # the mean targets' entropy
        ("least_squares", [0.7, 1.2], [0.0, 0.3], 0.5 * (0.25**2 + 0.15**2)),  # half the targets' variance
        ("relativistic", 0.9, 0.0, entropy(0.95)),  # both halves judge one difference: mean target 0.95
    ],
)
def test_least_d_loss_is_the_minimum_over_one_output_per_side(name, real, fake, least):
    as_targets = lambda t: jnp.asarray(t * 32 if isinstance(t, list) else [t] * 64, jnp.float32)
    d = losses.LOSSES[name].d
    real, fake = as_targets(real), as_targets(fake)
    value = losses.least_d_loss(d, real, fake)
    assert value == pytest.approx(least, abs=1e-4)
    for r, f in [(0.0, 0.0), (3.0, -3.0), (-1.0, 2.0)]:  # any pair of outputs scores at least as much
        assert float(d(jnp.full(64, r), jnp.full(64, f), real, fake)) >= value - 1e-6


def test_class_entropy_is_each_samples_entropy_less_the_batch_means():
    """CatGAN's G term by hand; least (-log K) when each sample is sure and the classes are even."""
    logits = jnp.array([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [-3.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    p = np.asarray(jax.nn.softmax(logits), np.float64)
    entropy = lambda q: -np.sum(q * np.log(q), axis=-1)
    expected = np.mean(entropy(p)) - entropy(p.mean(axis=0))
    np.testing.assert_allclose(losses.class_entropy_g_loss(logits), expected, rtol=1e-5)
    sure_and_even, sure_and_one = 30.0 * jnp.eye(3), 30.0 * jnp.eye(3)[jnp.zeros(3, int)]
    np.testing.assert_allclose(losses.class_entropy_g_loss(sure_and_even), -np.log(3), rtol=1e-5)
    np.testing.assert_allclose(losses.class_entropy_g_loss(sure_and_one), 0.0, atol=1e-5)
    np.testing.assert_allclose(losses.class_entropy_g_loss(jnp.zeros((4, 3))), 0.0, atol=1e-5)  # unsure and even


def test_class_entropy_takes_the_batch_mean_over_devices():
    """Over a device axis the marginal is the global batch's: two devices, each sure of one class, are even."""
    logits = 30.0 * jnp.eye(2)[:, None, :]  # device i: one sample of class i
    per_device = jax.vmap(lambda x: losses.class_entropy_g_loss(x, "devices"), axis_name="devices")(logits)
    np.testing.assert_allclose(per_device, -np.log(2), rtol=1e-5)
