"""ganjax.models.mlp: the default layout, and each trick inside the models doing what it says."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax.models import mlp

X = jax.random.normal(jax.random.key(0), (8, 2))


def test_default_layout_is_dense_layers_only():
    params = mlp.Discriminator(hidden=(8, 8)).init(jax.random.key(0), X)
    assert list(params) == ["params"] and sorted(params["params"]) == ["Dense_0", "Dense_1", "Dense_2"]
    params = mlp.Generator(hidden=(8,)).init(jax.random.key(0), X)
    assert list(params) == ["params"] and sorted(params["params"]) == ["Dense_0", "Dense_1"]


def test_spectral_norm_makes_d_blind_to_the_scale_of_its_kernels():
    d = mlp.Discriminator(hidden=(8, 8), norm="spectral")
    variables = d.init(jax.random.key(1), X)
    scaled = {
        **variables,
        "params": jax.tree_util.tree_map_with_path(
            lambda path, w: 10 * w if "kernel" in jax.tree_util.keystr(path) else w, variables["params"]
        ),
    }
    out, _ = d.apply(variables, X, mutable=["batch_stats"])
    out_scaled, _ = d.apply(scaled, X, mutable=["batch_stats"])
    np.testing.assert_allclose(out_scaled, out, rtol=1e-4, atol=1e-5)
    plain = mlp.Discriminator(hidden=(8, 8))
    plain_vars = plain.init(jax.random.key(1), X)
    plain_scaled = jax.tree.map(lambda w: 10 * w, plain_vars)
    assert not np.allclose(plain.apply(plain_scaled, X), plain.apply(plain_vars, X))


@pytest.mark.parametrize("minibatch, couples", [("none", False), ("stddev", True), ("discrimination", True)])
def test_minibatch_features_make_an_examples_logit_depend_on_the_rest_of_the_batch(minibatch, couples):
    d = mlp.Discriminator(hidden=(8,), minibatch=minibatch)
    variables = d.init(jax.random.key(2), X)
    other = X.at[1:].multiply(3.0)
    first, first_other = d.apply(variables, X)[0], d.apply(variables, other)[0]
    assert (not np.isclose(first, first_other)) == couples


def test_g_noise_only_in_training_and_dropout_always():
    z = jax.random.normal(jax.random.key(3), (4, 2))
    rngs = lambda k: {"noise": jax.random.key(k), "dropout": jax.random.key(k + 10)}
    noisy = mlp.Generator(hidden=(8, 8), noise_std=0.5)
    variables = noisy.init({"params": jax.random.key(0)}, z)
    plain_out = mlp.Generator(hidden=(8, 8)).apply(variables, z)
    assert not np.allclose(noisy.apply(variables, z, rngs=rngs(1)), noisy.apply(variables, z, rngs=rngs(2)))
    np.testing.assert_array_equal(noisy.apply(variables, z, train=False), plain_out)
    dropped = mlp.Generator(hidden=(8, 8), dropout=0.5)
    a, b = (dropped.apply(variables, z, train=False, rngs=rngs(k)) for k in (1, 2))
    assert not np.allclose(a, b) and not np.allclose(a, plain_out)


@pytest.mark.parametrize("field, value", [("norm", "batch"), ("minibatch", "std")])
def test_unknown_choices_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"mlp.Discriminator.{field}: unknown"):
        mlp.Discriminator(**{field: value}).init(jax.random.key(0), jnp.zeros((2, 2)))
