"""ganjax.models.sagan and experiments.sagan: shapes, the conditional option, seeds, learning, a smoke run."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import sagan as experiment
from ganjax import run
from ganjax.models import sagan
from ganjax.training.gan import create_state
from ganjax.training.phases import make_step


@pytest.mark.parametrize("size", [28, 32])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes_and_spectral_statistics(size, num_classes):
    labels = jnp.arange(4) % 10 if num_classes else None
    g = sagan.Generator(size, channels=3, width=4, latent_dim=8, num_classes=num_classes)
    d = sagan.Discriminator(size, width=4, num_classes=num_classes)

    def run():
        g_vars = g.init(jax.random.key(0), jnp.zeros((4, 8)), labels, train=False)
        images, _ = g.apply(g_vars, jnp.zeros((4, 8)), labels, train=True, mutable=["batch_stats"])
        d_vars = d.init(jax.random.key(1), images, labels, train=False)
        return images, d.apply(d_vars, images, labels, train=False), g_vars, d_vars

    images, logits, g_vars, d_vars = jax.eval_shape(run)
    assert images.shape == (4, size, size, 3) and logits.shape == (4,)
    for variables in (g_vars, d_vars):
        assert any("SelfAttention" in name for name in variables["params"])
        assert any(
            "sigma" in "/".join(map(str, path))
            for path, _ in jax.tree_util.tree_flatten_with_path(variables["batch_stats"])[0]
        )
    assert ("projection" in d_vars["params"]) == bool(num_classes)


def test_conditional_generator_depends_on_labels():
    g = sagan.Generator(28, width=4, latent_dim=8, num_classes=10)
    z = jax.random.normal(jax.random.key(0), (2, 8))
    variables = g.init(jax.random.key(1), z, jnp.zeros(2, jnp.int32), train=False)
    variables = jax.tree.map(lambda a: a, variables)
    scale = variables["params"]["GBlock_0"]["norm1"]["ConditionalBatchNorm_0"]["scale"]["embedding"]
    variables["params"]["GBlock_0"]["norm1"]["ConditionalBatchNorm_0"]["scale"]["embedding"] = scale.at[3].multiply(2.0)
    same = g.apply(variables, z, jnp.array([1, 1]), train=False)
    other = g.apply(variables, z, jnp.array([1, 3]), train=False)
    np.testing.assert_array_equal(same[0], other[0])
    assert not np.allclose(same[1], other[1])
    with pytest.raises(ValueError, match="labels are needed exactly when num_classes > 0"):
        g.apply(variables, z, train=False)


CONFIG = experiment.Config(model=experiment.Model(g_width=4, d_width=4), latent=run.Latent(dim=8))
# Built once: the modules and optimizers are static fields of the state, so new ones would compile anew.
G = sagan.Generator(28, 1, CONFIG.model.g_width, CONFIG.latent.dim)
D = sagan.Discriminator(28, CONFIG.model.d_width)
TX = CONFIG.optim.build(jax.random.key(0), CONFIG.schedule.steps)


@pytest.mark.slow  # 10-20 s of compilation on 2 cores: a slow-tier run check
def test_seed_determines_the_run_and_steps_lower_both_losses(mnist):
    """D's phase alone lowers D's loss, G's phase alone G's, with the experiment's TTUR Adam and hinge loss."""
    real = {"image": jnp.asarray(mnist.images[:16], jnp.float32) / 127.5 - 1.0}
    gan = CONFIG.make_gan()
    steps = {phase.name: jax.jit(make_step((phase,))) for phase in gan.phases()}

    def run(seed, player, n):
        state, losses = create_state(jax.random.key(seed), gan, G, D, (28, 28, 1), g_tx=TX.g, d_tx=TX.d), []
        for _ in range(n):
            state, metrics = steps[player](state, real)
            losses.append(float(metrics[f"{player}_loss"]))
        return state, losses

    state_a, d_losses = run(0, "d", 8)
    state_b, _ = run(0, "d", 8)
    chex.assert_trees_all_equal(state_a.params("d"), state_b.params("d"))
    state_c, _ = run(1, "d", 1)
    kernel = lambda state: state.params("g")["SpectralDense_0"]["Dense_0"]["kernel"]
    assert not np.allclose(kernel(state_a), kernel(state_c))
    assert np.mean(d_losses[-3:]) < d_losses[0]
    _, g_losses = run(0, "g", 8)
    assert np.mean(g_losses[-3:]) < g_losses[0]


@pytest.mark.slow  # 10-20 s of compilation on 2 cores: a slow-tier run check
def test_conditional_experiment_smoke(mnist_dir, tmp_path):
    config = run.parse(
        experiment.Config,
        [
            "--data.dir",
            str(mnist_dir),
            "--run.workdir",
            str(tmp_path / "run"),
            "--schedule.steps",
            "4",
            "--schedule.batch-size",
            "8",
            "--latent.dim",
            "8",
            "--model.g-width",
            "4",
            "--model.d-width",
            "4",
            "--model.num-classes",
            "10",
            "--num-samples",
            "10",
            "--run.log-every",
            "2",
            "--run.sample-every",
            "4",
            "--run.checkpoint-every",
            "4",
        ],
    )
    state = run.train(experiment.RECIPE, config).state
    assert int(state.step) == 4
    assert (tmp_path / "run" / "samples" / "step_000004.png").is_file()
    chex.assert_tree_all_finite(state.params("g"))
    assert state.params("d")["projection"]["embedding"].shape == (10, 8)


@pytest.mark.slow  # compiles the model in both precisions; DCGAN's bf16 tests stay in the default tier
def test_bfloat16_players_give_float32_close_to_float32_on_the_same_params():
    """``dtype=bfloat16`` (conditional BatchNorm, attention, projection): same params, float32 outputs within
    bfloat16's rounding of float32's; params and statistics stay float32."""
    labels = jnp.arange(4) % 3
    z, x = jax.random.normal(jax.random.key(1), (4, 8)), jax.random.uniform(jax.random.key(2), (4, 16, 16, 1))
    cases = [
        (sagan.Generator(16, channels=1, width=4, latent_dim=8, num_classes=3), z),
        (sagan.Discriminator(16, width=4, num_classes=3), x),
    ]
    for full, inputs in cases:
        variables = full.init(jax.random.key(0), inputs, labels, train=False)
        mixed = full.clone(dtype=jnp.bfloat16)
        (expected, _), (actual, stats) = (
            module.apply(variables, inputs, labels, train=True, mutable=["batch_stats"]) for module in (full, mixed)
        )
        assert actual.dtype == jnp.float32
        assert {leaf.dtype for leaf in jax.tree.leaves(stats)} == {jnp.dtype("float32")}
        np.testing.assert_allclose(actual, expected, atol=0.03 * float(jnp.max(jnp.abs(expected))))
        assert not np.array_equal(actual, expected)  # it did compute in bfloat16
