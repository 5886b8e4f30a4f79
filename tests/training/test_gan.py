"""ganjax.training.gan: every switch of the GAN step, checked against its losses written out by hand.

Each switch test compares the step's metrics or its players' updates with a
recomputation that only holds when the step honours the switch, so a step
that ignores it fails. Updates are checked through plain SGD, whose update is
the gradient itself.
"""

import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import labels, latent, losses, optim, penalties
from ganjax.latent import Latent
from ganjax.models import dcgan
from ganjax.noise import InputNoise
from ganjax.training.gan import GAN, create_state, ema_stats, generate
from ganjax.training.objective import Conditioning, Objective
from tests.training.tiny import (
    CLASSES,
    LABELLED,
    LATENT,
    REAL,
    AuxD,
    ConditionalD,
    ConditionalG,
    SowingD,
    TanhConditionalD,
    adam_count,
    d_apply,
    d_keys,
    g_keys,
    gan_step,
    jit_step,
    make_state,
    run,
    sgd_step,
    standing_by_hand,
    step_fake,
    step_z,
    tiny_gan,
)

X = REAL["image"]
TOL = dict(rtol=1e-5, atol=1e-6)


def verdict(state, params, x, *y):
    """D's mean probability that ``x`` is real."""
    return jnp.mean(jax.nn.sigmoid(d_apply(state, params, x, *y)))


def d_params(state):
    return state.players["d"].params


def g_params(state):
    return state.players["g"].params


# ----------------------------------------------------------------------------- refusals

REFUSALS = [
    (lambda: Latent(dim=0), "Latent.dim: must be in [1, inf], got 0"),
    (lambda: Latent(distribution="cauchy"), "Latent.distribution: unknown name 'cauchy'"),
    (lambda: Objective(loss="wgan"), "Objective.loss: unknown name 'wgan'"),
    (lambda: Objective(penalty="gp", penalty_weight=1.0), "Objective.penalty: unknown name 'gp'"),
    (lambda: Objective(g_objective="mmd"), "Objective.g_objective: unknown name 'mmd'"),
    (
        lambda: Objective(loss="hinge", d_labels="one_sided"),
        "Objective.d_labels: 'one_sided' needs a loss that takes labels; 'hinge' takes none",
    ),
    (lambda: Objective(loss="wasserstein", label_flip_prob=0.1), "Objective.label_flip_prob: flipping needs a loss"),
    (lambda: Objective(label_flip_prob=1.5), "Objective.label_flip_prob: must be in [0.0, 1.0], got 1.5"),
    (lambda: Objective(penalty="r1", penalty_weight=-1.0), "Objective.penalty_weight: must be in [0.0, inf]"),
    (lambda: Objective(penalty="r1"), "Objective.penalty_weight: is 0.0 with penalty 'r1': set both or neither"),
    (lambda: Objective(penalty_every=4), "Objective.penalty_every: is 4 with no penalty"),
    (lambda: Objective(penalty="r1", penalty_weight=1.0, penalty_every=0), "Objective.penalty_every: must be in"),
    (lambda: Objective(penalty_weight_final=0.1), "Objective.penalty_weight_final: anneals the penalty's weight"),
    (
        lambda: Objective(penalty="r1_r2", penalty_weight=1.0, penalty_weight_final=0.1),
        "Objective.penalty_weight_final: needs penalty_anneal_steps",
    ),
    (
        lambda: Objective(penalty="r1_r2", penalty_weight=1.0, penalty_weight_final=-0.1, penalty_anneal_steps=5),
        "Objective.penalty_weight_final: must be in [0.0, inf]",
    ),
    (
        lambda: Objective(penalty="r1", penalty_weight=1.0, penalty_anneal_steps=5),
        "Objective.penalty_anneal_steps: is 5 with no penalty_weight_final",
    ),
    (lambda: Conditioning(aux_class_weight=1.0), "Conditioning.aux_class_weight: the AC-GAN class loss needs"),
    (lambda: Conditioning(num_classes=-1), "Conditioning.num_classes: must be in [0.0, inf]"),
    (
        lambda: Conditioning(3, conditional_g=False),
        "Conditioning.conditional_g: an unconditional G uses the labels through D's class head only",
    ),
    (
        lambda: Conditioning(3, aux_class_weight=1.0, conditional_g=False),
        "Conditioning.aux_fake_class_weight: is 1.0 with conditional_g False: an unconditional G's fakes have no class",
    ),
    (
        lambda: Conditioning(3, aux_class_weight=1.0, class_entropy_weight=0.5),
        "Conditioning.class_entropy_weight: is G's class term without a drawn class: set conditional_g False",
    ),
    (lambda: InputNoise(std=-0.1), "InputNoise.std: must be in [0.0, inf], got -0.1"),
    (lambda: InputNoise(std=0.1, decay_steps=-1), "InputNoise.decay_steps: must be in"),
    (
        lambda: GAN(objective=Objective(g_objective="feature_matching"), conditioning=Conditioning(3, 1.0)),
        "Objective.g_objective: feature matching has no AC-GAN class loss for G",
    ),
    (lambda: Objective(real_label=0.8), "Objective.real_label: is 0.8: it is the real target of d_labels 'one_sided'"),
    (lambda: Objective(d_labels="one_sided", real_label=1.5), "Objective.real_label: must be in [0.0, 1.0]"),
    (lambda: Objective(packing=0), "Objective.packing: must be in [1, inf], got 0"),
    (lambda: Objective(packing=1.5), "Objective.packing: must be a whole number of samples, got 1.5"),
    (
        lambda: GAN(objective=Objective(packing=2), conditioning=Conditioning(num_classes=3)),
        "Objective.packing: is 2 with num_classes 3: a pack of samples of different classes has no single class",
    ),
    (lambda: tiny_gan().phases(n_critic=0), "n_critic must be at least 1, got 0"),
    (lambda: make_state(replay_share=0.5), "replay_share is 0.5 with replay_capacity 0: set both or neither"),
    (lambda: make_state(ema_decay=1.0), "EMA decay must be in [0, 1), got 1.0"),
    (lambda: make_state(ema_decay=lambda n: 0.5 + 0 * n), "a scheduled EMA decay must start at 0"),
]


@pytest.mark.parametrize("make, message", REFUSALS, ids=[message.split(":")[0] for _, message in REFUSALS])
def test_inconsistent_values_are_refused_naming_the_field(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


# ----------------------------------------------------------------------------- the objective


@pytest.mark.parametrize("loss", sorted(losses.LOSSES))
def test_loss_pair_sets_both_losses_and_ds_verdicts_and_trains_finite(loss):
    """D's loss on this step's reals and fakes, G's through the updated D; 3 steps compile once and stay finite.

    sigmoid(logit) is D's P(real) only for the cross-entropy losses; the others report raw scores.
    """
    gan, pair = tiny_gan(Objective(loss=loss)), losses.LOSSES[loss]
    state = make_state(gan)
    chex.clear_trace_counter()
    step = jax.jit(chex.assert_max_traces(gan_step(gan), n=1), donate_argnums=0)
    new, metrics = run(step, state)
    fake, _ = step_fake(state)
    real_logits, fake_logits = (d_apply(state, d_params(state), x) for x in (X, fake))
    np.testing.assert_allclose(metrics["d_loss"], pair.d(real_logits, fake_logits), **TOL)
    new_real, new_fake = (d_apply(state, d_params(new), x) for x in (X, fake))
    np.testing.assert_allclose(metrics["g_loss"], pair.g(new_fake, new_real), **TOL)
    if pair.probabilistic:
        expected = {"d_real": jnp.mean(jax.nn.sigmoid(real_logits)), "d_fake": jnp.mean(jax.nn.sigmoid(fake_logits))}
    else:
        expected = {"d_real_score": jnp.mean(real_logits), "d_fake_score": jnp.mean(fake_logits)}
    assert {"d_real", "d_fake", "d_real_score", "d_fake_score"} & set(metrics) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, **TOL, err_msg=name)
    for _ in range(2):
        new, metrics = step(new, REAL)
    chex.assert_tree_all_finite((new.players, metrics))


@pytest.mark.parametrize(
    "loss, scheme, flip",
    [
        ("minimax", "one_sided", 0.0),
        ("minimax", "noisy", 0.0),
        ("non_saturating", "none", 1.0),
        ("least_squares", "noisy", 0.3),
    ],
)
def test_d_labels_and_flips_set_ds_targets(loss, scheme, flip):
    objective = Objective(loss=loss, d_labels=scheme, label_flip_prob=flip)
    state = make_state(tiny_gan(objective))
    _, metrics = run(jit_step(tiny_gan(objective), only="d"), state)
    logits = [d_apply(state, d_params(state), x) for x in (X, step_fake(state)[0])]
    targets = labels.d_labels(d_keys(state)[0], (8,), scheme, flip)
    np.testing.assert_allclose(metrics["d_loss"], objective.pair.d(*logits, *targets), **TOL)
    assert abs(float(metrics["d_loss"] - objective.pair.d(*logits))) > 1e-3  # hard labels give another loss


@pytest.mark.parametrize("penalty", sorted(penalties.PENALTIES))
def test_penalty_enters_ds_update_with_its_weight(penalty):
    """On a linear D every gradient penalty is a function of D's weights alone, whatever the draws."""
    objective = Objective(penalty=penalty, penalty_weight=5.0)
    state = make_state(tiny_gan(objective), d_tx=optax.sgd(0.1))
    new, metrics = run(jit_step(tiny_gan(objective), only="d"), state)
    fake = step_fake(state)[0]

    def value(params):
        views = penalties.PENALTIES[penalty].views
        d_fns = [lambda x: d_apply(state, params, x)] * len(views)
        return penalties.PENALTIES[penalty].fn(*d_fns, X, fake, jax.random.key(0))

    def total(params):
        return losses.minimax_d_loss(d_apply(state, params, X), d_apply(state, params, fake)) + 5.0 * value(params)

    np.testing.assert_allclose(metrics["penalty"], value(d_params(state)), **TOL)
    chex.assert_trees_all_close(d_params(new), sgd_step(d_params(state), total, 0.1), **TOL)


def linear_r1(state, params):
    """R1 of D with ``params`` on the reals."""
    return penalties.r1(lambda x: d_apply(state, params, x), X, None, None)


def test_lazy_penalty_is_its_own_phase_every_k_steps_weighted_k_times():
    lazy = tiny_gan(Objective(penalty="r1", penalty_weight=2.0, penalty_every=3))
    assert [phase.name for phase in lazy.phases()] == ["d", "d_penalty", "g"]
    lazy_step, main_step = jit_step(lazy, only=("d", "d_penalty")), jit_step(tiny_gan(), only="d")
    state = make_state(lazy, d_tx=optax.sgd(0.1))
    for t in range(4):
        new, metrics = run(lazy_step, state)
        main = d_params(run(main_step, state)[0])  # D's main update alone
        r1 = functools.partial(linear_r1, state)
        runs = t % 3 == 0
        expected = sgd_step(main, lambda p, r1=r1: 3 * 2.0 * r1(p), 0.1) if runs else main
        chex.assert_trees_all_close(d_params(new), expected, **TOL)
        np.testing.assert_allclose(metrics["penalty"], r1(main) if runs else 0.0, **TOL)
        assert (float(metrics["d_penalty_grad_norm"]) > 0) == runs
        state = new


@pytest.mark.parametrize("every", [1, 2])
def test_r1_r2_enters_ds_update_as_r1_on_the_reals_plus_r2_on_the_fakes(every):
    """On a nonlinear D, D's update (in its main phase, or the lazy one) is SGD on its loss plus w (R1 + R2);
    the update without either part is another."""
    gan = tiny_gan(Objective(penalty="r1_r2", penalty_weight=2.0, penalty_every=every))
    state = make_state(gan, d=SowingD(), d_tx=optax.sgd(0.1))
    new, metrics = run(jit_step(gan, only="d" if every == 1 else "d_penalty"), state)
    images = {"real": X, "fake": step_fake(state)[0]}

    @functools.partial(jax.jit, static_argnums=0)
    def by_hand(batches, params):
        """``(the penalty on batches, D's SGD update with it)``."""

        def penalty(params):
            return sum(penalties.r1(lambda x: d_apply(state, params, x), images[b], None, None) for b in batches)

        def total(params):
            d_loss = losses.minimax_d_loss(*(d_apply(state, params, images[b]) for b in ("real", "fake")))
            return (d_loss if every == 1 else 0.0) + every * 2.0 * penalty(params)

        return penalty(params), sgd_step(params, total, 0.1)

    value, expected = by_hand(("real", "fake"), d_params(state))
    np.testing.assert_allclose(metrics["penalty"], value, **TOL)
    chex.assert_trees_all_close(d_params(new), expected, **TOL)
    for part in ("real", "fake"):  # R1 alone, R2 alone
        alone = by_hand((part,), d_params(state))[1]
        assert not np.allclose(d_params(new)["Dense_0"]["kernel"], alone["Dense_0"]["kernel"])


def test_r1_r2_scores_each_batch_with_its_own_labels():
    gan = tiny_gan(Objective(penalty="r1_r2", penalty_weight=1.0), conditioning=Conditioning(num_classes=CLASSES))
    state = make_state(gan, g=ConditionalG(), d=TanhConditionalD())
    _, metrics = run(jit_step(gan, only="d"), state, LABELLED)
    fake, fake_y = step_fake(state, conditional=True)
    r1 = lambda x, y: penalties.r1(lambda x: d_apply(state, d_params(state), x, y), x, None, None)
    np.testing.assert_allclose(metrics["penalty"], r1(X, LABELLED["label"]) + r1(fake, fake_y), **TOL)
    assert abs(float(metrics["penalty"] - r1(X, LABELLED["label"]) - r1(fake, LABELLED["label"]))) > 1e-5


@pytest.mark.parametrize("every", [1, 3])
def test_annealed_penalty_weight_is_the_cosine_at_the_states_step(every):
    """D's update at step t is SGD on its loss plus w(t) R1, w(t) R3GAN's cosine from 4 to 1 over 10 steps."""
    objective = Objective(
        penalty="r1", penalty_weight=4.0, penalty_weight_final=1.0, penalty_anneal_steps=10, penalty_every=every
    )
    gan = tiny_gan(objective)
    step = jit_step(gan, only="d" if every == 1 else "d_penalty")
    for t, weight in [(0, 4.0), (3, 2.5 + 1.5 * np.cos(0.3 * np.pi)), (6, 2.5 + 1.5 * np.cos(0.6 * np.pi)), (30, 1.0)]:
        state = make_state(gan, d_tx=optax.sgd(0.1)).replace(step=jnp.asarray(t, jnp.int32))
        np.testing.assert_allclose(objective.penalty_weight_at(t), weight, rtol=1e-6)
        new, _ = run(step, state)
        fake = step_fake(state)[0]

        def total(params, state=state, fake=fake, weight=weight):
            d_loss = losses.minimax_d_loss(d_apply(state, params, X), d_apply(state, params, fake))
            return (d_loss if every == 1 else 0.0) + every * weight * linear_r1(state, params)

        chex.assert_trees_all_close(d_params(new), sgd_step(d_params(state), total, 0.1), **TOL)


@pytest.mark.parametrize("distribution", sorted(latent.LATENTS))
def test_latent_distribution_sets_gs_z(distribution):
    gan = tiny_gan(latent=Latent(LATENT, distribution))
    state = make_state(gan)
    _, metrics = run(jit_step(gan, only="d"), state)
    expected = verdict(state, d_params(state), step_fake(state, distribution=distribution)[0])
    np.testing.assert_allclose(metrics["d_fake"], expected, **TOL)
    if distribution != "gaussian":  # so that a step drawing Gaussian z whatever the choice fails
        assert abs(float(expected - verdict(state, d_params(state), step_fake(state)[0]))) > 1e-4


@pytest.mark.parametrize("step, scale", [(0, 1.0), (50, 0.5), (100, 0.0)])
def test_input_noise_reaches_ds_inputs_in_both_phases_and_decays(step, scale):
    gan = tiny_gan(noise=InputNoise(std=2.0, decay_steps=100))
    state = make_state(gan).replace(step=jnp.int32(step))
    new, metrics = run(jit_step(gan), state)
    fake = step_fake(state)[0]
    noisy = lambda key, x: x + scale * 2.0 * jax.random.normal(key, x.shape)
    _, real_key, fake_key, _ = d_keys(state)
    np.testing.assert_allclose(metrics["d_real"], verdict(state, d_params(state), noisy(real_key, X)), **TOL)
    np.testing.assert_allclose(metrics["d_fake"], verdict(state, d_params(state), noisy(fake_key, fake)), **TOL)
    g_fake = noisy(g_keys(state)[1], fake)
    np.testing.assert_allclose(
        metrics["g_loss"], losses.non_saturating_g_loss(d_apply(state, d_params(new), g_fake)), **TOL
    )


def test_d_update_lowers_its_loss_and_g_update_raises_d_of_g_z():
    gan = tiny_gan()
    state = make_state(gan, tx=optax.adam(1e-2))
    fake = step_fake(state)[0]
    d_loss = lambda params: losses.minimax_d_loss(d_apply(state, params, X), d_apply(state, params, fake))
    after_d, _ = run(jit_step(gan, only="d"), state)
    assert float(d_loss(d_params(after_d))) < float(d_loss(d_params(state)))
    chex.assert_trees_all_equal(g_params(after_d), g_params(state))  # D's phase leaves G alone
    after_g, _ = run(jit_step(gan, only="g"), state)
    fooled = lambda g: verdict(state, d_params(state), step_fake(state, g_params=g)[0])
    assert float(fooled(g_params(after_g))) > float(fooled(g_params(state)))
    chex.assert_trees_all_equal(d_params(after_g), d_params(state))


def test_metrics_match_their_definitions():
    state = make_state()
    _, metrics = run(jit_step(tiny_gan()), state)
    fake = step_fake(state)[0]
    d_loss = lambda params: losses.minimax_d_loss(d_apply(state, params, X), d_apply(state, params, fake))
    expected = {
        "d_loss": d_loss(d_params(state)),
        "d_real": verdict(state, d_params(state), X),
        "d_fake": verdict(state, d_params(state), fake),
        "d_grad_norm": optax.tree.norm(jax.grad(d_loss)(d_params(state))),
    }
    assert set(metrics) == {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"}
    for name, value in expected.items():
        np.testing.assert_allclose(metrics[name], value, **TOL, err_msg=name)


def test_step_is_ds_update_then_gs_through_the_new_d():
    """G's update is a G-only step (same z) against the freshly updated D."""
    gan = tiny_gan()
    state = make_state(gan)
    fused, _ = run(jit_step(gan), state)
    after_d, _ = run(jit_step(gan, only="d"), state)
    separate, _ = run(jit_step(gan, only="g"), after_d.replace(step=state.step))
    chex.assert_trees_all_close(fused.players, separate.players, **TOL)


def test_g_runs_forward_once_a_step_shared_by_ds_phase_and_gs():
    """G's phase reuses the linearised forward pass of D's phase: the step costs one G forward less than the two.

    With convolutions XLA does not merge two G forward passes by itself (the former monolithic step linearised
    G once), so a step that ran G twice would cost the sum.
    """
    gan = tiny_gan(latent=Latent(dim=8))
    state = create_state(jax.random.key(0), gan, dcgan.Generator(28, 1, 8, 8), dcgan.Discriminator(28, 8), (28, 28, 1))
    batch = {"image": jnp.zeros((8, 28, 28, 1))}
    flops = lambda fn, *args: jax.jit(fn).lower(*args).compile().cost_analysis()["flops"]
    g = state.players["g"]
    g_forward = flops(lambda p, z: g(p, z, train=True)[0], g.params, jnp.zeros((8, 8)))
    separate = flops(gan_step(gan, only="d"), state, batch) + flops(gan_step(gan, only="g"), state, batch)
    assert flops(gan_step(gan), state, batch) <= separate - 0.9 * g_forward


# ----------------------------------------------------------------------------- feature matching

FEATURE_MATCHING = tiny_gan(Objective(g_objective="feature_matching"))


def features(params, x):
    """SowingD's hidden layer, by hand."""
    return jnp.tanh(x @ params["Dense_0"]["kernel"] + params["Dense_0"]["bias"])


def test_feature_matching_g_descends_the_matching_loss_of_ds_hidden_layer():
    state = make_state(FEATURE_MATCHING, d=SowingD(), g_tx=optax.sgd(1.0))
    new, metrics = run(jit_step(FEATURE_MATCHING, only="g"), state)

    def loss(g):
        return losses.feature_matching_g_loss(
            features(d_params(state), step_fake(state, g_params=g)[0]), features(d_params(state), X)
        )

    np.testing.assert_allclose(metrics["g_loss"], loss(g_params(state)), **TOL)
    chex.assert_trees_all_close(g_params(new), sgd_step(g_params(state), loss), **TOL)
    chex.assert_trees_all_equal(d_params(new), d_params(state))
    assert int(new.step) == 1


def test_feature_matching_keeps_ds_update_and_changes_only_gs():
    state = make_state(FEATURE_MATCHING, d=SowingD())
    matched, metrics = run(jit_step(FEATURE_MATCHING), state)
    adversarial, _ = run(jit_step(tiny_gan()), state)
    chex.assert_trees_all_equal(d_params(matched), d_params(adversarial))
    assert not np.allclose(g_params(matched)["Dense_1"]["kernel"], g_params(adversarial)["Dense_1"]["kernel"])
    assert set(metrics) == {"d_loss", "d_real", "d_fake", "d_grad_norm", "g_loss", "g_grad_norm"}
    with pytest.raises(ValueError, match="the module sows no 'intermediates/features'"):
        run(jit_step(FEATURE_MATCHING), make_state(FEATURE_MATCHING))  # LinearD sows nothing


def test_feature_matching_g_matches_the_real_feature_means_against_a_fixed_d():
    state = make_state(FEATURE_MATCHING, d=SowingD(), g_tx=optax.adam(1e-2), d_tx=optax.sgd(0.0))
    step = jit_step(FEATURE_MATCHING)
    _, first = run(step, state)
    for _ in range(150):
        state, metrics = step(state, REAL)
    assert float(metrics["g_loss"]) < 0.1 * float(first["g_loss"])


# ----------------------------------------------------------------------------- conditioning


def test_conditional_d_sees_the_batchs_labels_and_the_drawn_fake_labels():
    gan = tiny_gan(conditioning=Conditioning(num_classes=CLASSES))
    state = make_state(gan, g=ConditionalG(), d=ConditionalD())
    step = jit_step(gan)
    new, metrics = run(step, state, LABELLED)
    fake, fake_y = step_fake(state, conditional=True)
    np.testing.assert_allclose(metrics["d_real"], verdict(state, d_params(state), X, LABELLED["label"]), **TOL)
    np.testing.assert_allclose(metrics["d_fake"], verdict(state, d_params(state), fake, fake_y), **TOL)
    images = generate(new, jnp.zeros((3, LATENT)), labels=jnp.arange(3))
    assert not np.allclose(images[0], images[1])  # the label changes the image
    with pytest.raises(ValueError, match="num_classes=3: the batch needs a 'label' entry"):
        run(step, new, REAL)


@pytest.mark.parametrize("fake_classes", ["uniform", "reals"])
def test_a_conditional_gs_classes_are_drawn_uniformly_or_are_the_real_batchs_own(fake_classes):
    """With ``fake_classes='reals'`` the i-th fake takes the i-th real's label, in G's draw and in D's view of it."""
    gan = tiny_gan(conditioning=Conditioning(num_classes=CLASSES, fake_classes=fake_classes))
    state = make_state(gan, g=ConditionalG(), d=ConditionalD())
    _, metrics = run(jit_step(gan), state, LABELLED)
    z, drawn = step_z(state)
    assert not np.array_equal(drawn, LABELLED["label"])  # the two choices give two fake batches
    fake_y = LABELLED["label"] if fake_classes == "reals" else drawn
    fake = state.players["g"](state.players["g"].params, z, fake_y, train=True)[0]
    np.testing.assert_allclose(metrics["d_fake"], verdict(state, d_params(state), fake, fake_y), **TOL)
    with pytest.raises(ValueError, match="fake_classes: is 'reals', but G takes no class"):
        Conditioning(fake_classes="reals")


@pytest.mark.parametrize("fake_weight", [1.0, 0.0])
def test_acgan_class_loss_enters_both_updates_with_its_weights(fake_weight):
    """D learns the reals' classes (and the fakes', weighted); G makes its fakes classifiable as their labels."""
    gan = tiny_gan(conditioning=Conditioning(CLASSES, aux_class_weight=0.5, aux_fake_class_weight=fake_weight))
    state = make_state(gan, g=ConditionalG(), d=AuxD(), tx=optax.sgd(0.1))
    new, metrics = run(jit_step(gan), state, LABELLED)
    fake_y = step_fake(state, conditional=True)[1]
    cross_entropy = lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def d_terms(params):
        (real, real_classes), (fake, fake_classes) = (
            d_apply(state, params, x) for x in (X, step_fake(state, conditional=True)[0])
        )
        class_loss = cross_entropy(real_classes, LABELLED["label"]) + fake_weight * cross_entropy(fake_classes, fake_y)
        return losses.minimax_d_loss(real, fake), class_loss

    def g_terms(g):
        fake, classes = d_apply(state, d_params(new), step_fake(state, g_params=g, conditional=True)[0])
        return losses.non_saturating_g_loss(fake), cross_entropy(classes, fake_y)

    for name, terms, before, after in (
        ("d", d_terms, d_params(state), d_params(new)),
        ("g", g_terms, g_params(state), g_params(new)),
    ):
        np.testing.assert_allclose(metrics[f"{name}_class_loss"], terms(before)[1], **TOL)
        expected = sgd_step(before, lambda p, terms=terms: terms(p)[0] + 0.5 * terms(p)[1], 0.1)
        chex.assert_trees_all_close(after, expected, **TOL)


@pytest.mark.parametrize("entropy_weight", [0.0, 0.5])
def test_an_unconditional_g_beside_a_class_head_takes_catgans_term_and_d_learns_the_reals_classes(entropy_weight):
    """D's class loss is on the labelled reals alone; G draws no class and, with a weight, descends the CatGAN term."""
    conditioning = Conditioning(
        CLASSES,
        aux_class_weight=0.5,
        aux_fake_class_weight=0.0,
        conditional_g=False,
        class_entropy_weight=entropy_weight,
    )
    gan = tiny_gan(conditioning=conditioning)
    state = make_state(gan, d=AuxD(), tx=optax.sgd(0.1))
    new, metrics = run(jit_step(gan), state, LABELLED)
    cross_entropy = lambda logits, y: optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def d_terms(params):
        (real, real_classes), (fake, _) = (d_apply(state, params, x) for x in (X, step_fake(state)[0]))
        return losses.minimax_d_loss(real, fake), cross_entropy(real_classes, LABELLED["label"])

    def g_terms(g):
        fake, classes = d_apply(state, d_params(new), step_fake(state, g_params=g)[0])
        return losses.non_saturating_g_loss(fake), losses.class_entropy_g_loss(classes)

    np.testing.assert_allclose(metrics["d_class_loss"], d_terms(d_params(state))[1], **TOL)
    assert "g_class_loss" not in metrics
    assert ("g_class_entropy" in metrics) == bool(entropy_weight)
    for weight, terms, before, after in (
        (0.5, d_terms, d_params(state), d_params(new)),
        (entropy_weight, g_terms, g_params(state), g_params(new)),
    ):
        expected = sgd_step(before, lambda p, terms=terms, w=weight: terms(p)[0] + w * terms(p)[1], 0.1)
        chex.assert_trees_all_close(after, expected, **TOL)


# ----------------------------------------------------------------------------- n_critic, EMA, replay, optimizers


def test_n_critic_updates_d_n_times_per_g_update():
    gan = tiny_gan()
    state = make_state(gan, tx=optax.adam(1e-3))
    new, metrics = run(jit_step(gan, n_critic=3), state, {"image": jnp.concatenate([X] * 3)})
    assert (adam_count(new.players["d"].opt_state), adam_count(new.players["g"].opt_state), int(new.step)) == (3, 1, 1)
    chex.assert_tree_all_finite(metrics)
    with pytest.raises(ValueError, match="a batch of 8 rows does not split into 3 real batches"):
        run(jit_step(gan, n_critic=3), state)


def test_ema_of_g_follows_each_g_update_and_samples():
    state = make_state(ema_decay=0.9)
    assert set(state.ema) == {"g"}
    step = jit_step(tiny_gan())
    first, _ = run(step, state)
    chex.assert_trees_all_close(first.ema["g"].params, g_params(first), rtol=1e-6)  # debiased: the start is gone
    new, _ = run(step, first)
    expected = jax.tree.map(lambda a, b: (0.9 * a + b) / 1.9, g_params(first), g_params(new))
    chex.assert_trees_all_close(new.ema["g"].params, expected, rtol=1e-5)
    z = jnp.ones((2, LATENT))
    normal = lambda key, n: jax.random.normal(key, (n, LATENT))
    stats = ema_stats(new, jax.random.key(5), normal, 8)
    chex.assert_trees_all_close(stats, standing_by_hand(new.ema["g"].params, jax.random.key(5), normal, 8), rtol=1e-5)
    ema_g = new.players["g"].replace(batch_stats=stats)
    chex.assert_trees_all_close(
        generate(new, z, use_ema=True, ema_stats=stats), ema_g(new.ema["g"].params, z, train=False)[0]
    )
    assert not np.allclose(generate(new, z, use_ema=True, ema_stats=stats), generate(new, z))
    with pytest.raises(ValueError, match="generate: use_ema samples G's moving average, whose BatchNorm statistics"):
        generate(new, z, use_ema=True)  # G's running statistics are G's, not the average's
    with pytest.raises(ValueError, match="player 'g' keeps no moving average"):
        generate(make_state(), z, use_ema=True)


def test_ema_with_a_half_life_annealed_from_0_is_g_then_follows_the_schedule():
    """R3GAN's EMA: a half-life of 0 at step 0 makes the average G itself; step t then uses the decay of t."""
    decay = optim.half_life_decay(optim.cosine_anneal(0.0, 64.0, 4), batch_size=8)
    state = make_state(ema_decay=decay)
    step = jit_step(tiny_gan())
    first, _ = run(step, state)
    chex.assert_trees_all_close(first.ema["g"].params, g_params(first), rtol=1e-6)
    new, _ = run(step, first)
    beta = float(decay(1))  # 0.5 ** (8 / (32 (1 - cos(pi / 4)))): about 0.75
    expected = jax.tree.map(lambda a, b: beta * a + (1 - beta) * b, g_params(first), g_params(new))
    chex.assert_trees_all_close(new.ema["g"].params, expected, rtol=1e-5)
    assert not np.allclose(new.ema["g"].params["Dense_0"]["kernel"], g_params(new)["Dense_0"]["kernel"])


def test_replay_mixes_past_fakes_into_ds_fake_batch_and_pushes_the_fresh_ones():
    state = make_state(replay_capacity=16, replay_share=0.5)
    state = state.replace(buffers={"replay": state.buffers["replay"].push(jnp.full((16, 4), 0.5))})
    new, metrics = run(jit_step(tiny_gan(), only="d"), state)
    fresh = step_fake(state)[0]
    mixed = fresh.at[:4].set(0.5)  # share 0.5 of 8: the first 4 replayed
    np.testing.assert_allclose(metrics["d_fake"], verdict(state, d_params(state), mixed), **TOL)
    assert abs(float(metrics["d_fake"] - verdict(state, d_params(state), fresh))) > 1e-4
    pool = new.buffers["replay"]
    assert int(pool.count) == 16 + 8
    np.testing.assert_allclose(pool.items[:8], fresh, **TOL)  # slots 16..23 mod 16: this step's fresh fakes
    np.testing.assert_array_equal(pool.items[8:], 0.5)


def test_gradient_clipping_of_the_players_optimizers_bounds_each_update():
    tx = optim.gan_optimizers(1.0, 1.0, g_optimizer="sgd", d_optimizer="sgd", grad_clip=1e-3)
    state = make_state(g_tx=tx.g, d_tx=tx.d)
    new, metrics = run(jit_step(tiny_gan()), state)
    for name in ("g", "d"):
        update = optax.tree.norm(jax.tree.map(jnp.subtract, new.players[name].params, state.players[name].params))
        assert float(metrics[f"{name}_grad_norm"]) > 1e-2  # the raw gradient, before clipping
        np.testing.assert_allclose(update, 1e-3, rtol=1e-3, err_msg=name)


def test_generate_uses_running_statistics_unless_training():
    state = make_state()
    z = jax.random.normal(jax.random.key(1), (4, LATENT))
    g = state.players["g"]
    np.testing.assert_array_equal(generate(state, z), g(g.params, z, train=False)[0])
    np.testing.assert_array_equal(generate(state, z, train=True), g(g.params, z, train=True)[0])
    assert not np.allclose(generate(state, z), generate(state, z, train=True))


def test_create_state_initialises_both_players_on_the_gans_shapes():
    gan = tiny_gan(conditioning=Conditioning(num_classes=CLASSES))
    state = create_state(jax.random.key(0), gan, ConditionalG(), ConditionalD(), (4,))
    assert int(state.step) == 0 and set(state.players) == {"g", "d"} and not state.ema and not state.buffers
    chex.assert_shape(state.players["g"].params["Dense_0"]["kernel"], (LATENT + CLASSES, 4))
    chex.assert_shape(state.players["d"].params["Dense_0"]["kernel"], (4 + CLASSES, 1))
