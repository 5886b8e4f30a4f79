"""Conditional players: the label embedding in G and as D's extra channels, projection D, AC-GAN D."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax.latent import Latent
from ganjax.models import conditional, dcgan
from ganjax.training.gan import GAN, create_state
from ganjax.training.objective import Conditioning
from ganjax.training.phases import make_step

S = 8  # image side: one stride-2 conv in D, one upsampling in G
X = jax.random.uniform(jax.random.key(0), (6, S, S, 1), minval=-1, maxval=1)
Y = jnp.array([0, 1, 2, 0, 1, 2])


def d_params(conditioning, **kwargs):
    d = conditional.Discriminator(
        conditioning=conditioning, num_classes=3, image_size=S, width=4, norm="none", **kwargs
    )
    inputs = (X, Y) if d.takes_labels else (X,)
    return d, d.init(jax.random.key(1), *inputs, train=False)["params"], inputs


def body_and_logit(params, x):
    """D's features and unconditional logit, by hand from its params."""
    h = dcgan.Features(S, 4, "none").apply({"params": params["body"]}, x, train=False)
    return h, h @ params["logit"]["kernel"][:, 0] + params["logit"]["bias"][0]


def test_generator_concatenates_the_label_embedding_with_z():
    g = conditional.Generator(num_classes=3, embed_dim=2, image_size=S, width=4, latent_dim=5)
    z = jnp.ones((3, 5))
    variables = g.init(jax.random.key(0), z, Y[:3], train=False)
    assert variables["params"]["embed"]["embedding"].shape == (3, 2)
    assert variables["params"]["body"]["Dense_0"]["kernel"].shape[0] == 5 + 2
    images = g.apply(variables, z, Y[:3], train=False)
    chex.assert_shape(images, (3, S, S, 1))
    assert not np.allclose(images[0], images[1])  # the label changes the image
    with pytest.raises(ValueError, match="expects labels of shape \\(3,\\)"):
        g.apply(variables, z, Y, train=False)


def test_channels_d_sees_the_embedding_broadcast_over_every_pixel():
    d, params, inputs = d_params("channels", embed_dim=2)
    embedding = params["embed"]["embedding"][Y]
    extra = jnp.broadcast_to(embedding[:, None, None, :], (6, S, S, 2))
    _, expected = body_and_logit(params, jnp.concatenate([X, extra], -1))
    np.testing.assert_allclose(d.apply({"params": params}, *inputs, train=False), expected, rtol=1e-5, atol=1e-6)
    assert params["body"]["Conv_0"]["kernel"].shape[2] == 1 + 2
    other = d.apply({"params": params}, X, (Y + 1) % 3, train=False)
    assert not np.allclose(other, expected)


def test_projection_d_adds_the_inner_product_of_class_embedding_and_features():
    d, params, inputs = d_params("projection")
    h, unconditional = body_and_logit(params, X)
    expected = unconditional + jnp.sum(params["projection"]["embedding"][Y] * h, axis=-1)
    np.testing.assert_allclose(d.apply({"params": params}, *inputs, train=False), expected, rtol=1e-5, atol=1e-6)


def test_auxiliary_d_returns_logit_and_class_logits_and_sows_features():
    d, params, inputs = d_params("auxiliary")
    (logits, class_logits), sown = d.apply({"params": params}, *inputs, train=False, mutable=["intermediates"])
    h, expected = body_and_logit(params, X)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        class_logits, h @ params["classes"]["kernel"] + params["classes"]["bias"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(sown["intermediates"][conditional.FEATURES][0], h, rtol=1e-6)
    with pytest.raises(ValueError, match="conditioning='auxiliary'\\) takes no labels"):
        d.apply({"params": params}, X, Y, train=False)
    with pytest.raises(ValueError, match="conditioning='channels'\\) needs labels"):
        conditional.Discriminator(conditioning="channels", image_size=S).init(jax.random.key(0), X, train=False)
    with pytest.raises(ValueError, match="unknown option 'film'"):
        conditional.Discriminator(conditioning="film")


@pytest.mark.parametrize("conditioning, aux", [("channels", 0.0), ("projection", 0.0), ("auxiliary", 1.0)])
def test_each_conditioning_trains_in_the_gan_step_and_compiles_once(conditioning, aux):
    gan = GAN(Latent(dim=4), conditioning=Conditioning(num_classes=3, aux_class_weight=aux))
    g = conditional.Generator(num_classes=3, embed_dim=2, image_size=S, width=4, latent_dim=4)
    d = conditional.Discriminator(conditioning=conditioning, num_classes=3, image_size=S, width=4)
    state = create_state(jax.random.key(0), gan, g, d, (S, S, 1))
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(make_step(gan.phases()), n=1), donate_argnums=0)
    for _ in range(2):
        state, metrics = step(state, {"image": X, "label": Y})
    chex.assert_tree_all_finite((state.players, metrics))
    assert ("d_class_loss" in metrics) == (conditioning == "auxiliary")


def test_acgan_class_head_learns_the_labels_of_real_digits(mnist):
    """The AC-GAN D's class loss on real digits falls as it trains (G's fakes are still noise)."""
    gan = GAN(Latent(dim=4), conditioning=Conditioning(num_classes=10, aux_class_weight=1.0))
    g = conditional.Generator(num_classes=10, embed_dim=2, width=4, latent_dim=4)
    d = conditional.Discriminator(conditioning="auxiliary", num_classes=10, width=8)
    state = create_state(jax.random.key(0), gan, g, d, (28, 28, 1), d_tx=optax.adam(2e-3))
    images = jnp.asarray(mnist.images[:64], jnp.float32) / 127.5 - 1.0
    batch = {"image": images, "label": jnp.asarray(mnist.labels[:64])}

    def real_class_loss(state):
        d = state.players["d"]
        (_, class_logits), _ = d(d.params, images, train=False)
        return float(optax.softmax_cross_entropy_with_integer_labels(class_logits, batch["label"]).mean())

    before = real_class_loss(state)
    d_phase = tuple(phase for phase in gan.phases() if phase.name == "d")
    step = jax.jit(make_step(d_phase), donate_argnums=0)
    for _ in range(50):
        state, _ = step(state, batch)
    assert before > 2.0 and real_class_loss(state) < 0.5 * before


@pytest.mark.parametrize("conditioning", ["channels", "projection", "auxiliary"])
def test_bfloat16_players_match_float32_on_the_same_params(conditioning):
    """With ``dtype=bfloat16`` the same params give float32 outputs within bfloat16's rounding of float32's."""
    d32, params, inputs = d_params(conditioning)
    d16 = d32.clone(dtype=jnp.bfloat16)
    g32 = conditional.Generator(num_classes=3, embed_dim=2, image_size=S, width=4, latent_dim=4)
    g16 = g32.clone(dtype=jnp.bfloat16)
    z = jax.random.normal(jax.random.key(2), (6, 4))
    g_vars = g32.init(jax.random.key(3), z, Y, train=False)
    for full, mixed in [
        (d32.apply({"params": params}, *inputs, train=False), d16.apply({"params": params}, *inputs, train=False)),
        (g32.apply(g_vars, z, Y, train=False), g16.apply(g_vars, z, Y, train=False)),
    ]:
        for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(mixed), strict=True):
            assert b.dtype == jnp.float32
            np.testing.assert_allclose(b, a, atol=0.02 * float(jnp.max(jnp.abs(a))))
