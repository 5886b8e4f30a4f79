"""Optimizer transforms: clipping, noise, recipes, optimism and the EMA."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import optim

PARAMS = {"w": jnp.ones((3,)), "b": jnp.zeros(())}
GRADS = {"w": jnp.array([3.0, 0.0, 0.0]), "b": jnp.array(4.0)}  # global norm 5


def _update(tx, grads=GRADS, params=PARAMS):
    state = tx.init(params)
    return jax.jit(tx.update)(grads, state, params)


def test_grad_clip_bounds_the_update_norm():
    tx = optim.player_optimizer("sgd", 1.0, grad_clip=1.0)
    updates, _ = _update(tx)
    chex.assert_trees_all_close(optax.tree.norm(updates), jnp.float32(1.0), rtol=1e-6)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -g / 5.0, GRADS), rtol=1e-6)


VARIANTS = {
    "dcgan": lambda: optim.gan_optimizers(),
    "sgd_d_adam_g": lambda: optim.gan_optimizers(d_optimizer="sgd"),
    "ttur": lambda: optim.gan_optimizers(lr_g=1e-4, lr_d=4e-4, b1=0.0, b2=0.9),
    "clip_noise_optimistic": lambda: optim.gan_optimizers(
        grad_clip=1.0, grad_noise=0.01, optimistic=True, key=jax.random.key(0)
    ),
    "optimistic_sgd": lambda: optim.gan_optimizers(d_optimizer="sgd", optimistic=True),
    "rmsprop": lambda: optim.gan_optimizers(d_optimizer="rmsprop"),
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_recipes_step(name):
    tx = VARIANTS[name]()
    for player in (tx.g, tx.d):
        updates, _ = _update(player)
        chex.assert_tree_all_finite(updates)
        assert updates["b"] < 0  # a descent step on a positive gradient


def test_recipes_choose_the_right_rules():
    """SGD for D and Adam for G (ganhacks #9), and TTUR's faster D (Heusel et al. 2017), as the config sets them."""
    sgd_adam = optim.gan_optimizers(lr_g=2e-4, lr_d=0.1, d_optimizer="sgd")
    d_updates, _ = _update(sgd_adam.d)
    chex.assert_trees_all_close(d_updates, jax.tree.map(lambda g: -0.1 * g, GRADS))  # plain SGD
    g_updates, _ = _update(sgd_adam.g)
    chex.assert_trees_all_close(g_updates["b"], jnp.float32(-2e-4), rtol=1e-3)  # Adam's first step is lr * sign
    tt = optim.gan_optimizers(lr_g=1e-4, lr_d=4e-4, b1=0.0, b2=0.9)
    chex.assert_trees_all_close(_update(tt.d)[0]["b"] / _update(tt.g)[0]["b"], jnp.float32(4.0), rtol=1e-3)
    with pytest.raises(ValueError, match="key"):
        optim.gan_optimizers(grad_noise=0.1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.gan_optimizers(d_optimizer="lbfgs")


def test_gradient_noise_variance_decays():
    """optax.add_noise's std is sqrt(eta / t^0.55): zero gradients come back as that noise."""
    tx = optim.player_optimizer("sgd", 1.0, grad_noise=1.0, key=jax.random.key(0))
    params = jnp.zeros(20_000)
    state = tx.init(params)
    update = jax.jit(tx.update)
    stds = []
    for _ in range(3):
        updates, state = update(jnp.zeros_like(params), state, params)
        stds.append(float(jnp.std(updates)))
    chex.assert_trees_all_close(stds, [t**-0.275 for t in (1, 2, 3)], rtol=0.03)


def test_ema_tracks_its_source():
    """After n steps toward a fixed target, the debiased average is the target: the start has no weight."""
    ema = optim.EMA.create(PARAMS, decay=0.9)
    target = jax.tree.map(lambda p: p + 2.0, PARAMS)
    step = jax.jit(chex.assert_max_traces(lambda e, p: e.update(p), n=1))
    for _ in range(30):
        ema = step(ema, target)
    chex.assert_trees_all_close(ema.params, target, rtol=1e-6)
    chex.assert_trees_all_close(optim.ema_update(PARAMS, target, 0.0), target)
    assert ema.params["w"] is not PARAMS["w"] and optim.EMA.create(PARAMS, 0.5).params["w"] is not PARAMS["w"]
    with pytest.raises(ValueError):
        optim.EMA.create(PARAMS, 1.0)


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.999])
def test_ema_is_the_exponentially_weighted_mean_of_its_updates_only(decay):
    """avg_n = sum_k decay^(n-k) p_k / sum_k decay^(n-k) over the n updates, whatever it started from."""
    values = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    ema = optim.EMA.create({"w": jnp.full(3, 100.0)}, decay=decay)
    update = jax.jit(lambda e, p: e.update(p))
    for value in values:
        ema = update(ema, {"w": jnp.asarray(value)})
    weights = decay ** np.arange(len(values))[::-1]
    np.testing.assert_allclose(ema.params["w"], weights @ values / weights.sum(), rtol=2e-5, atol=2e-6)
    assert int(ema.count) == len(values)


def test_linear_decay_is_constant_then_falls_linearly_to_zero():
    schedule = optim.linear_decay(2e-4, 100)
    chex.assert_trees_all_close([schedule(t) for t in (0, 49, 50, 75, 100)], [2e-4, 2e-4, 2e-4, 1e-4, 0.0], atol=1e-9)


@pytest.mark.parametrize(
    "base, final, steps",
    [(2e-4, 5e-5, 100), (0.05, 0.005, 8), (0.9, 0.99, 7), (0.0, 640.0, 10)],  # R3GAN's lrs, gamma, b2, EMA half-life
)
def test_cosine_anneal_goes_from_base_to_final_and_stays(base, final, steps):
    schedule = jax.jit(optim.cosine_anneal(base, final, steps))
    values = [float(schedule(t)) for t in (0, steps / 4, steps / 2, steps, 3 * steps)]
    quarter = final + (base - final) * (1 + np.cos(np.pi / 4)) / 2
    np.testing.assert_allclose(values, [base, quarter, (base + final) / 2, final, final], rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="steps must be at least 1"):
        optim.cosine_anneal(base, final, 0)


def test_half_life_decay_halves_a_weight_in_half_life_images():
    decay = optim.half_life_decay(640.0, batch_size=64)  # 10 steps
    np.testing.assert_allclose(decay**10, 0.5, rtol=1e-12)
    ramp = optim.half_life_decay(optim.cosine_anneal(0.0, 640.0, 4), batch_size=64)
    np.testing.assert_allclose([float(ramp(t)) for t in (0, 2, 4)], [0.0, 0.5 ** (64 / 320), decay], rtol=1e-6)


def test_ema_with_a_decay_scheduled_from_0_is_g_then_the_plain_average():
    """A decay of 0 at the first update replaces the start; then avg_n = beta_n avg_{n-1} + (1 - beta_n) p_n."""
    ema = optim.EMA.create({"w": jnp.full(2, 100.0)}, decay=lambda n: jnp.minimum(0.5 * n, 0.9))  # 0, 0.5, 0.9, 0.9
    update = jax.jit(lambda e, p: e.update(p))
    averages = []
    for value in (1.0, 3.0, 5.0, 7.0):
        ema = update(ema, {"w": jnp.full(2, value)})
        averages.append(float(ema.params["w"][0]))
    np.testing.assert_allclose(averages, [1.0, 2.0, 2.3, 2.77], rtol=1e-6)
    with pytest.raises(ValueError, match="a scheduled EMA decay must start at 0"):
        optim.EMA.create(PARAMS, optim.half_life_decay(optim.cosine_anneal(64.0, 640.0, 4), 64))


def test_a_scheduled_b2_is_injected_into_adam_and_read_at_every_update():
    """Each player reads its own b2 schedule at each of its updates (opt_state.hyperparams holds the last one used)."""
    schedules = optim.GANOptimizers(g=optim.cosine_anneal(0.9, 0.99, 4), d=optim.cosine_anneal(0.9, 0.99, 8))
    tx = optim.gan_optimizers(1e-3, 1e-3, b1=0.0, b2=schedules.g, b2_d=schedules.d)
    constant = optax.adam(1e-3, b1=0.0, b2=0.9)
    for chain, schedule in zip(tx, schedules, strict=True):
        state, fixed = chain.init(PARAMS), constant.init(PARAMS)
        update = jax.jit(chain.update)
        for t in range(6):
            grads = jax.tree.map(lambda g, t=t: g * (1 + t) ** 2, GRADS)
            updates, state = update(grads, state, PARAMS)
            fixed_updates, fixed = constant.update(grads, fixed, PARAMS)
            b2 = optax.tree_utils.tree_get(state, "hyperparams")["b2"]
            np.testing.assert_allclose(b2, schedule(t), rtol=1e-6)
        assert not np.allclose(updates["w"], fixed_updates["w"])  # a constant b2 gives other updates
    with pytest.raises(ValueError, match="a scheduled b2 is Adam's; optimizer 'sgd' has none"):
        optim.player_optimizer("sgd", 1e-3, b2=schedules.g)
