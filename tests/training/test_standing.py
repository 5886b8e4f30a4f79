"""ganjax.training.standing: BatchNorm statistics recomputed for other params (standing statistics)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax.training.standing import STANDING_BATCHES, batch_statistics, standing_stats
from ganjax.training.state import Player
from tests.training.tiny import CLASSES, ConditionalBatchNormG, ConditionalG, TinyG, standing_by_hand

KEY = jax.random.key(3)
normal = lambda key, n: jax.random.normal(key, (n, 3))


def player(module, *inputs) -> Player:
    return Player.create(module, optax.sgd(1.0), jax.random.key(0), *inputs)


def apart(params):
    """Params other than G's: the moving average of a G that has moved."""
    return jax.tree.map(lambda p: 1.5 * p + 0.2, params)


G = player(TinyG(), jnp.zeros((2, 3)))
# Running statistics of another network: recomputed statistics must not blend them in.
RUNNING = jax.tree.map(lambda s: s + 5.0, G.batch_stats)
stats_of = jax.jit(standing_stats, static_argnames=("apply_fn", "draw", "batch_size", "num_classes", "num_batches"))


def test_batch_statistics_are_the_batchs_own_not_blended_with_the_running_ones():
    z = normal(KEY, 8)
    stats = batch_statistics(G.apply_fn, {"params": G.params, "batch_stats": RUNNING}, z)
    h = z @ G.params["Dense_0"]["kernel"]
    np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], h.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(stats["BatchNorm_0"]["var"], h.var(0), rtol=1e-5, atol=1e-7)


def test_standing_stats_average_the_batch_statistics_of_the_given_params():
    params = apart(G.params)
    stats = stats_of(G.apply_fn, {"params": params, "batch_stats": RUNNING}, KEY, normal, 8, num_batches=3)
    chex.assert_trees_all_close(stats, standing_by_hand(params, KEY, normal, 8, 3), rtol=1e-5, atol=1e-7)
    own = stats_of(G.apply_fn, {"params": G.params, "batch_stats": RUNNING}, KEY, normal, 8, num_batches=3)
    assert not np.allclose(stats["BatchNorm_0"]["var"], own["BatchNorm_0"]["var"], rtol=0.1)  # the params' own


def test_a_conditional_gs_statistics_draw_classes_uniformly():
    g = player(ConditionalBatchNormG(), jnp.zeros((2, 3)), jnp.zeros((2,), jnp.int32))
    params = apart(g.params)
    variables = {"params": params, "batch_stats": g.batch_stats}
    stats = stats_of(g.apply_fn, variables, KEY, normal, 8, num_classes=CLASSES, num_batches=3)
    chex.assert_trees_all_close(
        stats, standing_by_hand(params, KEY, normal, 8, 3, num_classes=CLASSES), rtol=1e-5, atol=1e-7
    )


def test_the_default_averages_sixteen_batches_and_the_same_key_gives_the_same_statistics_bit_for_bit():
    stats = jax.jit(lambda variables, key: standing_stats(G.apply_fn, variables, key, normal, 4))
    variables = {"params": apart(G.params), "batch_stats": RUNNING}
    first = stats(variables, KEY)
    assert STANDING_BATCHES == 16
    chex.assert_trees_all_close(first, standing_by_hand(variables["params"], KEY, normal, 4), rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_equal(first, stats(variables, jax.random.key(3)))
    other = stats(variables, jax.random.key(4))
    assert not np.allclose(first["BatchNorm_0"]["mean"], other["BatchNorm_0"]["mean"])
    moved = stats({**variables, "params": apart(variables["params"])}, KEY)
    assert not np.allclose(first["BatchNorm_0"]["mean"], moved["BatchNorm_0"]["mean"])
    assert stats._cache_size() == 1  # compiled once for every key and params


def test_cross_replica_batchnorm_computes_the_whole_batchs_statistics():
    synced = player(TinyG(bn_axis_name="data"), jnp.zeros((2, 3)))
    variables = {"params": apart(G.params), "batch_stats": RUNNING}
    chex.assert_trees_all_close(
        standing_stats(synced.apply_fn, variables, KEY, normal, 8, num_batches=2),
        standing_stats(G.apply_fn, variables, KEY, normal, 8, num_batches=2),
    )


def test_a_g_without_batchnorm_passes_through_uncalled():
    g = player(ConditionalG(), jnp.zeros((2, 3)), jnp.zeros((2,), jnp.int32))
    assert standing_stats(g.apply_fn, {"params": g.params}, KEY, normal, 8, CLASSES) == {}
    refuse = lambda *a, **k: pytest.fail("called G")
    assert standing_stats(refuse, {"params": g.params, "batch_stats": {}}, KEY, normal, 8) == {}


@pytest.mark.parametrize("field, args", [("batch_size", (0,)), ("num_batches", (8, 0, 0))])
def test_bad_sizes_are_refused_naming_the_field(field, args):
    with pytest.raises(ValueError, match=f"standing_stats: {field} must be at least 1, got 0"):
        standing_stats(G.apply_fn, {"params": G.params, "batch_stats": RUNNING}, KEY, normal, *args)
