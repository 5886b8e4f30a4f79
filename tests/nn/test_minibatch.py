"""ganjax.nn.minibatch against numpy loops."""

import jax
import numpy as np

from ganjax.nn import MinibatchDiscrimination, MinibatchStdDev


def test_minibatch_discrimination_matches_numpy():
    x = np.asarray(jax.random.normal(jax.random.key(0), (4, 2, 3)))
    layer = MinibatchDiscrimination(num_kernels=3, kernel_dim=2)
    variables = layer.init(jax.random.key(1), x)
    t = np.asarray(variables["params"]["kernel"]) * 20  # larger T so that closeness is not ~1 everywhere
    y = np.asarray(layer.apply({"params": {"kernel": t}}, x))
    flat = x.reshape(4, -1)
    m = np.einsum("na,abc->nbc", flat, t)
    expected = np.array(
        [
            [sum(np.exp(-np.abs(m[i, b] - m[j, b]).sum()) for j in range(4) if j != i) for b in range(3)]
            for i in range(4)
        ]
    )
    np.testing.assert_allclose(y[:, :6], flat, rtol=1e-6)
    np.testing.assert_allclose(y[:, 6:], expected, rtol=1e-4, atol=1e-6)


def test_minibatch_stddev_matches_numpy():
    x = np.asarray(jax.random.normal(jax.random.key(0), (6, 3, 2, 4)))
    y = np.asarray(MinibatchStdDev(group_size=3).apply({}, x))
    assert y.shape == (6, 3, 2, 5)
    np.testing.assert_array_equal(y[..., :4], x)
    groups = 6 // 3
    for i in range(6):
        members = x[[j for j in range(6) if j % groups == i % groups]]
        expected = np.sqrt(members.var(axis=0) + 1e-8).mean()
        np.testing.assert_allclose(y[i, ..., 4], expected, rtol=1e-5)


def test_minibatch_stddev_whole_batch_when_group_exceeds_it():
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 2, 2, 1)))
    y = np.asarray(MinibatchStdDev(group_size=4).apply({}, x))
    np.testing.assert_allclose(y[..., 1], np.sqrt(x.var(axis=0) + 1e-8).mean(), rtol=1e-5)
