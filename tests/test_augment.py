"""DiffAugment and ADA: pure, differentiable, content-blind transforms; ADA's controller moves p as the paper says."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import augment

KEY, OTHER_KEY = jax.random.key(0), jax.random.key(7)
# One batch shape for most checks: every augmentation compiles once per shape (compiling is the slow part).
X = jax.random.uniform(jax.random.key(1), (16, 16, 16, 3), minval=-1.0, maxval=1.0)
GREY = X[..., :1]
OTHER = jax.random.normal(jax.random.key(3), X.shape)  # other content, for the content-blindness check
WEIGHTS = jax.random.normal(jax.random.key(2), X.shape)

# name -> (augmentation, extra arguments): every DiffAugment policy and ADA's ops (at p = 1 or between).
AUGMENTS = {
    "diff_color": (augment.diff_augment("color"), ()),
    "diff_translation": (augment.diff_augment("translation"), ()),
    "diff_cutout": (augment.diff_augment("cutout"), ()),
    "diff_all": (augment.diff_augment("color,translation,cutout"), ()),
    "ada_blit": (augment.ada_pipeline("xflip,rotate90,xint"), (1.0,)),
    "ada_colour": (augment.ada_pipeline("brightness,contrast,lumaflip,hue,saturation"), (1.0,)),
    "ada_all": (augment.ada_pipeline(), (0.7,)),
}
JITTED = {name: jax.jit(aug) for name, (aug, _) in AUGMENTS.items()}


def run(name, key, images, *args):
    return JITTED[name](key, images, *(args or AUGMENTS[name][1]))


@functools.cache
def _ada_jitted(policy):
    return jax.jit(augment.ada_pipeline(policy))


def ada(policy, key, images, p):
    return _ada_jitted(policy)(key, images, p)


CASES = [(name, "rgb") for name in AUGMENTS] + [(name, "grey") for name in ("diff_all", "ada_colour", "ada_all")]


@pytest.mark.parametrize("name, kind", CASES)
def test_shape_dtype_finite_and_key_determinism(name, kind):
    images = X if kind == "rgb" else GREY
    out = run(name, KEY, images)
    chex.assert_shape(out, images.shape)
    chex.assert_type(out, images.dtype)
    chex.assert_tree_all_finite(out)
    chex.assert_trees_all_equal(out, run(name, KEY, images))  # the same key, the same output
    assert not np.allclose(out, run(name, OTHER_KEY, images))  # another key, another draw
    assert not np.allclose(out, images)


def test_bfloat16_stays_bfloat16():
    images = X.astype(jnp.bfloat16)
    for name in ("diff_all", "ada_all"):
        out = run(name, KEY, images)
        chex.assert_type(out, jnp.bfloat16)
        chex.assert_tree_all_finite(out)


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_gradients_with_respect_to_images_exist(name):
    aug, args = AUGMENTS[name]
    grads = jax.jit(jax.grad(lambda x: jnp.sum(WEIGHTS * aug(KEY, x, *args))))(X)
    chex.assert_tree_all_finite(grads)
    assert float(jnp.abs(grads).sum()) > 0


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_random_parameters_do_not_depend_on_content(name):
    """For a fixed key every augmentation is affine in the images: one transform whatever the content.

    Reals and fakes therefore get the same distribution of transforms (each from its own key).
    """
    mixed = run(name, KEY, 0.25 * X + 0.75 * OTHER)
    chex.assert_trees_all_close(mixed, 0.25 * run(name, KEY, X) + 0.75 * run(name, KEY, OTHER), atol=1e-5)


def test_reals_and_fakes_are_augmented_alike_in_distribution():
    """Two batches of one distribution, each with its own keys: the augmented batches' statistics agree."""
    reals, fakes = X, X[::-1]  # the same examples in another order: other content at every position
    keys = jax.random.split(jax.random.key(5), (2, 16))
    stats = []
    for batch, batch_keys in ((reals, keys[0]), (fakes, keys[1])):
        out = np.stack([run("ada_all", key, batch) for key in batch_keys])
        stats.append((out.std(axis=(2, 3, 4)).mean(), out.mean(axis=(2, 3, 4)).std(), out.mean()))
    np.testing.assert_allclose(*stats, rtol=0.1, atol=0.02)


@pytest.mark.parametrize("name", ["ada_all", "ada_colour"])
@pytest.mark.parametrize("images", [X, GREY], ids=["rgb", "grey"])
def test_ada_at_p_zero_is_exactly_the_identity(name, images):
    chex.assert_trees_all_equal(run(name, KEY, images, 0.0), images)


ROT = lambda x, k: np.rot90(x, k, axes=(0, 1))
LUMA = lambda x: x - 2.0 * x.mean(-1, keepdims=True)  # the reflection through the grey plane
# ADA's ops that are symmetries: policy, images, p, the possible outputs of an example, and the share changed.
SYMMETRIES = [
    ("xflip", X, 1.0, lambda x: [x, np.flip(x, 1)], 0.5),
    ("xflip", X, 0.5, lambda x: [x, np.flip(x, 1)], 0.25),
    ("rotate90", X, 1.0, lambda x: [ROT(x, k) for k in range(4)], 0.75),
    ("lumaflip", X, 1.0, lambda x: [x, LUMA(x)], 0.5),
    ("lumaflip", GREY, 1.0, lambda x: [x, -x], 0.5),
]


@pytest.mark.parametrize(
    "policy, images, p, candidates, changed", SYMMETRIES, ids=[f"{s[0]}-p{s[2]}-{s[1].shape[-1]}ch" for s in SYMMETRIES]
)
def test_ada_ops_that_are_symmetries_give_one_of_their_images(policy, images, p, candidates, changed):
    """At ``p = 1`` a flip flips half the examples (flip or not, uniformly: the paper's xflip), a turn is one of 4."""
    images = jnp.tile(images, (8, 1, 1, 1))  # 128 examples
    out = np.asarray(ada(policy, KEY, images, p))
    hits = np.array([[np.allclose(o, c, atol=1e-5) for c in candidates(x)] for x, o in zip(np.asarray(images), out)])
    assert hits.any(axis=1).all()
    assert hits.any(axis=0).all()  # every candidate occurs
    assert abs(1.0 - hits[:, 0].mean() - changed) < 0.12


def test_ada_hue_and_saturation_keep_the_luma():
    out = ada("hue,saturation", KEY, X, 1.0)
    chex.assert_trees_all_close(out.mean(-1), X.mean(-1), atol=1e-5)
    assert not np.allclose(out, X)


SHIFT = 2  # 1/8 of 16 pixels
# Content away from the border (3 pixels: ADA pads by reflection, which mirrors pixel 2 into pixel -2).
INNER = jnp.pad(X[:, 3:-3, 3:-3], ((0, 0), (3, 3), (3, 3), (0, 0)))


@pytest.mark.parametrize(
    "translate",
    [lambda x: run("diff_translation", KEY, x), lambda x: ada("xint", KEY, x, 1.0)],
    ids=["diff", "ada"],
)
def test_translation_moves_content_by_whole_pixels(translate):
    """Content away from the border comes out rolled by at most 1/8 of the image, every pixel unchanged."""
    shifts = set()
    for x, out in zip(np.asarray(INNER), np.asarray(translate(INNER))):
        moves = [
            (dy, dx)
            for dy, dx in itertools.product(range(-SHIFT, SHIFT + 1), repeat=2)
            if np.array_equal(out, np.roll(x, (dy, dx), axis=(0, 1)))
        ]
        assert len(moves) == 1
        shifts.add(moves[0])
    assert len(shifts) > 4


def _cutout_expected_fraction(side: int, ratio: float = 0.5) -> float:
    """The mean covered share of one axis over the reference code's uniform offsets, squared (axes independent)."""
    size = int(side * ratio + 0.5)
    offsets = range(side + 1 - size % 2)
    covered = [min(o - size // 2 + size, side) - max(o - size // 2, 0) for o in offsets]
    return (sum(covered) / len(covered) / side) ** 2


@pytest.mark.parametrize("side", [16, 15])
def test_cutout_zeroes_the_expected_area_on_average(side):
    out = np.asarray(run("diff_cutout", KEY, jnp.ones((512, side, side, 1))))
    zeroed = (out == 0).mean(axis=(1, 2, 3))
    size = int(side * 0.5 + 0.5)
    assert zeroed.max() <= size * size / side**2 and zeroed.min() > 0
    assert abs(zeroed.mean() - _cutout_expected_fraction(side)) < 0.01
    assert set(np.unique(out).tolist()) == {0.0, 1.0}


def test_policies_are_checked():
    with pytest.raises(ValueError, match="unknown"):
        augment.diff_augment("color,zoom")
    with pytest.raises(ValueError, match="unknown"):
        augment.ada_pipeline("xflip,blur")
    with pytest.raises(ValueError, match="square"):
        augment.ada_pipeline("rotate90").draw(KEY, (2, 8, 16, 3), 0.5)
    with pytest.raises(ValueError, match="channels"):
        augment.ada_pipeline("brightness").draw(KEY, (2, 8, 8, 2), 0.5)
    with pytest.raises(ValueError, match="NHWC"):
        augment.diff_augment("translation").draw(KEY, (2, 8, 8))
    assert augment.diff_augment("")(KEY, X) is X


def test_augmentations_vmap_over_a_population():
    """Members with their own keys, images and p: p = 0 leaves a member's images alone, p = 1 does not."""
    members, keys = jnp.stack([X, -X, X[::-1]]), jax.random.split(KEY, 3)
    out = jax.jit(jax.vmap(AUGMENTS["ada_all"][0]))(keys, members, jnp.array([0.0, 1.0, 0.5]))
    chex.assert_trees_all_equal(out[0], members[0])
    assert not np.allclose(out[1], members[1])
    out = jax.jit(jax.vmap(AUGMENTS["diff_all"][0]))(keys, members)
    chex.assert_trees_all_close(out[2], run("diff_all", keys[2], members[2]), atol=1e-6)


# ---------------------------------------------------------------------------------------------- ADA's controller

BATCH, INTERVAL, KIMG, TARGET = 32, 4, 500.0, 0.6
STEP = BATCH * INTERVAL / (KIMG * 1000)


@jax.jit
@chex.assert_max_traces(n=1)
def controller(state, logits, target):
    return augment.ada_update(state, logits, target=target, interval=INTERVAL, ada_kimg=KIMG)


def _run(p0, logits_per_call, target=TARGET):
    state, ps = augment.ada_init(p0), []
    for logits in logits_per_call:
        state = controller(state, logits, target)
        ps.append(float(state.p))
    return state, np.array(ps)


ALL_REAL, ALL_FAKE = jnp.full((BATCH,), 3.0), jnp.full((BATCH,), -3.0)
HALF = jnp.where(jnp.arange(BATCH) < BATCH // 2, 1.0, -1.0)
NINETY = jnp.where(jnp.arange(BATCH) < int(0.9 * BATCH), 1.0, -1.0)  # r_t = 0.75

# D's real logits on every call, r_t, and the sign of p's move.
CONTROLS = [
    ("overfit", ALL_REAL, 1.0, +1),
    ("confident", NINETY, 0.75, +1),
    ("undecided", HALF, 0.0, -1),
    ("fooled", ALL_FAKE, -1.0, -1),
]


@pytest.mark.parametrize("name, logits, rt, direction", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_p_moves_by_the_paper_step_every_interval(name, logits, rt, direction):
    state, ps = _run(0.5, [logits] * (3 * INTERVAL))
    expected = [0.5 + direction * STEP * (i // INTERVAL) for i in range(1, 3 * INTERVAL + 1)]
    np.testing.assert_allclose(ps, expected, rtol=0, atol=1e-6)
    assert float(state.rt) == pytest.approx(rt, abs=1e-6)
    assert int(state.steps) == 0 and float(state.signs_count) == 0


def test_rt_is_the_mean_sign_over_the_interval():
    """Three overconfident calls and one where D calls every real fake: r_t = 0.5 < 0.6, p falls."""
    state, ps = _run(0.5, [ALL_REAL] * 3 + [ALL_FAKE])
    assert float(state.rt) == pytest.approx(0.5)
    assert ps[-1] == pytest.approx(0.5 - STEP) and (ps[:-1] == 0.5).all()


def test_p_stays_at_the_target_and_in_the_unit_interval():
    state, ps = _run(0.5, [HALF] * INTERVAL, target=0.0)  # r_t == target: no move
    assert (ps == 0.5).all()
    fast = lambda state, logits: augment.ada_update(state, logits, interval=1, ada_kimg=0.01)  # steps of 3.2
    for p0, logits, bound in ((0.0, ALL_FAKE, 0.0), (0.9, ALL_REAL, 1.0), (0.5, ALL_REAL, 1.0), (0.5, ALL_FAKE, 0.0)):
        state = augment.ada_init(p0)
        for _ in range(3):
            state = jax.jit(fast)(state, logits)
            assert 0.0 <= float(state.p) <= 1.0
        assert float(state.p) == bound


def test_batch_size_sets_the_step():
    state = augment.ada_init(0.0)
    update = jax.jit(lambda state, logits: augment.ada_update(state, logits, interval=2, ada_kimg=1.0, batch_size=100))
    for _ in range(2):
        state = update(state, jnp.ones((8, 1)))
    assert float(state.p) == pytest.approx(100 * 2 / 1000)


def test_controller_vmaps_over_a_population_and_sums_over_devices():
    members = jax.vmap(augment.ada_init)(jnp.array([0.2, 0.2, 0.9]))
    logits = jnp.stack([ALL_REAL, ALL_FAKE, ALL_REAL])
    targets = jnp.array([0.6, 0.6, 1.5])  # a member's own (traced) target
    update = jax.jit(jax.vmap(lambda s, x, t: augment.ada_update(s, x, target=t, interval=INTERVAL)))
    for _ in range(INTERVAL):
        members = update(members, logits, targets)
    np.testing.assert_allclose(members.p, [0.2 + STEP, 0.2 - STEP, 0.9 - STEP], atol=1e-6)
    # Two devices (a named vmap axis) with their halves of one batch: as one device with the whole batch.
    halves = jnp.stack([NINETY[: BATCH // 2], NINETY[BATCH // 2 :]])
    per_device = jax.jit(
        jax.vmap(
            lambda logits: augment.ada_update(augment.ada_init(0.5), logits, interval=1, axis_name="devices"),
            axis_name="devices",
        )
    )(halves)
    whole = jax.jit(augment.ada_update, static_argnames="interval")(augment.ada_init(0.5), NINETY, interval=1)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[0], per_device), whole)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], per_device), whole)
