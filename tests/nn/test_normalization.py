"""ganjax.nn.normalization against numpy references."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ganjax.nn import (
    ConditionalBatchNorm,
    InstanceNorm,
    PixelNorm,
    SelfModulatedBatchNorm,
    SpectralConv,
    SpectralDense,
    VirtualBatchNorm,
)

EPS = 1e-5


def _normal(seed, shape):
    return np.asarray(jax.random.normal(jax.random.key(seed), shape))


def _batch_normalize(x, axes):
    mean, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS)


def test_spectral_dense_drives_largest_singular_value_to_one():
    layer = SpectralDense(4, use_bias=False, kernel_init=nn.initializers.normal(3.0))
    eye = jnp.eye(6)  # the output on the identity is the normalized kernel itself
    variables = layer.init(jax.random.key(0), eye, train=False)
    kernel = np.asarray(variables["params"]["Dense_0"]["kernel"])
    true_sigma = np.linalg.svd(kernel, compute_uv=False)[0]

    apply = jax.jit(lambda v: layer.apply(v, eye, train=True, mutable=["batch_stats"]))
    stats = variables["batch_stats"]
    for _ in range(50):
        normalized, updates = apply({"params": variables["params"], "batch_stats": stats})
        stats = updates["batch_stats"]
    np.testing.assert_allclose(np.linalg.svd(np.asarray(normalized), compute_uv=False)[0], 1.0, rtol=1e-4)
    np.testing.assert_allclose(stats["SpectralNorm_0"]["Dense_0/kernel/sigma"], true_sigma, rtol=1e-4)

    # Evaluation reuses the stored vector and does not change it.
    evaluated, updates = layer.apply(
        {"params": variables["params"], "batch_stats": stats}, eye, train=False, mutable=["batch_stats"]
    )
    np.testing.assert_allclose(evaluated, normalized, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(
        updates["batch_stats"]["SpectralNorm_0"]["Dense_0/kernel/u"], stats["SpectralNorm_0"]["Dense_0/kernel/u"]
    )


def test_spectral_conv_normalizes_the_reshaped_kernel():
    layer = SpectralConv(3, (2, 2), padding="VALID", use_bias=False, n_steps=30)
    x = jnp.asarray(_normal(1, (2, 3, 3, 2)))
    variables = layer.init(jax.random.key(0), x, train=False)
    y, _ = layer.apply(variables, x, train=True, mutable=["batch_stats"])
    kernel = np.asarray(variables["params"]["Conv_0"]["kernel"])
    sigma = np.linalg.svd(kernel.reshape(-1, 3), compute_uv=False)[0]
    expected = nn.Conv(3, (2, 2), padding="VALID", use_bias=False).apply({"params": {"kernel": kernel / sigma}}, x)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_instance_norm_zero_mean_unit_variance_per_sample_and_channel():
    x = 3.0 + 2.0 * _normal(0, (3, 5, 4, 2))
    layer = InstanceNorm()
    y = np.asarray(layer.apply(layer.init(jax.random.key(0), x), x))
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(1, 2)), 1.0, rtol=1e-3)


def test_pixel_norm_unit_rms_over_channels():
    x = _normal(0, (2, 3, 3, 5))
    y = PixelNorm().apply({}, x)
    np.testing.assert_allclose(y, x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + 1e-8), rtol=1e-5)
    np.testing.assert_allclose(np.sqrt((np.asarray(y) ** 2).mean(axis=-1)), 1.0, rtol=1e-5)


def test_conditional_batch_norm_uses_its_class_row():
    x, labels = _normal(0, (4, 2, 2, 5)), jnp.array([2, 0, 1, 2])
    layer = ConditionalBatchNorm(num_classes=3)
    variables = layer.init(jax.random.key(0), x, labels, train=False)
    scale, shift = _normal(1, (3, 5)), _normal(2, (3, 5))
    params = {"scale": {"embedding": scale}, "shift": {"embedding": shift}}
    y, _ = layer.apply({**variables, "params": params}, x, labels, train=True, mutable=["batch_stats"])
    expected = _batch_normalize(x, (0, 1, 2)) * scale[labels][:, None, None] + shift[labels][:, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)
    # At init every class has scale 1 and shift 0: plain BatchNorm.
    y0, _ = layer.apply(variables, x, labels, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(y0, _batch_normalize(x, (0, 1, 2)), rtol=1e-4, atol=1e-5)


def test_self_modulated_batch_norm_scale_and_shift_from_z():
    x, z = _normal(0, (3, 2, 2, 4)), _normal(1, (3, 6))
    layer = SelfModulatedBatchNorm(hidden=5)
    variables = layer.init(jax.random.key(0), x, z, train=False)
    p = jax.tree.map(np.asarray, variables["params"])

    def mlp(name):
        hidden = np.maximum(z @ p[f"{name}_hidden"]["kernel"] + p[f"{name}_hidden"]["bias"], 0)
        return hidden @ p[f"{name}_out"]["kernel"] + p[f"{name}_out"]["bias"]

    y, _ = layer.apply(variables, x, z, train=True, mutable=["batch_stats"])
    expected = _batch_normalize(x, (0, 1, 2)) * (1 + mlp("scale"))[:, None, None] + mlp("shift")[:, None, None]
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


def test_virtual_batch_norm_uses_reference_statistics():
    x = 1.0 + 2.0 * _normal(0, (5, 3, 3, 2))
    layer = VirtualBatchNorm(reference_size=3)
    y = np.asarray(layer.apply(layer.init(jax.random.key(0), x), x))
    reference = x[:3]
    np.testing.assert_allclose(y[:3], _batch_normalize(reference, (0, 1, 2)), rtol=1e-4, atol=1e-5)
    for i in (3, 4):
        stats_batch = np.concatenate([reference, x[i : i + 1]])
        mean, var = stats_batch.mean(axis=(0, 1, 2)), stats_batch.var(axis=(0, 1, 2))
        np.testing.assert_allclose(y[i], (x[i] - mean) / np.sqrt(var + EPS), rtol=1e-4, atol=1e-5)
