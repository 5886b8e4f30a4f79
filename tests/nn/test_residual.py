"""ganjax.nn.residual: shapes, the shortcut by numpy when the residual branch is zeroed, SAGAN built of the blocks."""

import jax
import jax.numpy as jnp
import numpy as np

from ganjax.models import sagan
from ganjax.nn import ResBlockD, ResBlockG

SIGMA = "Conv_0/kernel/sigma"


def _normal(seed, shape):
    return np.asarray(jax.random.normal(jax.random.key(seed), shape))


def _zero_branch(params):
    """Zeroes the last conv of the residual branch, leaving the shortcut."""
    return {**params, "conv2": jax.tree.map(np.zeros_like, params["conv2"])}


def _spectral_conv1x1(x, params, stats):
    """The shortcut: a 1x1 conv whose kernel is divided by the spectral norm the block used."""
    kernel = np.asarray(params["Conv_0"]["kernel"])[0, 0] / np.asarray(stats["SpectralNorm_0"][SIGMA])
    return x @ kernel + np.asarray(params["Conv_0"]["bias"])


def _pool2(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def test_res_block_g_upsamples_and_its_shortcut_is_up_then_1x1():
    x = _normal(0, (2, 4, 4, 6))
    block = ResBlockG(3)
    variables = block.init(jax.random.key(1), x, None, train=True)
    y, _ = block.apply(variables, x, None, train=True, mutable=["batch_stats"])
    assert y.shape == (2, 8, 8, 3)
    params = _zero_branch(variables["params"])
    y, updates = block.apply({**variables, "params": params}, x, None, train=True, mutable=["batch_stats"])
    up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    expected = _spectral_conv1x1(up, params["shortcut"], updates["batch_stats"]["shortcut"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_res_block_g_normalizes_by_class_with_num_classes():
    x, labels = _normal(0, (2, 4, 4, 6)), jnp.array([0, 2])
    plain = ResBlockG(3).init(jax.random.key(1), x, None, train=True)["params"]
    conditional = ResBlockG(3, num_classes=3).init(jax.random.key(1), x, labels, train=True)["params"]
    assert set(plain["norm1"]) == set(plain["norm2"]) == {"BatchNorm_0"}
    assert set(conditional["norm1"]) == set(conditional["norm2"]) == {"ConditionalBatchNorm_0"}
    assert conditional["norm1"]["ConditionalBatchNorm_0"]["scale"]["embedding"].shape == (3, 6)


def test_res_block_d_downsamples_and_its_shortcut_is_1x1_then_pool():
    x = _normal(0, (2, 4, 4, 3))
    block = ResBlockD(5)
    variables = block.init(jax.random.key(1), x, train=True)
    assert block.apply(variables, x, train=False).shape == (2, 2, 2, 5)
    params = _zero_branch(variables["params"])
    y, updates = block.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    expected = _pool2(_spectral_conv1x1(x, params["shortcut"], updates["batch_stats"]["shortcut"]))
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_res_block_d_preactivation():
    """On an all-negative input a preactivated block is its shortcut; one without preactivation is not."""
    x = -np.abs(_normal(0, (1, 4, 4, 2)))
    variables = ResBlockD(2).init(jax.random.key(1), x, train=True)
    with_relu, updates = ResBlockD(2).apply(variables, x, train=True, mutable=["batch_stats"])
    without = ResBlockD(2, preactivate=False).apply(variables, x, train=False)
    # conv1 sees zeros, so outputs its bias (0 at init), and so does conv2 after ReLU.
    expected = _pool2(_spectral_conv1x1(x, variables["params"]["shortcut"], updates["batch_stats"]["shortcut"]))
    np.testing.assert_allclose(with_relu, expected, rtol=1e-5, atol=1e-5)
    assert not np.allclose(without, expected)


def _paths(tree):
    return sorted("/".join(str(k.key) for k in path) for path, _ in jax.tree_util.tree_leaves_with_path(tree))


CONVS, NORMS = ("conv1", "conv2", "shortcut"), ("norm1", "norm2")


def _block_paths(prefix, convs, norms=()):
    convs = [f"{prefix}/{c}/Conv_0/{p}" for c in convs for p in ("bias", "kernel")]
    return convs + [f"{prefix}/{n}/ConditionalBatchNorm_0/{p}/embedding" for n in norms for p in ("scale", "shift")]


ATTENTION = [f"SelfAttention_0/{p}" for p in ("gamma", "key/kernel", "out/kernel", "query/kernel", "value/kernel")]


def test_sagan_players_are_built_of_the_residual_blocks_with_their_params_and_outputs_as_before():
    """The param trees and outputs of SAGAN's players, pinned when its blocks moved to ganjax.nn.residual."""
    z, images = _normal(0, (4, 16)), _normal(1, (4, 16, 16, 3))
    labels = jnp.array([0, 1, 2, 1])
    g = sagan.Generator(image_size=16, channels=3, width=8, latent_dim=16, num_classes=3)
    d = sagan.Discriminator(image_size=16, width=8, num_classes=3)
    g_vars, d_vars = g.init(jax.random.key(2), z, labels), d.init(jax.random.key(3), images, labels)
    blocks_g = [p for i in (0, 1) for p in _block_paths(f"GBlock_{i}", CONVS, NORMS)]
    head_g = ["BatchNorm_0/bias", "BatchNorm_0/scale", "SpectralConv_0/Conv_0/bias", "SpectralConv_0/Conv_0/kernel"]
    head_g += ["SpectralDense_0/Dense_0/bias", "SpectralDense_0/Dense_0/kernel"]
    assert _paths(g_vars["params"]) == sorted(blocks_g + ATTENTION + head_g)
    blocks_d = [p for i in (0, 1) for p in _block_paths(f"DBlock_{i}", CONVS)]
    head_d = ["SpectralDense_0/Dense_0/bias", "SpectralDense_0/Dense_0/kernel", "projection/embedding"]
    assert _paths(d_vars["params"]) == sorted(blocks_d + ATTENTION + head_d)
    assert sum(leaf.size for leaf in jax.tree.leaves(d_vars["params"])) == 4618
    fakes, _ = g.apply(g_vars, z, labels, mutable=["batch_stats"])
    logits, _ = d.apply(d_vars, images, labels, mutable=["batch_stats"])
    got = [float(jnp.sum(fakes)), float(jnp.sum(fakes**2)), float(fakes[0, 0, 0, 0])]
    np.testing.assert_allclose(got, [-613.6780395507812, 851.236328125, 0.2966729700565338], rtol=1e-5)
    expected_logits = [-3.1619462966918945, -0.8202685117721558, 1.0151385068893433, -0.36925989389419556]
    np.testing.assert_allclose(logits, expected_logits, rtol=1e-5)
