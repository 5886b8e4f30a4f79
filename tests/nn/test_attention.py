"""ganjax.nn.attention: identity at init, numpy attention otherwise."""

import jax
import numpy as np

from ganjax.nn import SelfAttention


def test_zero_gate_is_identity():
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 4, 4, 16)))
    layer = SelfAttention()
    variables = layer.init(jax.random.key(1), x)
    assert float(variables["params"]["gamma"]) == 0.0
    np.testing.assert_array_equal(layer.apply(variables, x), x)


def test_matches_numpy_attention():
    x = np.asarray(jax.random.normal(jax.random.key(0), (2, 3, 2, 16)))
    layer = SelfAttention()
    params = dict(jax.tree.map(np.asarray, layer.init(jax.random.key(1), x)["params"]), gamma=np.float32(0.7))
    assert params["query"]["kernel"].shape == (16, 2) and params["value"]["kernel"].shape == (16, 8)
    flat = x.reshape(2, 6, 16)
    q, k, v = (flat @ params[name]["kernel"] for name in ("query", "key", "value"))
    logits = np.einsum("nqd,nkd->nqk", q, k)
    beta = np.exp(logits - logits.max(-1, keepdims=True))
    beta /= beta.sum(-1, keepdims=True)
    expected = x + 0.7 * (beta @ v @ params["out"]["kernel"]).reshape(x.shape)
    np.testing.assert_allclose(layer.apply({"params": params}, x), expected, rtol=1e-4, atol=1e-5)
