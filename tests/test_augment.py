"""DiffAugment and ADA: pure, differentiable, content-blind transforms; ADA's controller moves p as the paper says."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganjax import augment

KEY = jax.random.key(0)
# One batch shape for most checks, so that every augmentation compiles once or twice.
X = jax.random.uniform(jax.random.key(1), (16, 16, 16, 3), minval=-1.0, maxval=1.0)
GREY = X[..., :1]

# name -> (augmentation, extra arguments): every DiffAugment op and ADA pipeline with every op on.
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


@pytest.mark.parametrize("name", list(AUGMENTS))
@pytest.mark.parametrize("images", [X, GREY], ids=["rgb", "grey"])
def test_shape_dtype_finite_and_key_determinism(name, images):
    out = run(name, KEY, images)
    chex.assert_shape(out, images.shape)
    chex.assert_type(out, images.dtype)
    chex.assert_tree_all_finite(out)
    chex.assert_trees_all_equal(out, run(name, KEY, images))  # same key, same output
    assert not jnp.allclose(out, run(name, jax.random.key(7), images))  # another key, another draw
    assert not jnp.allclose(out, images)


def test_bfloat16_stays_bfloat16():
    images = X[:4].astype(jnp.bfloat16)
    for aug, args in (AUGMENTS["diff_all"], AUGMENTS["ada_all"]):
        out = aug(KEY, images, *args)
        chex.assert_type(out, jnp.bfloat16)
        chex.assert_tree_all_finite(out)


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_gradients_with_respect_to_images_exist(name):
    weights = jax.random.normal(jax.random.key(2), X.shape)
    aug, args = AUGMENTS[name]
    grads = jax.jit(jax.grad(lambda x: jnp.sum(weights * aug(KEY, x, *args))))(X)
    chex.assert_tree_all_finite(grads)
    assert float(jnp.abs(grads).sum()) > 0


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_random_parameters_do_not_depend_on_content(name):
    """For a fixed key every augmentation is affine in the images, so it is one transform whatever the content.

    Reals and fakes therefore get the same distribution of transforms (each from its own key).
    """
    other = jax.random.normal(jax.random.key(3), X.shape)
    mixed = run(name, KEY, 0.25 * X + 0.75 * other)
    chex.assert_trees_all_close(mixed, 0.25 * run(name, KEY, X) + 0.75 * run(name, KEY, other), atol=1e-5)
    aug, args = AUGMENTS[name]
    chex.assert_trees_all_equal(aug.draw(KEY, X.shape, *args), aug.draw(KEY, X.shape, *args))


def test_reals_and_fakes_are_augmented_alike_in_distribution():
    """Two batches of one distribution, each with its own keys: the augmented batches' statistics agree."""
    aug, _ = AUGMENTS["ada_all"]
    reals, fakes = X, jax.random.permutation(jax.random.key(4), X)
    many = jax.jit(jax.vmap(lambda key, images: aug(key, images, 0.7), in_axes=(0, None)))
    real_keys, fake_keys = jax.random.split(jax.random.key(5), (2, 32))
    stats = [
        (float(jnp.mean(jnp.std(out, axis=(2, 3, 4)))), float(jnp.std(jnp.mean(out, axis=(2, 3, 4)))))
        for out in (many(real_keys, reals), many(fake_keys, fakes))
    ]
    chex.assert_trees_all_close(*stats, rtol=0.1)


@pytest.mark.parametrize("images", [X, GREY], ids=["rgb", "grey"])
def test_ada_at_p_zero_is_exactly_the_identity(images):
    chex.assert_trees_all_equal(run("ada_all", KEY, images, 0.0), images)
    chex.assert_trees_all_equal(run("ada_colour", KEY, images, 0.0), images)


FLIP_X = jnp.flip
ROT = lambda x, k: jnp.rot90(x, k, axes=(0, 1))
LUMA = lambda x: x - 2.0 * jnp.mean(x, axis=-1, keepdims=True)  # reflection through the grey plane

# policy, images, p, the possible outputs of one example, and the chance that an example is changed.
BLITS = [
    ("xflip", X, 1.0, lambda x: [x, FLIP_X(x, 1)], 0.5),
    ("xflip", X, 0.5, lambda x: [x, FLIP_X(x, 1)], 0.25),
    ("rotate90", X, 1.0, lambda x: [ROT(x, k) for k in range(4)], 0.75),
    ("lumaflip", X, 1.0, lambda x: [x, LUMA(x)], 0.5),
    ("lumaflip", GREY, 1.0, lambda x: [x, -x], 0.5),
]


@pytest.mark.parametrize("policy, images, p, candidates, changed", BLITS, ids=[f"{b[0]}-{b[2]}" for b in BLITS])
def test_ada_ops_that_are_symmetries_give_one_of_their_images(policy, images, p, candidates, changed):
    """At ``p = 1`` a flip flips half the examples (flip or not, uniformly: the paper's xflip), a turn is one of 4."""
    images = jnp.tile(images, (8, 1, 1, 1))  # 128 examples
    out = jax.jit(augment.ada_pipeline(policy))(KEY, images, p)
    hits = np.array([[bool(jnp.allclose(o, c, atol=1e-5)) for c in candidates(x)] for x, o in zip(images, out)])
    assert hits.any(axis=1).all()
    assert hits.any(axis=0).all()  # every candidate occurs
    assert abs(1.0 - hits[:, 0].mean() - changed) < 0.12


def test_ada_hue_and_saturation_keep_the_luma():
    out = jax.jit(augment.ada_pipeline("hue,saturation"))(KEY, X, 1.0)
    chex.assert_trees_all_close(out.mean(-1), X.mean(-1), atol=1e-5)
    assert not jnp.allclose(out, X)


SHIFT = 2  # 1/8 of 16 pixels
INNER = jnp.pad(X[:, SHIFT:-SHIFT, SHIFT:-SHIFT], ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT), (0, 0)))


@pytest.mark.parametrize(
    "aug, args",
    [(augment.diff_augment("translation"), ()), (augment.ada_pipeline("xint"), (1.0,))],
    ids=["diff", "ada"],
)
def test_translation_moves_content_by_whole_pixels(aug, args):
    """Content away from the border comes out rolled by at most 1/8 of the image, every pixel unchanged."""
    shifts = set()
    for x, out in zip(INNER, aug(KEY, INNER, *args)):
        moves = [
            (dy, dx)
            for dy, dx in itertools.product(range(-SHIFT, SHIFT + 1), repeat=2)
            if jnp.array_equal(out, jnp.roll(x, (dy, dx), axis=(0, 1)))
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
    ones = jnp.ones((512, side, side, 1))
    out = augment.diff_augment("cutout")(KEY, ones)
    zeroed = jnp.mean(out == 0, axis=(1, 2, 3))
    size = int(side * 0.5 + 0.5)
    assert float(zeroed.max()) <= size * size / side**2 and float(zeroed.min()) > 0
    assert abs(float(zeroed.mean()) - _cutout_expected_fraction(side)) < 0.01
    assert set(np.unique(out).tolist()) == {0.0, 1.0}


def test_policies_are_checked():
    with pytest.raises(ValueError, match="unknown"):
        augment.diff_augment("color,zoom")
    with pytest.raises(ValueError, match="unknown"):
        augment.ada_pipeline("xflip,blur")
    with pytest.raises(ValueError, match="square"):
        augment.ada_pipeline("rotate90")(KEY, X[:, :8], 0.5)
    with pytest.raises(ValueError, match="channels"):
        augment.ada_pipeline("brightness")(KEY, X[..., :2], 0.5)
    chex.assert_trees_all_equal(augment.diff_augment("")(KEY, X), X)


def test_augmentations_vmap_over_a_population():
    """Members with their own keys, images and p: p = 0 leaves a member's images alone, p = 1 does not."""
    members = jnp.stack([X, -X, X[::-1]])
    keys = jax.random.split(KEY, 3)
    p = jnp.array([0.0, 1.0, 0.5])
    ada, _ = AUGMENTS["ada_all"]
    out = jax.jit(jax.vmap(ada))(keys, members, p)
    chex.assert_trees_all_equal(out[0], members[0])
    assert not jnp.allclose(out[1], members[1])
    diff, _ = AUGMENTS["diff_all"]
    chex.assert_trees_all_close(jax.jit(jax.vmap(diff))(keys, members)[2], run("diff_all", keys[2], members[2]))


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
SEVENTY = jnp.where(jnp.arange(BATCH) < int(0.7 * BATCH), 1.0, -1.0)

# D's real logits on every call, r_t, and the sign of p's move.
CONTROLS = [
    ("overfit", ALL_REAL, 1.0, +1),
    ("confident", SEVENTY, (2 * int(0.7 * BATCH) - BATCH) / BATCH, +1),
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
    for _ in range(2):
        state = augment.ada_update(state, jnp.ones((8, 1)), interval=2, ada_kimg=1.0, batch_size=100)
    assert float(state.p) == pytest.approx(100 * 2 / 1000)


def test_controller_vmaps_over_a_population_and_sums_over_devices():
    members = jax.vmap(augment.ada_init)(jnp.array([0.2, 0.2, 0.9]))
    logits = jnp.stack([ALL_REAL, ALL_FAKE, ALL_REAL])
    targets = jnp.array([0.6, 0.6, 1.5])  # a member's own (traced) target
    for _ in range(INTERVAL):
        members = jax.vmap(lambda s, x, t: augment.ada_update(s, x, target=t, interval=INTERVAL))(
            members, logits, targets
        )
    np.testing.assert_allclose(members.p, [0.2 + STEP, 0.2 - STEP, 0.9 - STEP], atol=1e-6)
    # Two devices (a named vmap axis) with their halves of one batch: as one device with the whole batch.
    halves = jnp.stack([SEVENTY[: BATCH // 2], SEVENTY[BATCH // 2 :]])
    per_device = jax.vmap(
        lambda logits: augment.ada_update(augment.ada_init(0.5), logits, interval=1, axis_name="devices"),
        axis_name="devices",
    )(halves)
    whole = augment.ada_update(augment.ada_init(0.5), SEVENTY, interval=1)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[0], per_device), whole)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[1], per_device), whole)
