"""ganjax.models.msggan and experiments.msggan: every scale's shape, the real pyramid, seeds, learning."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import msggan as experiment
from ganjax import run
from ganjax.models import msggan
from ganjax.training.gan import create_state
from ganjax.training.phases import make_step


@pytest.mark.parametrize("size, sides", [(28, [7, 14, 28]), (32, [4, 8, 16, 32])])
def test_every_scale_has_its_shape(size, sides):
    assert msggan.scales(size) == sides
    g = msggan.Generator(size, channels=3, width=4, latent_dim=8)
    d = msggan.Discriminator(size, width=4)

    def run():
        packed = g.apply(g.init(jax.random.key(0), jnp.zeros((4, 8))), jnp.zeros((4, 8)))
        return packed, d.apply(d.init(jax.random.key(1), packed), packed)

    packed, logits = jax.eval_shape(run)
    assert packed.shape == (4, size, size, 3 * len(sides))
    assert [f.shape for f in jax.eval_shape(lambda p: msggan.unpack(p, sides), packed)] == [(4, s, s, 3) for s in sides]
    assert logits.shape == (4,)
    with pytest.raises(ValueError, match="expects 3 packed scales|expects 4 packed scales"):
        jax.eval_shape(lambda: d.init(jax.random.key(1), jnp.zeros((4, size, size, 5))))


def test_real_scales_are_average_pools_and_unpack_exactly():
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
    coarse, middle, fine = msggan.pyramid(x, 3)
    np.testing.assert_array_equal(fine, x)
    expected = np.asarray(x).reshape(2, 4, 2, 4, 2, 1).mean(axis=(2, 4))
    np.testing.assert_allclose(middle, expected, rtol=1e-6)
    np.testing.assert_allclose(coarse, expected.reshape(2, 2, 2, 2, 2, 1).mean(axis=(2, 4)), rtol=1e-6)
    chex.assert_trees_all_equal(msggan.unpack(msggan.pack([coarse, middle, fine]), [2, 4, 8]), [coarse, middle, fine])


def test_every_scale_of_g_gets_a_gradient_from_d():
    g, d = msggan.Generator(28, width=4, latent_dim=8), msggan.Discriminator(28, width=4)
    z = jax.random.normal(jax.random.key(0), (4, 8))
    g_vars = g.init(jax.random.key(1), z)
    d_vars = d.init(jax.random.key(2), msggan.real_scales(jnp.zeros((4, 28, 28, 1))))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(d.apply(d_vars, g.apply({"params": p}, z)))))(g_vars["params"])
    for i in range(3):
        assert np.abs(grads[f"to_rgb_{i}"]["kernel"]).sum() > 0


CONFIG = experiment.Config(model=experiment.Model(g_width=4, d_width=4), latent=run.Latent(dim=8))
# Built once: the modules and optimizers are static fields of the state, so new ones would compile anew.
G = msggan.Generator(28, 1, CONFIG.model.g_width, CONFIG.latent.dim)
D = msggan.Discriminator(28, CONFIG.model.d_width)
TX = CONFIG.optim.build(jax.random.key(0), CONFIG.schedule.steps)


@pytest.mark.slow  # 10-20 s of compilation on 2 cores: a slow-tier run check
def test_seed_determines_the_run_and_steps_lower_d_loss(mnist):
    """The experiment's step: reals pooled to every scale inside it, the relativistic average loss."""
    real = {"image": jnp.asarray(mnist.images[:16], jnp.float32) / 127.5 - 1.0}
    gan = CONFIG.make_gan()
    inner = make_step(gan.phases())
    step = jax.jit(lambda state, batch: inner(state, {"image": msggan.real_scales(batch["image"])}))

    def run(seed, n):
        state = create_state(jax.random.key(seed), gan, G, D, (28, 28, 3), g_tx=TX.g, d_tx=TX.d)
        metrics = []
        for _ in range(n):
            state, m = step(state, real)
            metrics.append(jax.device_get(m))
        return state, metrics

    state_a, metrics = run(0, 12)
    state_b, _ = run(0, 12)
    chex.assert_trees_all_equal(state_a.params("g"), state_b.params("g"))
    state_c, _ = run(1, 1)
    assert not np.allclose(state_a.params("g")["Dense_0"]["kernel"], state_c.params("g")["Dense_0"]["kernel"])
    d_losses = [m["d_loss"] for m in metrics]
    assert np.mean(d_losses[-3:]) < d_losses[0]
    assert all(np.isfinite(m["g_loss"]) for m in metrics)


@pytest.mark.slow  # compiles the model in both precisions; DCGAN's bf16 tests stay in the default tier
def test_bfloat16_players_give_float32_close_to_float32_on_the_same_params():
    """``dtype=bfloat16``: same params, float32 outputs within bfloat16's rounding of float32's.

    Measured: relative L2 error 2.2% for G (pixel norm over 4 channels), 0.5% for D; asserted 5%.
    """
    z = jax.random.normal(jax.random.key(1), (4, 8))
    real = msggan.real_scales(jax.random.uniform(jax.random.key(2), (4, 16, 16, 1), minval=-1, maxval=1))
    for full, inputs in [(msggan.Generator(16, 1, 4, 8), z), (msggan.Discriminator(16, 4), real)]:
        variables = full.init(jax.random.key(0), inputs)
        expected, actual = full.apply(variables, inputs), full.clone(dtype=jnp.bfloat16).apply(variables, inputs)
        assert actual.dtype == jnp.float32 and not np.array_equal(actual, expected)
        assert jnp.linalg.norm(actual - expected) < 0.05 * jnp.linalg.norm(expected)
