"""ganjax.models.cyclegan: shapes, the joint generator update, the Ds on pooled fakes made before it, learning."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import losses
from ganjax.models import cyclegan
from ganjax.training import devices
from ganjax.training.phases import make_step

S = 8
G = cyclegan.ResnetGenerator(channels=1, width=4, n_blocks=1)
D = cyclegan.PatchDiscriminator(width=4, n_layers=2)
MODEL = cyclegan.CycleGAN(cycle_weight=10.0, identity_weight=5.0)
SGD = optax.sgd(1.0)
STEP = jax.jit(make_step(MODEL.phases()))  # one compilation for every state of the same structure
_A = jnp.tanh(2.0 * jax.random.normal(jax.random.key(7), (4, S, S, 1)))
BATCH = {"a": _A, "b": -_A[::-1]}  # unpaired: B is A inverted, in another order
METRICS = {
    "g_loss",
    "cycle_loss",
    "identity_loss",
    "g_ab_grad_norm",
    "g_ba_grad_norm",
    "d_a_loss",
    "d_b_loss",
    "d_loss",
    "d_a_grad_norm",
    "d_b_grad_norm",
}


def make_state(tx=SGD, seed=0, pool_size=6, pool_share=0.5):
    return cyclegan.create_state(jax.random.key(seed), G, D, (S, S, 1), tx, pool_size=pool_size, pool_share=pool_share)


@pytest.mark.parametrize("size, patches", [(28, 4), (32, 4)])
def test_shapes(size, patches):
    g, d = cyclegan.ResnetGenerator(channels=3, width=4, n_blocks=1), cyclegan.PatchDiscriminator(width=4)
    x = jnp.zeros((2, size, size, 3))
    out = jax.eval_shape(lambda: g.apply(g.init(jax.random.key(0), x), x))
    logits = jax.eval_shape(lambda: d.apply(d.init(jax.random.key(0), x), x))
    assert out.shape == x.shape and logits.shape == (2, patches, patches)


def _apply(state, name, params=None):
    player = state.players[name]
    return lambda x: player(player.params if params is None else params, x, train=True)[0]


def _sgd(params, loss):
    return jax.tree.map(lambda p, g: p - g, params, jax.jit(jax.grad(loss))(params))


def _d_loss(state, name, real, fake):
    return lambda p: losses.least_squares_d_loss(_apply(state, name, p)(real), _apply(state, name, p)(fake))


def test_one_step_is_the_papers_losses_by_hand():
    """SGD(1): both Gs on the joint loss; each D on its reals against the fakes of the Gs before their update."""
    state = make_state()
    new, metrics = STEP(state, BATCH)
    assert set(metrics) == METRICS and int(new.step) == 1
    a, b = BATCH["a"], BATCH["b"]
    l1 = lambda x, y: jnp.mean(jnp.abs(x - y))

    def g_loss(params):
        g_ab, g_ba = _apply(state, "g_ab", params[0]), _apply(state, "g_ba", params[1])
        adversarial = losses.least_squares_g_loss(_apply(state, "d_b")(g_ab(a))) + losses.least_squares_g_loss(
            _apply(state, "d_a")(g_ba(b))
        )
        cycle, identity = l1(g_ba(g_ab(a)), a) + l1(g_ab(g_ba(b)), b), l1(g_ba(a), a) + l1(g_ab(b), b)
        return adversarial + 10.0 * cycle + 5.0 * identity

    expected = _sgd((state.params("g_ab"), state.params("g_ba")), g_loss)
    # Gradients of order 1 summed in another order: float32 noise of order 1e-4.
    chex.assert_trees_all_close((new.params("g_ab"), new.params("g_ba")), expected, rtol=1e-4, atol=3e-4)
    # The pools are empty at step 0, so each D sees the fresh fakes alone.
    fake_a, fake_b = _apply(state, "g_ba")(b), _apply(state, "g_ab")(a)
    for name, real, fake in (("d_a", a, fake_a), ("d_b", b, fake_b)):
        chex.assert_trees_all_close(
            new.params(name), _sgd(state.params(name), _d_loss(state, name, real, fake)), rtol=1e-4, atol=1e-6
        )
    np.testing.assert_allclose(metrics["d_loss"], 0.5 * (metrics["d_a_loss"] + metrics["d_b_loss"]), rtol=1e-6)
    # Each pool now holds its domain's fresh fakes.
    for pool, fake in ((new.buffers["pool_a"], fake_a), (new.buffers["pool_b"], fake_b)):
        assert int(pool.count) == 4
        np.testing.assert_allclose(pool.items[:4], fake, rtol=1e-5, atol=1e-6)


def test_each_d_replays_half_its_fakes_from_its_pool():
    """A pool full of one image: that image must replace the first half of D's fresh fakes."""
    state = make_state()
    stored = jnp.full((6, S, S, 1), 0.75)
    pools = {name: pool.push(stored) for name, pool in state.buffers.items()}
    state = state.replace(buffers=pools)
    new, _ = STEP(state, BATCH)
    fakes = {"d_a": _apply(state, "g_ba")(BATCH["b"]), "d_b": _apply(state, "g_ab")(BATCH["a"])}
    for name, real in (("d_a", BATCH["a"]), ("d_b", BATCH["b"])):
        mixed = fakes[name].at[:2].set(0.75)
        chex.assert_trees_all_close(
            new.params(name), _sgd(state.params(name), _d_loss(state, name, real, mixed)), rtol=1e-4, atol=1e-6
        )
        fresh_only = _sgd(state.params(name), _d_loss(state, name, real, fakes[name]))
        assert not np.allclose(jax.tree.leaves(new.params(name))[0], jax.tree.leaves(fresh_only)[0])


def test_without_identity_weight_there_is_no_identity_loss():
    model = cyclegan.CycleGAN(identity_weight=0.0)
    _, metrics = jax.jit(make_step(model.phases()))(make_state(), BATCH)
    assert "identity_loss" not in metrics and "cycle_loss" in metrics


@pytest.mark.slow  # 10-20 s of compilation on 2 cores: a slow-tier run check
def test_seed_determines_the_run_and_the_losses_fall():
    step = STEP
    adam = optax.adam(2e-3, b1=0.5)

    def run(seed, n=12):
        state, metrics = make_state(adam, seed), []
        for _ in range(n):
            state, m = step(state, BATCH)
            metrics.append(jax.device_get(m))
        return state, metrics

    state, metrics = run(0)
    again, _ = run(0, 12)
    chex.assert_trees_all_equal(state.players, again.players)
    chex.assert_trees_all_equal(state.buffers, again.buffers)
    first, other = make_state(seed=0), make_state(seed=1)
    assert not np.allclose(first.params("g_ab")["Conv_0"]["kernel"], other.params("g_ab")["Conv_0"]["kernel"])
    for name in ("cycle_loss", "identity_loss", "d_loss"):
        values = [float(m[name]) for m in metrics]
        assert np.mean(values[-3:]) < values[0], (name, values)
    assert int(state.buffers["pool_a"].count) == 12 * 4


@pytest.mark.slow
def test_one_device_mesh_runs_the_same_step():
    state = make_state()
    state = state.replace(
        buffers={name: pool.push(jnp.full((6, S, S, 1), 0.5)) for name, pool in state.buffers.items()}
    )
    expected, metrics = STEP(state, BATCH)
    mesh = devices.make_mesh(1)
    got, parallel_metrics = devices.data_parallel(make_step(MODEL.phases()), mesh)(
        devices.replicate(state, mesh), BATCH
    )
    chex.assert_trees_all_close(got.players, expected.players, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(got.buffers, expected.buffers, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(parallel_metrics, metrics, rtol=1e-5, atol=1e-6)


def test_translate_and_refusals():
    state = make_state()
    chex.assert_shape(cyclegan.translate(state, BATCH["a"], "ab"), BATCH["a"].shape)
    assert not np.allclose(cyclegan.translate(state, BATCH["a"], "ab"), cyclegan.translate(state, BATCH["a"], "ba"))
    with pytest.raises(ValueError, match="direction must be 'ab' or 'ba'"):
        cyclegan.translate(state, BATCH["a"], "aa")
    with pytest.raises(ValueError, match="must not be negative"):
        cyclegan.CycleGAN(cycle_weight=-1.0)


@pytest.mark.slow  # compiles the model in both precisions; DCGAN's bf16 tests stay in the default tier
def test_bfloat16_players_give_float32_close_to_float32_on_the_same_params():
    """``dtype=bfloat16``: same params, float32 outputs within bfloat16's rounding of float32's.

    Measured relative L2 errors are below 1%; asserted 5%.
    """
    x = jax.random.uniform(jax.random.key(2), (2, 16, 16, 1), minval=-1, maxval=1)
    for full in (cyclegan.ResnetGenerator(1, width=4, n_blocks=1), cyclegan.PatchDiscriminator(width=4, n_layers=2)):
        variables = full.init(jax.random.key(0), x)
        expected, actual = full.apply(variables, x), full.clone(dtype=jnp.bfloat16).apply(variables, x)
        assert actual.dtype == jnp.float32 and not np.array_equal(actual, expected)
        assert jnp.linalg.norm(actual - expected) < 0.05 * jnp.linalg.norm(expected)
