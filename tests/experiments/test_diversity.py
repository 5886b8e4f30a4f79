"""Every image experiment logs the mode-collapse signals at its evaluations, and a collapsed G shows in them.

The hooks are called directly on tiny players and a few real digits; the runs that log them end to end are in
tests/test_stacked_mnist.py and tests/experiments/test_vaegan_mnist.py.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import acgan_mnist, cgan_mnist, cyclegan, msggan, pggan, sagan
from ganjax import data, evaluation, run
from ganjax.evaluation import class_accuracy, metrics, monitor, quality
from ganjax.evaluation import mnist_classifier as mc
from ganjax.models import msggan as msggan_models
from ganjax.training.objective import Conditioning

SIGNALS = ("duplicate_share", "pairwise_distance_ratio")
TINY = ["--schedule.batch-size", "4", "--model.g-width", "4", "--model.d-width", "4"]
DIVERSITY = ["--diversity.eval-every", "2", "--diversity.eval-samples", "8"]
SMALL = ["--data.image-size", "8", "--data.channels", "1"]


@pytest.fixture(scope="module")
def digits(mnist):
    """32 real digits, with their labels."""
    return data.ImageDataset(mnist.images[:32], mnist.labels[:32], "digits")


@pytest.fixture(scope="module")
def small(digits):
    """The digits at 8x8 (every third pixel of the middle 24x24), for players that compile fast."""
    return data.ImageDataset(digits.images[:, 2:26:3, 2:26:3], digits.labels, "small digits")


def logged(hooks, state, step=2) -> dict[str, float]:
    """What the hooks add to the log record at ``step``."""
    assert hooks and all(isinstance(hook, run.Evaluate) for hook in hooks)
    return {k: v for hook in hooks for k, v in hook.evaluate(state, step).items()}


def assert_real(result, *prefixes):
    """Both signals under each prefix, and nothing else; a share, and a ratio of a G that is not constant."""
    assert set(result) == {prefix + name for prefix in prefixes for name in SIGNALS}
    for prefix in prefixes:
        share, ratio = (result[prefix + name] for name in SIGNALS)
        assert 0.0 <= share <= 1.0 and 1e-5 < ratio < 10.0, (prefix, share, ratio)


def collapsed(state, player="g"):
    """``state`` whose ``player`` has all-zero params: the same image for every input."""
    zero = jax.tree.map(jnp.zeros_like, state.players[player].params)
    return state.replace(players={**state.players, player: state.players[player].replace(params=zero)})


def assert_collapsed(result, prefix=""):
    assert result[f"{prefix}duplicate_share"] == 1.0
    assert result[f"{prefix}pairwise_distance_ratio"] == pytest.approx(0.0, abs=1e-6)


def conditional(experiment, *extra):
    """A tiny conditional GAN experiment's config and state (no class accuracy: no classifier)."""
    argv = ["--data.image-size", "28", "--data.channels", "1", "--latent.dim", "4", *TINY]
    argv += ["--class-accuracy.classifier-dir", "", "--class-accuracy.eval-per-class", "2", *extra]
    config = run.parse(experiment.Config, argv)
    gan = config.make_gan(config.conditioning)
    return config, run.gan_state(jax.random.key(0), gan, *experiment.RECIPE.models(config), config.data.shape, config)


@pytest.fixture(scope="module")
def cgan():
    return conditional(cgan_mnist)


def test_cgan_logs_diversity_of_g_and_its_moving_average_and_sees_a_collapsed_g(cgan, digits):
    config, state = cgan
    hooks = evaluation.conditional_hooks(config, jax.random.key(1))(digits)
    assert [hook.every for hook in hooks] == [config.class_accuracy.eval_every]
    assert_real(logged(hooks, state), "", "ema_")
    assert_collapsed(logged(hooks, collapsed(state)))


@pytest.mark.parametrize("ema", ["0.999", "0"])
def test_with_a_classifier_the_class_samples_give_their_models_diversity(digits, tmp_path, monkeypatch, ema):
    classifier_dir = mc.save_mnist_classifier(mc.init(jax.random.key(0)), tmp_path / "classifier")
    config, state = conditional(
        cgan_mnist, "--class-accuracy.classifier-dir", str(classifier_dir), "--state.ema-decay", ema
    )
    drawn = []
    generate = class_accuracy._generate
    monkeypatch.setattr(class_accuracy, "_generate", lambda *a, **kw: drawn.append(kw["use_ema"]) or generate(*a, **kw))
    samplers, sampled = evaluation.samplers, []

    def counted(*args, **kwargs):
        draw, stats = samplers(*args, **kwargs)
        return lambda state, key, ema_stats: sampled.append(ema_stats is not None) or draw(state, key, ema_stats), stats

    monkeypatch.setattr(quality, "samplers", counted)
    hooks = evaluation.conditional_hooks(config, jax.random.key(1))(digits)
    result = logged(hooks, state)
    model = "ema_" if ema != "0" else ""
    assert drawn == [bool(model)]  # the class samples, drawn once, of the moving average when kept
    assert sampled == ([False] * 5 if model else [])  # and G's for its own signals, never the average again
    assert {"class_accuracy_min", "class_readable_mean"} <= set(result)
    assert_real({k: v for k, v in result.items() if not k.startswith("class_")}, "", *([model] if model else []))


def test_acgan_logs_diversity(digits):
    config, state = conditional(acgan_mnist, "--state.ema-decay", "0")
    assert_real(logged(evaluation.conditional_hooks(config, jax.random.key(1))(digits), state), "")


def test_conditional_samples_go_round_every_class(cgan):
    config, state = cgan
    # A G whose every image is its label: the samples' pixels are the classes drawn.
    g = state.players["g"].replace(apply_fn=lambda variables, z, y, **kw: y[:, None, None, None] * jnp.ones((2, 2, 1)))
    state = state.replace(players={**state.players, "g": g})
    classes = lambda batch, key: np.asarray(evaluation.samplers(config, batch, 10)[0](state, key, None))[:, 0, 0, 0]
    assert sorted(classes(10, jax.random.key(0))) == list(range(10))  # a batch of 10: every class once
    batches = [classes(4, jax.random.key(i)) for i in range(6)]
    assert all(np.array_equal(np.diff(b) % 10, [1, 1, 1]) for b in batches)  # consecutive classes in each batch
    assert len({b[0] for b in batches}) > 1  # from offsets that differ between batches


@pytest.mark.slow  # builds a model family; the cgan and cyclegan tests keep the hook in the default tier
def test_sagan_logs_diversity(small):
    config = run.parse(sagan.Config, [*SMALL, "--latent.dim", "4", *TINY, *DIVERSITY])
    gan = config.make_gan(Conditioning(num_classes=config.model.num_classes))
    state = run.gan_state(jax.random.key(0), gan, *sagan.players(config), config.data.shape, config)
    hooks = sagan.RECIPE.evaluations(config, small)
    assert [hook.every for hook in hooks] == [2]
    assert_real(logged(hooks, state), "")


@pytest.mark.slow  # builds a model family; the cgan and cyclegan tests keep the hook in the default tier
def test_msggan_logs_diversity_of_its_finest_scale(small, monkeypatch):
    config = run.parse(msggan.Config, [*SMALL, "--latent.dim", "4", *TINY, *DIVERSITY])
    sides = msggan_models.scales(8)
    players = msggan.RECIPE.generator(config).module, msggan_models.Discriminator(8, 4)
    state = run.gan_state(jax.random.key(0), config.make_gan(), *players, (8, 8, len(sides)), config)
    shapes = spy_shapes(monkeypatch)
    assert_real(logged(msggan.RECIPE.evaluations(config, small), state), "")
    assert shapes == [((8, 8, 8, 1), (32, 8, 8, 1))]


def spy_shapes(monkeypatch) -> list:
    """The shapes of the samples and reals each evaluation compares, recorded."""
    shapes, diversity = [], metrics.sample_diversity

    def spy(samples, reference):
        shapes.append((np.shape(samples), np.shape(reference)))
        return diversity(samples, reference)

    monkeypatch.setattr(metrics, "sample_diversity", spy)
    return shapes


@pytest.mark.slow  # builds a model family; the cgan and cyclegan tests keep the hook in the default tier
def test_pggan_logs_diversity_at_the_resolution_of_its_stage_and_sees_a_collapsed_g(small, monkeypatch):
    argv = ["--schedule.batch-size", "8", "--schedule.fade-images", "16", "--schedule.stable-images", "8"]
    argv += ["--model.latent-dim", "8", "--model.g-width", "4", "--model.d-width", "4", "--model.max-width", "8"]
    config = run.parse(pggan.Config, [*SMALL, *argv, *DIVERSITY, "--ema-decay", "0"])
    # Step 1 trained stage 0 (4x4 of the 8x8 images).
    state = pggan.create_state(config, jax.random.key(0)).replace(step=jnp.asarray(1))
    shapes = spy_shapes(monkeypatch)
    hooks = pggan.diversity_hooks(config, small)
    assert_real(logged(hooks, state, 1), "")
    assert shapes == [((8, 4, 4, 1), (32, 4, 4, 1))]
    assert_collapsed(logged(hooks, collapsed(state), 1))


@pytest.mark.slow
def test_cyclegan_logs_each_direction_and_the_monitor_reads_a_collapsed_one(mnist_dir, small):
    argv = ["--data.dir", str(mnist_dir), *SMALL, "--schedule.batch-size", "4", "--model.g-width", "4"]
    argv += ["--model.g-blocks", "1", "--model.d-width", "4", "--model.d-layers", "1", *DIVERSITY]
    config = run.parse(cyclegan.Config, argv)
    a, b = cyclegan.mnist_domains(small)
    state = cyclegan.RECIPE.init(config, jax.random.key(0), None, None)
    hooks = cyclegan.diversity_hooks(config, a, b)
    assert_real(logged(hooks, state), "a_to_b_", "b_to_a_")
    result = logged(hooks, collapsed(state, "g_ab"))
    assert_collapsed(result, "a_to_b_")
    assert result["b_to_a_pairwise_distance_ratio"] > 1e-5
    watch = dataclasses.replace(cyclegan.monitor_config(config), warmup=0)
    (flag,) = monitor.Monitor(watch).check({k: np.array([v]) for k, v in result.items()})
    assert flag.name == "mode_collapse" and "a_to_b: 100% of samples are near-duplicates" in flag.message
