"""ganjax.models.dcgan: every option's shapes at 28/32/64, the default layout, spectral D in a train step, bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend import core as jax_core

from ganjax.latent import Latent
from ganjax.models import dcgan
from ganjax.training.gan import GAN, create_state
from ganjax.training.phases import make_step

SIZES = [28, 32, 64]
G_OPTIONS = (
    [{"norm": n} for n in dcgan.G_NORMS]
    + [{"upsampling": u} for u in dcgan.UPSAMPLINGS]
    + [{"activation": a} for a in dcgan.ACTIVATIONS]
)
D_OPTIONS = [{"norm": n} for n in dcgan.D_NORMS]


def _shapes(module, inputs):
    """Output and variable shapes of init then a train-mode call, traced only (nothing is computed)."""

    def run():
        variables = module.init(jax.random.key(0), inputs, train=False)
        out, _ = module.apply(variables, inputs, train=True, mutable=["batch_stats"])
        return out, variables

    return jax.eval_shape(run)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("options", G_OPTIONS, ids=str)
def test_generator_shapes(size, options):
    out, _ = _shapes(dcgan.Generator(size, channels=3, width=8, latent_dim=16, **options), jnp.zeros((2, 16)))
    assert out.shape == (2, size, size, 3)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("options", D_OPTIONS, ids=str)
def test_discriminator_shapes(size, options):
    out, variables = _shapes(dcgan.Discriminator(size, width=8, **options), jnp.zeros((2, size, size, 1)))
    assert out.shape == (2,)
    has_stats = options["norm"] in ("batch", "spectral")
    assert ("batch_stats" in variables) == has_stats


def test_default_layout_is_unchanged():
    _, g = _shapes(dcgan.Generator(32, channels=3, width=8, latent_dim=16), jnp.zeros((2, 16)))
    assert jax.tree.map(lambda s: s.shape, g["params"]) == {
        "Dense_0": {"kernel": (16, 4 * 4 * 32)},
        "BatchNorm_0": {"scale": (32,), "bias": (32,)},
        "ConvTranspose_0": {"kernel": (4, 4, 32, 16)},
        "BatchNorm_1": {"scale": (16,), "bias": (16,)},
        "ConvTranspose_1": {"kernel": (4, 4, 16, 8)},
        "BatchNorm_2": {"scale": (8,), "bias": (8,)},
        "ConvTranspose_2": {"kernel": (4, 4, 8, 3), "bias": (3,)},
    }
    _, d = _shapes(dcgan.Discriminator(32, width=8), jnp.zeros((2, 32, 32, 3)))
    assert jax.tree.map(lambda s: s.shape, d["params"]) == {
        "Conv_0": {"kernel": (4, 4, 3, 8), "bias": (8,)},
        "Conv_1": {"kernel": (4, 4, 8, 16)},
        "BatchNorm_0": {"scale": (16,), "bias": (16,)},
        "Conv_2": {"kernel": (4, 4, 16, 32)},
        "BatchNorm_1": {"scale": (32,), "bias": (32,)},
        "Dense_0": {"kernel": (4 * 4 * 32, 1), "bias": (1,)},
    }


@pytest.mark.parametrize(
    "module,field",
    [
        (dcgan.Generator, "norm"),
        (dcgan.Generator, "upsampling"),
        (dcgan.Generator, "activation"),
        (dcgan.Discriminator, "norm"),
    ],
)
def test_unknown_option_names_the_field(module, field):
    with pytest.raises(ValueError, match=f"{module.__name__}.{field}"):
        module(**{field: "nope"})


def test_pixel_norm_generator_hidden_features_have_unit_rms():
    g = dcgan.Generator(28, width=4, latent_dim=8, norm="pixel")
    z = jax.random.normal(jax.random.key(1), (3, 8))
    variables = g.init(jax.random.key(0), z, train=False)
    _, state = g.apply(
        variables,
        z,
        train=True,
        capture_intermediates=lambda m, _: isinstance(m, dcgan.PixelNorm),
        mutable=["intermediates"],
    )
    for (out,) in jax.tree.leaves(state["intermediates"], is_leaf=lambda x: isinstance(x, tuple)):
        np.testing.assert_allclose(np.sqrt(np.mean(np.square(out), axis=-1)), 1.0, rtol=1e-4)


def test_leaky_relu_generator_differs_from_relu_only_in_activation():
    z = jax.random.normal(jax.random.key(1), (2, 8))
    relu, leaky = (dcgan.Generator(28, width=4, latent_dim=8, activation=a) for a in ("relu", "leaky_relu"))
    variables = relu.init(jax.random.key(0), z, train=False)
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, leaky.init(jax.random.key(0), z, train=False))
    assert not np.allclose(relu.apply(variables, z, train=False), leaky.apply(variables, z, train=False))


def _power_iteration(u, matrix):
    def normalize(v):
        return v / np.linalg.norm(v)

    return normalize(normalize(u @ matrix.T) @ matrix)


def test_spectral_discriminator_trains_through_the_gan_step():
    """Spectral norm's vectors live in batch_stats, which Player threads through the step unchanged.

    D's phase calls D in train mode twice (real, then fake), so each ``u`` moves
    by two power iterations on the kernel from before the update.
    """
    gan = GAN(Latent(dim=8))
    state = create_state(
        jax.random.key(0),
        gan,
        dcgan.Generator(28, width=4, latent_dim=8),
        dcgan.Discriminator(28, width=4, norm="spectral"),
        (28, 28, 1),
    )
    d = state.players["d"]
    kernel = np.asarray(d.params["SpectralConv_1"]["Conv_0"]["kernel"]).reshape(-1, 8)
    u = np.asarray(d.batch_stats["SpectralConv_1"]["SpectralNorm_0"]["Conv_0/kernel/u"])
    batch = {"image": jax.random.uniform(jax.random.key(1), (4, 28, 28, 1), minval=-1, maxval=1)}
    state, metrics = jax.jit(make_step(gan.phases()))(state, batch)
    assert np.isfinite(float(metrics["d_loss"])) and np.isfinite(float(metrics["g_loss"]))
    stats = state.players["d"].batch_stats["SpectralConv_1"]["SpectralNorm_0"]
    expected_u = _power_iteration(_power_iteration(u, kernel), kernel)
    np.testing.assert_allclose(stats["Conv_0/kernel/u"], expected_u, rtol=1e-4, atol=1e-6)


def test_generator_noise_in_training_and_dropout_always_on():
    """EBGAN's Gaussian noise acts only in training; pix2pix's dropout also at generation time."""
    z = jnp.ones((2, 4))
    keys = lambda seed: {"noise": jax.random.key(seed), "dropout": jax.random.key(seed + 1)}
    noisy = dcgan.Generator(28, 1, 8, 4, noise_std=0.5)
    variables = noisy.init(jax.random.key(0), z, train=False)
    same = [noisy.apply(variables, z, train=False, rngs=keys(s)) for s in (0, 2)]
    np.testing.assert_array_equal(same[0], same[1])
    differ = [noisy.apply(variables, z, train=True, rngs=keys(s), mutable=["batch_stats"])[0] for s in (0, 2)]
    assert np.abs(differ[0] - differ[1]).max() > 1e-3
    dropped = dcgan.Generator(28, 1, 8, 4, dropout=0.5)
    variables = dropped.init({"params": jax.random.key(0), **keys(0)}, z, train=False)
    outs = [dropped.apply(variables, z, train=False, rngs=keys(s)) for s in (0, 0, 2)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.abs(outs[0] - outs[2]).max() > 1e-3


def test_generator_output_is_tanh_bounded():
    """Images in [-1, 1] (ganhacks trick 1): even a huge z saturates at, never past, the bounds."""
    g = dcgan.Generator(28, 1, 8, 4)
    variables = g.init(jax.random.key(0), jnp.ones((2, 4)), train=False)
    out = g.apply(variables, 1e4 * jax.random.normal(jax.random.key(1), (8, 4)), train=False)
    assert float(jnp.max(jnp.abs(out))) <= 1.0
    assert float(jnp.max(jnp.abs(out))) > 0.99


def test_discriminator_halves_down_to_4x4():
    """28 -> 14 -> 7 -> 4, as the paper's D ends on a 4x4 map; 32 and 64 keep their depth."""
    assert [dcgan.downsamplings(s) for s in (28, 32, 64)] == [3, 3, 4]
    _, d = _shapes(dcgan.Discriminator(28, width=8), jnp.zeros((2, 28, 28, 1)))
    assert d["params"]["Conv_2"]["kernel"].shape == (4, 4, 16, 32)
    assert d["params"]["Dense_0"]["kernel"].shape == (4 * 4 * 32, 1)


def test_weights_start_as_in_the_paper():
    """DCGAN init: every conv weight ~ N(0, 0.02)."""
    d = dcgan.Discriminator(28, width=8)
    kernel = d.init(jax.random.key(0), jnp.zeros((2, 28, 28, 1)), train=False)["params"]["Conv_1"]["kernel"]
    assert abs(float(jnp.std(kernel)) - 0.02) < 0.003


# ----------------------------------------------------------------------------- mixed precision


def _tiny_state(dtype, seed, tx):
    """A 16x16x1 DCGAN computing in ``dtype``, both players on ``tx``."""
    return create_state(
        jax.random.key(seed),
        GAN(Latent(dim=16)),
        dcgan.Generator(16, 1, width=16, latent_dim=16, dtype=dtype),
        dcgan.Discriminator(16, width=16, dtype=dtype),
        (16, 16, 1),
        g_tx=tx,
        d_tx=tx,
    )


def _conv_dtypes(fn, *args) -> set[str]:
    """The operand dtypes of every convolution in ``fn``'s jaxpr (custom VJPs and jits included)."""
    found = set()

    def visit(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "conv_general_dilated":
                found.update(str(v.aval.dtype) for v in eqn.invars)
            for sub in jax_core.jaxprs_in_params(eqn.params):
                visit(sub)

    visit(jax.make_jaxpr(fn)(*args).jaxpr)
    return found


def test_bfloat16_models_convolve_in_bfloat16_and_return_float32():
    """Params and statistics are float32, every convolution of G and D bfloat16, images and logits float32."""
    g, d = dcgan.Generator(16, 1, 8, 16, dtype=jnp.bfloat16), dcgan.Discriminator(16, 8, dtype=jnp.bfloat16)
    z, x = jnp.zeros((2, 16)), jnp.zeros((2, 16, 16, 1))
    g_vars, d_vars = g.init(jax.random.key(0), z, train=False), d.init(jax.random.key(1), x, train=False)
    assert {leaf.dtype for leaf in jax.tree.leaves((g_vars, d_vars))} == {jnp.dtype("float32")}
    g_apply = lambda v, z: g.apply(v, z, train=True, mutable=["batch_stats"])
    d_apply = lambda v, x: d.apply(v, x, train=True, mutable=["batch_stats"])
    assert _conv_dtypes(g_apply, g_vars, z) == _conv_dtypes(d_apply, d_vars, x) == {"bfloat16"}
    (images, g_stats), (logits, d_stats) = g_apply(g_vars, z), d_apply(d_vars, x)
    assert images.dtype == logits.dtype == jnp.float32
    assert {leaf.dtype for leaf in jax.tree.leaves((g_stats, d_stats))} == {jnp.dtype("float32")}
    full = lambda v, z: dcgan.Generator(16, 1, 8, 16).apply(v, z, train=True, mutable=["batch_stats"])
    assert _conv_dtypes(full, g_vars, z) == {"float32"}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_bfloat16_step_is_within_tolerance_of_float32(seed):
    """One GAN step in bfloat16 against float32 from the same state and batch (SGD, so updates are gradients).

    Measured over four seeds: losses within 0.1% of float32, each player's update within 6.5% (relative
    L2 norm of the difference; cosine >= 0.998). Asserted: 1% and 15%. Params, optimizer state and
    BatchNorm statistics stay float32.
    """
    tx = optax.sgd(1e-3, momentum=0.9)
    batch = {"image": jax.random.uniform(jax.random.key(seed + 10), (32, 16, 16, 1), minval=-1, maxval=1)}
    step = jax.jit(make_step(GAN(Latent(dim=16)).phases()))
    start = _tiny_state(jnp.float32, seed, tx)
    full, full_metrics = step(start, batch)
    mixed, mixed_metrics = step(_tiny_state(jnp.bfloat16, seed, tx), batch)
    assert {leaf.dtype for leaf in jax.tree.leaves(mixed.players)} == {jnp.dtype("float32")}
    for name in ("d_loss", "g_loss"):
        np.testing.assert_allclose(mixed_metrics[name], full_metrics[name], rtol=1e-2)
    for player in ("d", "g"):
        flat = lambda state, name=player: jnp.concatenate(
            [p.ravel() for p in jax.tree.leaves(state.players[name].params)]
        )
        full_update, mixed_update = flat(full) - flat(start), flat(mixed) - flat(start)
        assert jnp.linalg.norm(mixed_update - full_update) < 0.15 * jnp.linalg.norm(full_update)


def test_bfloat16_gan_still_trains():
    """25 steps in bfloat16 on a two-tone image: D learns to tell it from G's fakes, as in float32."""
    image = jnp.where(jnp.arange(16)[None, :, None, None] < 8, 0.8, -0.8)
    batch = {"image": image + 0.1 * jax.random.normal(jax.random.key(3), (32, 16, 16, 1))}
    step = jax.jit(make_step(GAN(Latent(dim=16)).phases()))
    state = _tiny_state(jnp.bfloat16, 0, optax.adam(2e-3, b1=0.5))
    state, first = step(state, batch)
    for _ in range(24):
        state, metrics = step(state, batch)
    assert first["d_loss"] > 1.2 and metrics["d_loss"] < 0.3
    assert metrics["d_real"] > 0.9 and metrics["d_fake"] < 0.1
