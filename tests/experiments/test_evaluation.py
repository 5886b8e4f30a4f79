"""Evaluation of runs on any images: the feature network's choice, its one-line absence, lazy building, the cache."""

import dataclasses
import itertools
import json
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import cgan_mnist, dcgan, dcgan_mnist
from ganjax import data, evaluation, run
from ganjax.evaluation import classifier_training, features, inception, metrics, quality
from ganjax.evaluation import mnist_classifier as mc
from ganjax.training.objective import Conditioning
from tests.training.tiny import (
    CLASSES,
    LATENT,
    ConditionalBatchNormG,
    ConditionalD,
    make_state,
    standing_by_hand,
    tiny_gan,
    with_ema_apart,
)

SMALL = inception.InceptionV3(resize=None)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No FID weights from the environment, and a cache of this test's own."""
    monkeypatch.delenv(evaluation.FID_WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(features, "CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    """An untrained MNIST classifier: what the report's user had in runs/mnist_classifier."""
    return str(mc.save_mnist_classifier(mc.init(jax.random.key(0)), tmp_path_factory.mktemp("classifier")))


def images(n, side, channels, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, channels), dtype=np.uint8)


def dcgan_config(*extra):
    args = ["--data.image-size", "28", "--data.channels", "1", "--clusters.k", "0"]  # G takes z alone
    return run.parse(dcgan_mnist.Config, [*args, *extra])


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# ----------------------------------------------------------------------------- the report's run


@pytest.mark.slow  # a whole RGB run (about 20 s of CPU)
def test_rgb_folder_trains_on_with_one_line_about_the_missing_metrics(tmp_path, classifier_dir, capsys):
    """The report: 64px RGB images with an MNIST classifier about failed before training (MNISTClassifier expects
    (N, 28, 28, 1)); now the run trains, logs the pixel-space signals and says once what it cannot compute."""
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, image in enumerate(images(24, 64, 3)):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    argv = ["--data.dir", str(folder), "--data.image-size", "64", "--data.channels", "3"]
    argv += ["--run.workdir", str(tmp_path / "run"), "--schedule.steps", "4", "--schedule.batch-size", "8"]
    argv += ["--latent.dim", "8", "--model.g-width", "4", "--model.d-width", "4", "--run.log-every", "2"]
    argv += ["--evaluation.eval-every", "2", "--evaluation.eval-samples", "8"]
    argv += ["--evaluation.classifier-dir", classifier_dir]
    config = run.parse(dcgan.Config, argv)
    assert config.clusters.k == 0  # 24 images call for no clusters
    state = run.train(dcgan.RECIPE, config).state
    assert int(state.step) == 4
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    (line,) = warnings
    for part in ("fid, kid, precision, recall, density or coverage", "64x64x3", "--evaluation.fid-weights"):
        assert part in line
    assert "python -m ganjax.evaluation.inception convert pt_inception-2015-12-05-6726825d.pth" in line
    assert evaluation.FID_WEIGHTS_ENV in line
    rows = [json.loads(r) for r in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in rows if "duplicate_share" in r]
    assert [r["step"] for r in evaluated] == [2, 4]
    assert all(np.isfinite(r["pairwise_distance_ratio"]) and "fid" not in r for r in evaluated)


def test_unlabelled_or_foreign_images_never_train_the_classifier(tmp_path, monkeypatch, capsys):
    """The report: the evaluator trained the MNIST classifier on unlabelled RGB images."""
    monkeypatch.setattr(
        classifier_training, "train_classifier", lambda *a, **k: pytest.fail("trained the MNIST classifier")
    )
    config = dcgan_config("--evaluation.classifier-dir", str(tmp_path / "none"), "--schedule.batch-size", "4")
    for dataset in (
        data.ImageDataset(images(8, 64, 3), None, "rgb"),
        data.ImageDataset(images(8, 64, 3), np.zeros(8, np.int32), "labelled rgb"),
        data.ImageDataset(images(8, 28, 1), None, "unlabelled grey"),
    ):
        assert evaluation.choose_network(config.evaluation, dataset) is None
        assert len(evaluation.quality_hooks(config)(dataset)) == 1
        evaluation.build_evaluator(config, dataset, None)  # the pixel-space signals only
    assert not (tmp_path / "none").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 3  # one line per run


# ----------------------------------------------------------------------------- choosing the network


def test_without_weights_the_run_says_in_one_line_what_it_cannot_compute(tmp_path, capsys):
    config = dcgan_config("--evaluation.classifier-dir", str(tmp_path / "none"))
    assert len(evaluation.quality_hooks(config)(data.ImageDataset(images(8, 32, 3), None, "rgb"))) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("warning: evaluation: no fid, kid, precision, recall, density or coverage of 32x32x3")
    assert "only duplicate_share and pairwise_distance_ratio" in line
    assert "--evaluation.fid-weights inception_fid.npz" in line and f"{evaluation.FID_WEIGHTS_ENV}=" in line
    assert inception.TORCH_WEIGHTS_URL in line
    evaluation.quality_hooks(config)(data.ImageDataset(images(8, 28, 1), None, "grey digits"))
    assert "a trained MNIST classifier in --evaluation.classifier-dir" in one_line(capsys.readouterr().err)


def test_the_network_follows_the_images_the_weights_and_the_flag(tmp_path, classifier_dir, monkeypatch):
    weights = tmp_path / "inception_fid.npz"
    weights.write_bytes(b"")  # only its existence counts until the first evaluation
    rgb = data.ImageDataset(images(8, 64, 3), None, "rgb")
    digits = data.ImageDataset(images(8, 28, 1), np.zeros(8, np.int32), "digits")
    choose = lambda dataset, *argv: evaluation.choose_network(dcgan_config(*argv).evaluation, dataset)
    untrained = ("--evaluation.classifier-dir", str(tmp_path / "none"))
    assert choose(digits, *untrained) == "mnist"  # labelled 28x28x1: trained at the first evaluation
    assert choose(digits, "--evaluation.classifier-dir", classifier_dir, "--evaluation.fid-weights", str(weights)) == (
        "mnist"
    )
    assert choose(rgb, "--evaluation.classifier-dir", classifier_dir) is None
    assert choose(rgb, "--evaluation.fid-weights", str(weights)) == "inception"
    assert choose(digits, "--evaluation.fid-weights", str(weights), "--evaluation.feature-network", "inception") == (
        "inception"
    )
    monkeypatch.setenv(evaluation.FID_WEIGHTS_ENV, str(weights))
    assert choose(rgb) == "inception"
    monkeypatch.setenv(evaluation.FID_WEIGHTS_ENV, str(tmp_path / "missing.npz"))
    with pytest.raises(FileNotFoundError, match=r"missing.npz \(\$GANJAX_FID_WEIGHTS\): no such InceptionV3"):
        choose(rgb)
    monkeypatch.delenv(evaluation.FID_WEIGHTS_ENV)
    with pytest.raises(FileNotFoundError, match=r"missing.npz \(--evaluation.fid-weights\)"):
        choose(rgb, "--evaluation.fid-weights", str(tmp_path / "missing.npz"))
    with pytest.raises(ValueError, match="Evaluation.feature_network: 'inception' needs --evaluation.fid-weights"):
        choose(digits, "--evaluation.feature-network", "inception")
    with pytest.raises(ValueError, match="Evaluation.feature_network: 'mnist' needs a classifier for 64x64x3"):
        choose(rgb, "--evaluation.feature-network", "mnist", "--evaluation.classifier-dir", classifier_dir)


# ----------------------------------------------------------------------------- lazy building


DIGITS = data.ImageDataset(images(8, 28, 1), np.zeros(8, np.int32), "digits")


def evaluated_steps(config, steps, build_evaluator, monkeypatch, before_training=lambda: None):
    """The steps at which ``quality_hooks(config)`` evaluated a run of ``steps`` counting steps on :data:`DIGITS`,
    with ``build_evaluator`` in place of the real one; ``before_training()`` runs between the hooks and step 1."""
    monkeypatch.setattr(quality, "build_evaluator", build_evaluator)
    log = []

    class Record(run.Hook):
        every = 1

        def __call__(self, context):
            log.append(context.record.pop("evaluated", None))

    hooks = [*evaluation.quality_hooks(config)(DIGITS), Record()]
    before_training()
    run.train_loop(0, lambda s, batch: (s + 1, {}), lambda start: itertools.repeat(None), steps, hooks, step_of=int)
    return [step for step in log if step is not None]


def test_evaluation_is_built_at_the_first_evaluation_step_only(classifier_dir, monkeypatch):
    built = []

    def build(config, dataset, network):
        built.append((network, threading.current_thread()))
        return lambda state, step: {"evaluated": step}

    config = dcgan_config("--evaluation.eval-every", "5", "--evaluation.classifier-dir", classifier_dir)
    not_yet = lambda: None if not built else pytest.fail("built before training")
    # a run shorter than the interval is evaluated once, at its last step
    assert evaluated_steps(config, 4, build, monkeypatch, not_yet) == [4]
    assert built == [("mnist", threading.main_thread())]
    built.clear()
    assert evaluated_steps(config, 12, build, monkeypatch, not_yet) == [5, 10, 12]
    assert built == [("mnist", threading.main_thread())]  # once, at step 5


def test_a_classifier_still_to_train_trains_beside_the_run_from_its_start(tmp_path, monkeypatch):
    """With no classifier saved yet, the evaluator (which trains it) is built on another thread from the moment the
    hooks are made, before step 1, and the first evaluation waits for it and uses it; with one usable core the
    build waits for the first evaluation instead."""
    monkeypatch.setattr(quality, "usable_cores", lambda: 2)
    started, release, built = threading.Event(), threading.Event(), []

    def build(config, dataset, network):
        built.append((network, threading.current_thread()))
        started.set()
        assert release.wait(30)
        return lambda state, step: {"evaluated": step}

    missing = ("--evaluation.eval-every", "5", "--evaluation.classifier-dir", str(tmp_path / "none"))
    config = dcgan_config(*missing, "--schedule.steps", "12")
    in_background = evaluation.in_background
    monkeypatch.setattr(quality, "in_background", lambda fn: pytest.fail("started a build ahead"))
    monkeypatch.setattr(quality, "usable_cores", lambda: 1)  # beside the run it would only slow it down
    release.set()
    assert evaluated_steps(config, 4, build, monkeypatch) == [4] and built[0][1] is threading.main_thread()
    built.clear()
    release.clear()
    monkeypatch.setattr(quality, "usable_cores", lambda: 2)
    monkeypatch.setattr(quality, "in_background", in_background)

    def building_before_step_1():
        assert started.wait(10)  # the run's steps have not started: only a thread of its own builds it
        release.set()

    assert evaluated_steps(config, 12, build, monkeypatch, building_before_step_1) == [5, 10, 12]
    ((network, thread),) = built
    assert network == "mnist" and thread is not threading.main_thread()


def test_a_failure_to_build_ahead_is_raised_at_the_first_evaluation(tmp_path, monkeypatch):
    def build(config, dataset, network):
        raise OSError(f"{config.evaluation.classifier_dir}: read-only file system")

    monkeypatch.setattr(quality, "usable_cores", lambda: 2)
    config = dcgan_config("--evaluation.eval-every", "5", "--evaluation.classifier-dir", str(tmp_path / "none"))
    with pytest.raises(OSError, match="none: read-only file system"):
        evaluated_steps(config, 12, build, monkeypatch)


def test_class_accuracy_needs_a_period_and_a_classifier_for_the_images(tmp_path, classifier_dir, capsys):
    """cgan/acgan with eval_every 0 and a classifier: no hook (no ``step % 0``); a classifier for other images
    (before: MNISTClassifier expects (N, 28, 28, 1) at the first check) is named in one line and skipped."""
    key = jax.random.key(0)
    base = ["--class-accuracy.classifier-dir", classifier_dir]
    digits = data.ImageDataset(images(8, 28, 1), np.zeros(8, np.int32), "digits")
    parse = lambda *argv: run.parse(cgan_mnist.Config, [*argv, *base])
    assert evaluation.class_accuracy_hooks(parse("--class-accuracy.eval-every", "0"), key)(digits) == []
    (hook,) = evaluation.class_accuracy_hooks(parse("--class-accuracy.eval-every", "3"), key)(digits)
    assert (hook.every, hook.at_end) == (3, True)
    rgb_config = parse("--data.image-size", "32", "--data.channels", "3")
    rgb = data.ImageDataset(images(8, 32, 3), np.zeros(8, np.int32), "rgb")
    assert evaluation.class_accuracy_hooks(rgb_config, key)(rgb) == []
    assert "takes 28x28x1 images, not 32x32x3" in one_line(capsys.readouterr().err)
    assert evaluation.write_class_accuracy(rgb_config, None, key) is None
    with pytest.raises(ValueError, match=f"{classifier_dir}: the MNIST classifier there reads 28x28x1 images"):
        mc.load_mnist_classifier(classifier_dir, (32, 32, 3))


# ----------------------------------------------------------------------------- features and their cache


@pytest.mark.slow
def test_inception_features_evaluate_any_images_and_are_cached(tmp_path, capsys):
    weights = inception.save_weights(inception.init_variables(jax.random.key(0), SMALL), tmp_path / "fid.npz")
    network = evaluation.inception_network(weights, resize=None)  # 75x75 inputs keep the CPU test small
    network = dataclasses.replace(network, batch_size=8)  # real batches of G's size: one compiled forward
    dataset = data.ImageDataset(images(32, 75, 3), None, "rgb75")
    sample = lambda state, key, ema_stats: jax.random.uniform(key, (8, 75, 75, 3), minval=-1.0, maxval=1.0)
    result = evaluation.evaluator(16, dataset, network, sample, 8, 0, None)(None, 1)
    for name in ("fid", "fid_floor", "kid", "precision", "recall", "density", "coverage", "duplicate_share"):
        assert np.isfinite(result[name]), name
    assert "class_coverage" not in result  # InceptionV3 predicts no digits
    (cached,) = (tmp_path / "cache").glob("*.npz")
    assert cached.name.startswith("rgb75__32x75x75x3-") and cached.name.endswith(f"__{network.name}.npz")
    assert "real images" in capsys.readouterr().err  # the progress bar while they were computed
    evaluation.evaluator(16, dataset, network, sample, 8, 0, None)
    assert "real images" not in capsys.readouterr().err  # read from the cache
    other = inception.save_weights(inception.init_variables(jax.random.key(1), SMALL), tmp_path / "other.npz")
    assert evaluation.inception_network(other, resize=None).name != network.name
    assert evaluation.inception_network(weights).name != network.name  # another input resolution


def test_mnist_network_is_named_by_its_params_and_its_training_is_announced(tmp_path, monkeypatch, capsys):
    for seed in (0, 1):
        mc.save_mnist_classifier(mc.init(jax.random.key(seed)), tmp_path / str(seed))
    digits = data.ImageDataset(images(2100, 28, 1), np.zeros(2100, np.int32), "digits")
    names = {evaluation.mnist_network(tmp_path / str(seed), digits).name for seed in (0, 1)}
    assert len(names) == 2
    bars = []
    monkeypatch.setattr(
        classifier_training,
        "train_classifier",
        lambda settings, train_set, desc: bars.append(desc) or mc.init(jax.random.key(0)),
    )
    evaluation.mnist_network(tmp_path / "new", digits)
    (bar,) = bars  # the train loop's progress bar says it, the library prints nothing
    assert "training the MNIST feature network on 100 digits for 1500 steps, once (saved in " in bar
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------- the moving average of G


def tiny_samples(state, variables, key, n, batch, draw):
    """G's images for the evaluation's batches of z with ``variables``: batch ``i`` from ``fold_in(key, i)``."""
    g = state.players["g"]
    return np.concatenate(
        [g.apply_fn(variables, draw(jax.random.fold_in(key, i), batch), train=False) for i in range(n)]
    )


def test_the_moving_average_is_evaluated_with_batchnorm_statistics_recomputed_for_it():
    config = dcgan_config("--latent.dim", "3", "--state.ema-decay", "0.9", "--schedule.batch-size", "8")
    config = dataclasses.replace(config, evaluation=dataclasses.replace(config.evaluation, eval_samples=24))
    state = with_ema_apart(make_state(ema_decay=0.9))
    dataset = data.ImageDataset(images(32, 2, 1), None, "tiny")
    result = evaluation.build_evaluator(config, dataset, None)(state, 1)
    key, ema = jax.random.key(config.run.seed + 1), state.ema["g"].params
    reference = data.to_float(dataset.images[np.random.default_rng(config.run.seed).permutation(32)])
    diversity = lambda stats: metrics.sample_diversity(
        tiny_samples(state, {"params": ema, "batch_stats": stats}, key, 3, 8, config.latent.sample), reference
    )["pairwise_distance_ratio"]
    expected = diversity(standing_by_hand(ema, key, config.latent.sample, 8))
    assert result["ema_pairwise_distance_ratio"] == pytest.approx(expected, rel=1e-5)
    assert result["ema_pairwise_distance_ratio"] != pytest.approx(diversity(state.players["g"].batch_stats), rel=1e-3)
    _, stats = evaluation.samplers(config, 8)
    stats(state, jax.random.key(1)), stats(with_ema_apart(state), jax.random.key(2))
    assert stats._cache_size() == 1  # once per run, not per evaluation


def test_the_class_accuracy_of_the_moving_average_uses_statistics_recomputed_for_it():
    gan = tiny_gan(conditioning=Conditioning(num_classes=CLASSES))
    state = with_ema_apart(make_state(gan, g=ConditionalBatchNormG(), d=ConditionalD(), ema_decay=0.9))
    classify = lambda x: jnp.floor(x[:, 0] * 20).astype(jnp.int32) % CLASSES  # moves with every sample
    probabilities = lambda x: jax.nn.one_hot(classify(x), CLASSES)
    key, ema, per_class = jax.random.key(7), state.ema["g"].params, 20
    uniform = lambda k, n: jax.random.uniform(k, (n, LATENT), minval=-1.0, maxval=1.0)  # the run's latents
    shares = evaluation.sample_class_shares(state, probabilities, key, CLASSES, per_class, uniform, True, 500, 8)
    shares = shares["accuracy"]
    labels = evaluation.class_labels(CLASSES, per_class)

    def accuracy(stats, draw=uniform):
        variables = {"params": ema, "batch_stats": stats}
        fakes = state.players["g"].apply_fn(variables, draw(key, len(labels)), labels, train=False)
        return evaluation.per_class_accuracy(classify(fakes), labels, CLASSES)

    assert shares == accuracy(standing_by_hand(ema, key, uniform, 8, num_classes=CLASSES))
    assert shares != accuracy(state.players["g"].batch_stats)
    normal = lambda k, n: jax.random.normal(k, (n, LATENT))
    assert shares != accuracy(standing_by_hand(ema, key, normal, 8, num_classes=CLASSES), normal)
