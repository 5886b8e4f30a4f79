"""Instance noise follows its schedule; G's noise layer and always-on dropout use their own keys."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from ganjax import noise


def test_schedule_decays_linearly_to_zero():
    schedule = noise.instance_noise_schedule(0.2, 100)
    chex.assert_trees_all_close([schedule(s) for s in (0, 50, 100, 500)], [0.2, 0.1, 0.0, 0.0], atol=1e-7)
    chex.assert_trees_all_close(noise.instance_noise_schedule(0.2, 0)(10_000), 0.2)
    with pytest.raises(ValueError):
        noise.instance_noise_schedule(-0.1, 10)


INPUT_NOISE = noise.InputNoise(std=0.5, decay_steps=1000)


@jax.jit
@chex.assert_max_traces(n=1)
def noisy(key, images, step):
    return INPUT_NOISE(key, images, step, None)


@pytest.mark.parametrize("step", [0, 250, 750])
def test_instance_noise_std_follows_schedule(step):
    images = jnp.ones((64, 16, 16, 1))
    noisy_images = noisy(jax.random.key(step), images, jnp.int32(step))
    chex.assert_shape(noisy_images, images.shape)
    expected = 0.5 * (1 - step / 1000)
    assert abs(float(jnp.std(noisy_images - images)) - expected) < 0.03 * expected
    assert noise.InputNoise()(jax.random.key(step), images, jnp.int32(step), None) is images  # off: unchanged


class G(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = noise.GaussianNoise(0.1)(nn.Dense(8)(x), deterministic=not train)
        return noise.DropoutAlways()(x)


def test_gaussian_noise_layer_and_dropout_always():
    g, x = G(), jnp.ones((4, 3))
    params = g.init(jax.random.key(0), x, train=False)
    rngs = lambda n, d: {"noise": jax.random.key(n), "dropout": jax.random.key(d)}
    # Dropout stays on at generation time: half the units are zero, the rest scaled by 2.
    out = g.apply(params, jnp.ones((256, 3)), train=False, rngs=rngs(0, 1))
    assert 0.4 < float(jnp.mean(out == 0)) < 0.6
    # The noise layer is off in evaluation mode and on in training mode, drawing from 'noise' only.
    same_dropout = [g.apply(params, x, train=False, rngs=rngs(n, 1)) for n in (0, 1)]
    chex.assert_trees_all_close(*same_dropout)
    noisy = [g.apply(params, x, train=True, rngs=rngs(n, 1)) for n in (0, 1)]
    assert not jnp.allclose(*noisy)
    with pytest.raises(Exception, match="noise"):
        g.apply(params, x, train=True, rngs={"dropout": jax.random.key(0)})
