"""DCGAN G's virtual and self-modulated BatchNorm: from the config to the layers, what each changes, one GAN step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import dcgan_mnist
from ganjax import run
from ganjax.latent import Latent
from ganjax.models import dcgan
from ganjax.training.gan import GAN, create_state
from ganjax.training.phases import make_step

LAYERS = {"virtual_batch": "VirtualBatchNorm", "self_modulated": "SelfModulatedBatchNorm"}
Z = jax.random.normal(jax.random.key(1), (3, 8))


def _generator(norm):
    return dcgan.Generator(28, width=4, latent_dim=8, norm=norm)


def _init(g):
    return g.init(jax.random.key(0), Z, train=False)


@pytest.mark.parametrize("norm", sorted(LAYERS))
def test_the_config_option_reaches_the_generator(norm):
    config = run.parse(dcgan_mnist.Config, ["--model.g-norm", norm])
    g, _ = dcgan_mnist.RECIPE.models(config)
    assert g.norm == norm


@pytest.mark.parametrize("norm", sorted(LAYERS))
def test_the_generator_normalizes_with_the_layer_after_every_hidden_layer(norm):
    params = _init(_generator(norm))["params"]
    # 28 = 7 * 2^2: the projection and one hidden upsampling are normalized, the output layer is not.
    assert {name for name in params if "Norm" in name} == {f"{LAYERS[norm]}_0", f"{LAYERS[norm]}_1"}


def test_virtual_batch_norm_makes_each_sample_independent_of_its_batch():
    """Each sample is normalized with the fixed reference batch plus itself; BatchNorm uses the whole batch."""
    for norm, independent in (("virtual_batch", True), ("batch", False)):
        g = _generator(norm)
        variables = _init(g)
        alone, _ = g.apply(variables, Z[:1], train=True, mutable=["batch_stats"])
        in_batch, _ = g.apply(variables, Z, train=True, mutable=["batch_stats"])
        assert in_batch.shape == (3, 28, 28, 1)
        assert np.allclose(alone[0], in_batch[0], atol=1e-6) == independent, norm


def test_virtual_batch_norm_normalizes_with_the_fixed_reference_latents(monkeypatch):
    """The reference latents are the same on every call; other reference latents give other images."""
    reference = dcgan.reference_latents(8)
    assert reference.shape == (dcgan.VIRTUAL_BATCH_REFERENCE, 8)
    np.testing.assert_array_equal(reference, dcgan.reference_latents(8))
    g = _generator("virtual_batch")
    variables = _init(g)
    out = g.apply(variables, Z, train=False)
    monkeypatch.setattr(dcgan, "reference_latents", lambda dim: 2.0 * reference)
    assert not np.allclose(g.apply(variables, Z, train=False), out, atol=1e-4)


def test_self_modulated_batch_norm_is_batch_norm_scaled_and_shifted_by_z():
    """With its MLPs' output layers zeroed it is BatchNorm with scale 1 and shift 0; at init it is not."""
    modulated, plain = _generator("self_modulated"), _generator("batch")
    variables = _init(modulated)
    params = variables["params"]

    def zero_outputs(layer):
        return {**layer, **{k: jax.tree.map(jnp.zeros_like, layer[k]) for k in ("scale_out", "shift_out")}}

    unmodulated = {k: zero_outputs(v) if k.startswith("SelfModulatedBatchNorm") else v for k, v in params.items()}
    batch_params = {k: v for k, v in params.items() if not k.startswith("SelfModulatedBatchNorm")}
    for i, features in enumerate((8, 4)):
        batch_params[f"BatchNorm_{i}"] = {"scale": jnp.ones(features), "bias": jnp.zeros(features)}
    expected, _ = plain.apply({"params": batch_params}, Z, train=True, mutable=["batch_stats"])
    got, _ = modulated.apply({"params": unmodulated}, Z, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    at_init, _ = modulated.apply(variables, Z, train=True, mutable=["batch_stats"])
    assert not np.allclose(at_init, expected, atol=1e-4)


@pytest.mark.parametrize("norm", sorted(LAYERS))
def test_generator_trains_through_the_gan_step(norm):
    gan = GAN(Latent(dim=8))
    g, d = _generator(norm), dcgan.Discriminator(28, width=4)
    state = create_state(jax.random.key(0), gan, g, d, (28, 28, 1))
    batch = {"image": jax.random.uniform(jax.random.key(1), (4, 28, 28, 1), minval=-1, maxval=1)}
    new_state, metrics = jax.jit(make_step(gan.phases()))(jax.tree.map(jnp.copy, state), batch)
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))
    layer = f"{LAYERS[norm]}_0"
    before, after = state.players["g"].params[layer], new_state.players["g"].params[layer]
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before, after)
    assert all(jax.tree.leaves(changed)), changed
