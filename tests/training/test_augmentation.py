"""ganjax.training.gan's Augmentation: DiffAugment and ADA on every input of D, checked against hand computations.

Each switch test fails if the step ignores the augmentation (its results would
equal the unaugmented step's) or applies it elsewhere than in the augmentation
(an identity augmentation would not give the unaugmented step back).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from ganjax import augment, checkpoint, penalties, rng, run
from ganjax.augment import Augmentation
from ganjax.latent import Latent
from ganjax.training.gan import GAN, create_state
from ganjax.training.objective import Objective
from ganjax.training.phases import PhaseInputs, make_step
from tests.training.tiny import LATENT, step_key, step_z

SHAPE = (8, 8, 3)
N = 8
IMAGES = {"image": jax.random.uniform(jax.random.key(5), (N, *SHAPE), minval=-1, maxval=1)}
SGD = optax.sgd(1.0)
DIFF = Augmentation("diffaugment")


class ImageG(nn.Module):
    """z -> Dense -> tanh, as an 8x8x3 image."""

    @nn.compact
    def __call__(self, z, train=True):
        return jnp.tanh(nn.Dense(int(np.prod(SHAPE)))(z)).reshape(-1, *SHAPE)


class ImageD(nn.Module):
    """One logit from the flattened image through one hidden layer (nonlinear, so gradient penalties see inputs)."""

    @nn.compact
    def __call__(self, x, train=True):
        h = nn.tanh(nn.Dense(6)(x.reshape(x.shape[0], -1)))
        self.sow("intermediates", "features", h)
        return nn.Dense(1)(h)[:, 0]


class SureD(nn.Module):
    """A D that calls everything real: its logits are above 10 whatever its params."""

    @nn.compact
    def __call__(self, x, train=True):
        return 10.0 + jax.nn.softplus(nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0])


class UnsureD(nn.Module):
    """A D whose logits alternate in sign from row to row: ``r_t = 0``."""

    @nn.compact
    def __call__(self, x, train=True):
        signs = jnp.where(jnp.arange(x.shape[0]) % 2 == 0, 1.0, -1.0)
        return signs * (1.0 + jax.nn.softplus(nn.Dense(1)(x.reshape(x.shape[0], -1))[:, 0]))


def image_gan(augmentation=None, objective=None, **parts) -> GAN:
    return GAN(Latent(dim=LATENT), objective or Objective(), augment=augmentation or Augmentation(), **parts)


def state_of(gan, d=None, seed=0):
    return create_state(jax.random.key(seed), gan, ImageG(), d or ImageD(), SHAPE, g_tx=SGD, d_tx=SGD)


def fresh_step(gan, only=None, n_critic=1):
    return jax.jit(make_step(tuple(p for p in gan.phases(n_critic) if only is None or p.name == only)))


compiled = functools.cache(fresh_step)  # one compilation per GAN and phases, shared by the tests


def run_step(gan, state, only=None, n_critic=1, batch=IMAGES):
    return compiled(gan, only, n_critic)(state, batch)


def assert_trees_equal(a, b):
    """Leaf by leaf (two states' players hold different module instances, so their tree metadata differ)."""
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


def assert_trees_differ(a, b):
    assert any(not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# ----------------------------------------------------------------------------- (a) the switch is wired in


PHASE_CASES = [
    ("d", "d", "non_saturating"),
    ("g", "g", "relativistic_average"),  # G's loss reads the reals too
]


@pytest.mark.parametrize("phase, player, loss", PHASE_CASES)
def test_diffaugment_changes_each_phase_and_an_identity_augmentation_undoes_it(phase, player, loss, monkeypatch):
    objective = Objective(loss=loss) if loss != "non_saturating" else None
    plain, augmented = image_gan(objective=objective), image_gan(DIFF, objective)
    state = state_of(plain)
    plain_state, plain_metrics = run_step(plain, state, phase)
    aug_state, aug_metrics = run_step(augmented, state, phase)
    loss_name = f"{phase}_loss"
    assert float(plain_metrics[loss_name]) != float(aug_metrics[loss_name])
    assert_trees_differ(plain_state.players[player].params, aug_state.players[player].params)

    monkeypatch.setattr(Augmentation, "apply", lambda self, params, images: images)
    same_state, same_metrics = fresh_step(augmented, phase)(state, IMAGES)
    np.testing.assert_array_equal(same_metrics[loss_name], plain_metrics[loss_name])
    assert_trees_equal(same_state.players[player].params, plain_state.players[player].params)


# ----------------------------------------------------------------------------- (b) G is trained through it


@pytest.mark.parametrize("g_objective", ["adversarial", "feature_matching"])
def test_gs_gradient_flows_through_the_augmentation_as_by_hand(g_objective):
    gan = image_gan(DIFF, Objective(g_objective=g_objective))
    state = state_of(gan)
    key = step_key(state)
    inputs = PhaseInputs(state, IMAGES, key, None, {})
    grads = jax.jit(jax.grad(lambda p: gan._g_main({"g": p}, inputs)[0]))(state.players["g"].params)

    g, d = state.players["g"], state.players["d"]
    aug = augment.diff_augment()
    z = step_z(state)[0]

    def by_hand(params):
        fake = aug(rng.named(key, "g/augment_fake"), g(params, z, train=True)[0])
        if g_objective == "adversarial":
            return gan.objective.pair.g(d(d.params, fake, train=True)[0], None)
        real = aug(rng.named(key, "g/augment_real"), IMAGES["image"])
        features = lambda x: d.with_features(d.params, x)[1]
        return jnp.sum((jnp.mean(features(fake), 0) - jnp.mean(features(real), 0)) ** 2)

    expected = jax.jit(jax.grad(by_hand))(g.params)
    leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves) and any(np.any(leaf != 0) for leaf in leaves)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads, expected)


def test_ds_loss_is_taken_on_the_augmented_batches():
    gan = image_gan(DIFF)
    state = state_of(gan)
    key = step_key(state)
    _, metrics = run_step(gan, state, "d")
    g, d = state.players["g"], state.players["d"]
    aug = augment.diff_augment()

    @jax.jit
    def by_hand():
        fake = g(g.params, step_z(state)[0], train=True)[0]
        real_logits = d(d.params, aug(rng.named(key, "augment_real"), IMAGES["image"]), train=True)[0]
        fake_logits = d(d.params, aug(rng.named(key, "augment_fake"), fake), train=True)[0]
        return gan.objective.pair.d(real_logits, fake_logits)

    np.testing.assert_allclose(metrics["d_loss"], by_hand(), rtol=1e-6)


@pytest.mark.parametrize("every, key_name", [(1, "augment_real"), (2, "penalty/augment_real")])
def test_r1_differentiates_d_on_augmented_reals_with_respect_to_the_reals(every, key_name):
    """StyleGAN2-ADA's R1: the gradient of D(augment(x)) with respect to the unaugmented reals x."""
    gan = image_gan(DIFF, Objective(penalty="r1", penalty_weight=1.0, penalty_every=every))
    state = state_of(gan)
    key = step_key(state)
    _, metrics = run_step(gan, state, None if every == 1 else "d_penalty")  # D as the penalty sees it
    d = state.players["d"]
    draw = augment.diff_augment().draw(rng.named(key, key_name), IMAGES["image"].shape)
    critic = lambda x: d(d.params, augment.diff_augment().apply(draw, x), train=False)[0]
    penalty_key = jax.random.split(rng.named(key, "d"), 4)[3] if every == 1 else rng.named(key, "penalty")
    expected = jax.jit(lambda: penalties.r1(critic, IMAGES["image"], None, penalty_key))()
    np.testing.assert_allclose(metrics["penalty"], expected, rtol=1e-5)
    plain = run_step(image_gan(objective=gan.objective), state, None if every == 1 else "d_penalty")[1]["penalty"]
    assert float(plain) != float(metrics["penalty"])


@pytest.mark.parametrize("every, prefix", [(1, ""), (2, "penalty/")])
def test_r1_r2_differentiates_d_on_each_batch_through_its_own_draw(every, prefix):
    """R3GAN's R1 + R2 under augmentation: R1 through the reals' draw, R2 through the fakes', in either phase."""
    gan = image_gan(DIFF, Objective(penalty="r1_r2", penalty_weight=1.0, penalty_every=every))
    state = state_of(gan)
    key = step_key(state)
    _, metrics = run_step(gan, state, "d" if every == 1 else "d_penalty")
    d, g = state.players["d"], state.players["g"]
    images = {"real": IMAGES["image"], "fake": g(g.params, step_z(state)[0], train=True)[0]}
    aug = augment.diff_augment()

    @functools.partial(jax.jit, static_argnums=0)
    def r1_through(draw_of, images):
        draw = aug.draw(rng.named(key, f"{prefix}augment_{draw_of}"), images.shape)
        return penalties.r1(lambda x: d(d.params, aug.apply(draw, x), train=False)[0], images, None, None)

    expected = r1_through("real", images["real"]) + r1_through("fake", images["fake"])
    np.testing.assert_allclose(metrics["penalty"], expected, rtol=1e-5)
    one_draw = r1_through("real", images["real"]) + r1_through("real", images["fake"])
    assert abs(float(one_draw - expected)) > 1e-4 * float(expected)  # the fakes' own draw matters


# ----------------------------------------------------------------------------- (c, d) ADA's p


def ada(**fields):
    return Augmentation("ada", interval=1, kimg=0.08, **fields)  # p moves by 8 / 80 = 0.1 a step


@pytest.mark.parametrize(
    "d, initial_p, expected",
    [
        (SureD(), 0.0, [0.1, 0.2, 0.3]),  # r_t = 1 > 0.6: D overfits, p rises
        (UnsureD(), 0.25, [0.15, 0.05, 0.0]),  # r_t = 0 < 0.6: p falls, and stays at 0
    ],
)
def test_adas_p_follows_the_sign_of_ds_real_logits_through_the_step(d, initial_p, expected):
    gan = image_gan(ada(initial_p=initial_p))
    state = state_of(gan, d)
    assert float(state.buffers["ada"].p) == initial_p
    step = compiled(gan, None, 1)
    ps, logged = [], []
    for _ in expected:
        state, metrics = step(state, IMAGES)
        ps.append(float(state.buffers["ada"].p))
        logged.append(float(metrics["ada_p"]))
        assert float(metrics["ada_rt"]) == (1.0 if isinstance(d, SureD) else 0.0)
    np.testing.assert_allclose(ps, expected, atol=1e-6)
    assert logged == ps


def test_adas_p_is_read_from_the_state():
    """At p = 0 ADA is the identity: D's loss is the unaugmented one; at p = 1 it is not."""
    plain = run_step(image_gan(), state_of(image_gan()), "d")[1]["d_loss"]
    gan = image_gan(Augmentation("ada"))
    state = state_of(gan)
    for p, same in ((0.0, True), (1.0, False)):
        state = state.replace(buffers={"ada": augment.ada_init(p)})
        assert (float(run_step(gan, state, "d")[1]["d_loss"]) == float(plain)) is same


def test_adas_state_survives_a_checkpoint_and_the_run_resumes_exactly(tmp_path):
    gan = image_gan(ada())
    step = compiled(gan, None, 1)
    state, _ = step(state_of(gan, SureD()), IMAGES)
    assert isinstance(state.buffers["ada"], augment.AdaState) and float(state.buffers["ada"].p) > 0
    saver = checkpoint.Checkpointer(tmp_path)
    saver.save(1, state)
    saver.close()
    template = state_of(gan, SureD(), seed=1)
    restored = checkpoint.Checkpointer(tmp_path).restore(template)[0]
    assert_trees_equal(restored.buffers["ada"], state.buffers["ada"])
    straight, _ = step(state, IMAGES)
    resumed, _ = step(restored, IMAGES)
    assert_trees_equal(resumed.buffers["ada"], straight.buffers["ada"])
    assert_trees_equal(resumed.players["d"].params, straight.players["d"].params)


def test_ada_updates_once_per_critic_update():
    gan = image_gan(ada())
    state, _ = run_step(
        gan, state_of(gan, SureD()), n_critic=3, batch={"image": jnp.tile(IMAGES["image"], (3, 1, 1, 1))}
    )
    np.testing.assert_allclose(state.buffers["ada"].p, 0.3, atol=1e-6)


def test_no_ada_buffer_without_ada():
    assert "ada" not in state_of(image_gan(DIFF)).buffers


# ----------------------------------------------------------------------------- (e) refusals

REFUSALS = [
    (lambda: Augmentation("flip"), "Augmentation.kind: unknown name 'flip'"),
    (lambda: Augmentation("diffaugment", policy="color,zoom"), "Augmentation.policy: augment: unknown op(s) ['zoom']"),
    (lambda: Augmentation("ada", policy="cutout"), "Augmentation.policy: augment: unknown op(s) ['cutout']"),
    (lambda: Augmentation(policy="color"), "Augmentation.policy: is 'color' with kind 'none'"),
    (lambda: Augmentation("ada", target=1.5), "Augmentation.target: must be in [0.0, 1.0], got 1.5"),
    (lambda: Augmentation("ada", interval=0), "Augmentation.interval: must be in [1, inf], got 0"),
    (lambda: Augmentation("ada", kimg=0.0), "Augmentation.kimg: must be positive"),
    (lambda: Augmentation("ada", initial_p=-0.1), "Augmentation.initial_p: must be in [0.0, 1.0]"),
    (lambda: Augmentation("diffaugment", target=0.5), "Augmentation.target: is 0.5 with kind 'diffaugment'"),
    (lambda: Augmentation(interval=2), "Augmentation.interval: is 2 with kind 'none': it is ADA's only"),
    (lambda: Augmentation("diffaugment", kimg=100.0), "Augmentation.kimg: is 100.0 with kind 'diffaugment'"),
    (lambda: Augmentation(initial_p=0.2), "Augmentation.initial_p: is 0.2 with kind 'none'"),
]


@pytest.mark.parametrize("make, message", REFUSALS)
def test_refusals_name_the_field(make, message):
    with pytest.raises(ValueError) as error:
        make()
    assert message in str(error.value)


def test_augmenting_points_is_refused_naming_the_field():
    """A 2D-point GAN (the Gaussian mixture's) has no images to augment."""
    from tests.training.tiny import REAL, LinearD, TinyG

    gan = GAN(Latent(dim=LATENT), augment=DIFF)
    state = create_state(jax.random.key(0), gan, TinyG(), LinearD(), (4,))
    with pytest.raises(ValueError, match=r"Augmentation.kind: 'diffaugment' augments images \(N, H, W, C\)"):
        make_step(gan.phases())(state, REAL)


def test_ada_without_its_buffer_is_refused_naming_the_field():
    gan = image_gan(Augmentation("ada"))
    state = state_of(image_gan())
    with pytest.raises(ValueError, match="Augmentation.kind: is 'ada' but the state has no buffers"):
        make_step(gan.phases())(state, IMAGES)


# ----------------------------------------------------------------------------- (f) off: the step as before

OBJECTIVES = [
    Objective(loss="relativistic_average", penalty="r1", penalty_weight=1.0, packing=2),
    Objective(penalty="wgan_gp", penalty_weight=10.0, loss="wasserstein", penalty_every=2),
    Objective(g_objective="feature_matching"),
]


@pytest.mark.parametrize("objective", OBJECTIVES, ids=lambda o: f"{o.loss}-{o.penalty}-{o.packing}-{o.g_objective}")
def test_ada_at_p_zero_is_the_unaugmented_step_bit_for_bit(objective):
    """ADA at p = 0 (before its first adjustment) transforms nothing: the whole step, penalty and packing included,
    is the default GAN's bit for bit, so the augmentation's keys disturb no other draw."""
    plain, adaptive = image_gan(objective=objective), image_gan(Augmentation("ada"), objective)
    state = state_of(plain)
    plain_state, plain_metrics = run_step(plain, state)
    ada_state, ada_metrics = run_step(adaptive, state_of(adaptive))
    assert_trees_equal(plain_state.players, ada_state.players)
    ada_metrics = {k: v for k, v in ada_metrics.items() if not k.startswith("ada_")}
    # The penalty's input gradient passes through the p = 0 draw (an identity gather), whose backward pass
    # sums in another order: the penalty's value agrees to float32 rounding, everything else bit for bit.
    np.testing.assert_allclose(plain_metrics.pop("penalty", 0.0), ada_metrics.pop("penalty", 0.0), rtol=1e-6)
    assert_trees_equal(plain_metrics, ada_metrics)
    assert plain == GAN(Latent(dim=LATENT), objective)


# ----------------------------------------------------------------------------- the experiments' flag


def test_the_image_experiments_take_the_augmentation_flag_off_by_default():
    from experiments import dcgan_mnist

    assert run.parse(dcgan_mnist.Config, []).make_gan().augment == Augmentation()
    for kind in ("ada", "diffaugment"):
        config = run.parse(dcgan_mnist.Config, ["--augment.kind", kind])
        assert config.make_gan().augment == Augmentation(kind)


def test_msggan_refuses_augmentation_naming_the_field():
    from experiments import msggan

    with pytest.raises(SystemExit):
        run.parse(msggan.Config, ["--augment.kind", "diffaugment"])
    with pytest.raises(ValueError, match="Augmentation.kind: MSG-GAN's D sees all scales"):
        msggan.Config(augment=Augmentation("diffaugment"))
