"""ganjax.nn.resample against numpy references."""

import flax.linen as nn
import jax
import numpy as np
import pytest

from ganjax.nn import AvgPoolDown, NearestUpsampleConv, PixelShuffle, StridedConvDown, max_pool, pixel_shuffle


def _normal(seed, shape):
    return np.asarray(jax.random.normal(jax.random.key(seed), shape))


def _numpy_depth_to_space(x, r):
    n, h, w, depth = x.shape
    c = depth // (r * r)
    out = np.empty((n, h * r, w * r, c), x.dtype)
    for i in range(r):
        for j in range(r):
            out[:, i::r, j::r, :] = x[..., (i * r + j) * c : (i * r + j + 1) * c]
    return out


@pytest.mark.parametrize("r,c", [(2, 3), (3, 1)])
def test_pixel_shuffle_equals_numpy_depth_to_space(r, c):
    x = _normal(0, (2, 3, 4, r * r * c))
    np.testing.assert_array_equal(pixel_shuffle(x, r), _numpy_depth_to_space(x, r))


def test_pixel_shuffle_module_is_conv_then_shuffle():
    x = _normal(0, (2, 4, 4, 3))
    layer = PixelShuffle(5, scale=2)
    variables = layer.init(jax.random.key(1), x)
    y = layer.apply(variables, x)
    assert y.shape == (2, 8, 8, 5)
    conv = nn.Conv(20, (3, 3)).apply({"params": variables["params"]["Conv_0"]}, x)
    np.testing.assert_allclose(y, _numpy_depth_to_space(np.asarray(conv), 2), rtol=1e-6)


def test_nearest_upsample_conv_is_conv_of_repeated_pixels():
    x = _normal(0, (2, 3, 3, 2))
    layer = NearestUpsampleConv(4)
    variables = layer.init(jax.random.key(1), x)
    repeated = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    expected = nn.Conv(4, (3, 3)).apply({"params": variables["params"]["Conv_0"]}, repeated)
    np.testing.assert_allclose(layer.apply(variables, x), expected, rtol=1e-5, atol=1e-6)


def test_avg_pool_down_averages_2x2_blocks_of_the_conv():
    x = _normal(0, (2, 4, 6, 3))
    layer = AvgPoolDown(2)
    variables = layer.init(jax.random.key(1), x)
    conv = np.asarray(nn.Conv(2, (3, 3)).apply({"params": variables["params"]["Conv_0"]}, x))
    expected = conv.reshape(2, 2, 2, 3, 2, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(layer.apply(variables, x), expected, rtol=1e-5, atol=1e-6)


def test_strided_conv_down_samples_every_other_position():
    x = _normal(0, (1, 8, 8, 2))
    layer = StridedConvDown(3, kernel_size=(3, 3))
    variables = layer.init(jax.random.key(1), x)
    dense = np.asarray(nn.Conv(3, (3, 3)).apply({"params": variables["params"]["Conv_0"]}, x))
    # SAME with stride 2 on an even side pads (0, 1): window o covers 2o..2o+2, centred on 2o + 1.
    np.testing.assert_allclose(layer.apply(variables, x), dense[:, 1::2, 1::2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "name,images",
    [
        ("distinct values", lambda: _normal(0, (2, 6, 8, 3))),
        # Rounded ReLU outputs tie within most windows, at zero and above it.
        ("ties", lambda: np.maximum(np.round(_normal(1, (2, 6, 8, 3))), 0.0)),
        ("constant", lambda: np.full((1, 4, 4, 2), 0.5, np.float32)),
    ],
)
@pytest.mark.parametrize("size", [2, 3])
def test_max_pool_values_and_gradients_equal_flaxs_bit_for_bit(name, images, size):
    x = images()
    x = x[:, : x.shape[1] // size * size, : x.shape[2] // size * size]
    flax_pool = lambda x: nn.max_pool(x, (size, size), strides=(size, size))
    pooled, flax_pooled = max_pool(x, size), flax_pool(x)
    np.testing.assert_array_equal(pooled, flax_pooled)
    cotangent = _normal(2, pooled.shape)
    grad = jax.vjp(lambda x: max_pool(x, size), x)[1](cotangent)[0]
    np.testing.assert_array_equal(grad, jax.vjp(flax_pool, x)[1](cotangent)[0])
    # each window's gradient goes to one pixel
    assert np.count_nonzero(grad) == np.count_nonzero(cotangent)


def test_max_pool_refuses_a_window_that_does_not_divide_the_image():
    with pytest.raises(ValueError, match=r"window 2 does not divide the image sides 5 x 4"):
        max_pool(np.zeros((1, 5, 4, 1), np.float32), 2)
