"""ganjax.nn.equalized: N(0, 1) weights scaled by He's constant at run time."""

import math

import flax.linen as nn
import jax
import numpy as np

from ganjax.nn import EqualizedConv, EqualizedDense, he_constant


def _normal(seed, shape):
    return np.asarray(jax.random.normal(jax.random.key(seed), shape))


def test_he_constant():
    assert he_constant(8, math.sqrt(2)) == math.sqrt(2 / 8)


def test_dense_scales_by_he_constant():
    x = _normal(0, (3, 50))
    layer = EqualizedDense(40)
    params = jax.tree.map(np.asarray, layer.init(jax.random.key(1), x)["params"])
    assert abs(params["kernel"].std() - 1.0) < 0.05  # stored weights are N(0, 1)
    params["bias"] = _normal(2, (40,))
    expected = x @ params["kernel"] * math.sqrt(2 / 50) + params["bias"]
    np.testing.assert_allclose(layer.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-5)


def test_conv_scales_by_he_constant_of_its_fan_in():
    x = _normal(0, (2, 5, 5, 4))
    layer = EqualizedConv(6, (3, 3), strides=(2, 2), gain=1.0)
    params = layer.init(jax.random.key(1), x)["params"]
    fan_in = 3 * 3 * 4
    expected = nn.Conv(6, (3, 3), strides=2).apply(
        {"params": {"kernel": params["kernel"] / math.sqrt(fan_in), "bias": params["bias"]}}, x
    )
    np.testing.assert_allclose(layer.apply({"params": params}, x), expected, rtol=1e-5, atol=1e-6)
