"""ganjax.nn.residual: shapes, and the shortcut path by numpy when the residual branch is zeroed."""

import jax
import numpy as np

from ganjax.nn import ResBlockD, ResBlockG


def _normal(seed, shape):
    return np.asarray(jax.random.normal(jax.random.key(seed), shape))


def _zero_branch(params):
    """Zeroes the last conv of the residual branch, leaving the shortcut."""
    return {**params, "conv2": jax.tree.map(np.zeros_like, params["conv2"])}


def _conv1x1(x, params):
    return x @ np.asarray(params["kernel"])[0, 0] + np.asarray(params["bias"])


def test_res_block_g_upsamples_and_its_shortcut_is_up_then_1x1():
    x = _normal(0, (2, 4, 4, 6))
    block = ResBlockG(3)
    variables = block.init(jax.random.key(1), x, train=False)
    y, _ = block.apply(variables, x, train=True, mutable=["batch_stats"])
    assert y.shape == (2, 8, 8, 3)
    params = _zero_branch(variables["params"])
    y, _ = block.apply({**variables, "params": params}, x, train=True, mutable=["batch_stats"])
    expected = _conv1x1(np.repeat(np.repeat(x, 2, axis=1), 2, axis=2), params["shortcut"])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_res_block_d_downsamples_and_its_shortcut_is_1x1_then_pool():
    x = _normal(0, (2, 4, 4, 3))
    block = ResBlockD(5)
    variables = block.init(jax.random.key(1), x)
    assert block.apply(variables, x).shape == (2, 2, 2, 5)
    assert ResBlockD(5, downsample=False).apply(variables, x).shape == (2, 4, 4, 5)
    params = _zero_branch(variables["params"])
    expected = _conv1x1(x, params["shortcut"]).reshape(2, 2, 2, 2, 2, 5).mean(axis=(2, 4))
    np.testing.assert_allclose(block.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-6)


def test_res_block_d_preactivation():
    """On an all-negative input a preactivated block is its shortcut; one without preactivation is not."""
    x = -np.abs(_normal(0, (1, 4, 4, 2)))
    variables = ResBlockD(2).init(jax.random.key(1), x)
    with_relu = ResBlockD(2).apply(variables, x)
    without = ResBlockD(2, preactivate=False).apply(variables, x)
    # conv1 sees zeros, so outputs its bias (0 at init), and so does conv2 after ReLU.
    expected = _conv1x1(x, variables["params"]["shortcut"]).reshape(1, 2, 2, 2, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(with_relu, expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(without, expected)
