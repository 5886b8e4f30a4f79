"""The configs, the runner and the image GAN experiments end to end, at tiny sizes on the real digits."""

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from experiments import (
    acgan_mnist,
    cgan_mnist,
    cyclegan,
    dcgan_mnist,
    gaussian_mixture,
    msggan,
    pggan,
    sagan,
    style_transfer,
    train_mnist_classifier,
    vaegan_mnist,
    wgan_gp_mnist,
)
from ganjax import checkpoint, clusters, data, losses, run
from ganjax.evaluation import monitor
from ganjax.run import recipe as recipe_module

EXPERIMENTS = (
    dcgan_mnist,
    wgan_gp_mnist,
    cgan_mnist,
    acgan_mnist,
    sagan,
    msggan,
    gaussian_mixture,
    train_mnist_classifier,
    style_transfer,
    vaegan_mnist,
    cyclegan,
    pggan,
)


def tiny(mnist_dir, workdir, *extra):
    """Arguments of a tiny DCGAN-family run."""
    return [
        "--data.dir",
        str(mnist_dir),
        "--run.workdir",
        str(workdir),
        "--schedule.steps",
        "6",
        "--schedule.batch-size",
        "16",
        "--latent.dim",
        "16",
        "--model.g-width",
        "8",
        "--model.d-width",
        "8",
        "--run.log-every",
        "2",
        "--run.sample-every",
        "3",
        "--run.checkpoint-every",
        "3",
        *extra,
    ]


def tiny_unevaluated(mnist_dir, workdir, *extra):
    """Arguments of a tiny DCGAN or WGAN-GP run without MNIST evaluation."""
    return tiny(mnist_dir, workdir, "--evaluation.eval-every", "0", *extra)


def records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def assert_finite(rows):
    for row in rows:
        for name, value in row.items():
            if isinstance(value, float):
                assert np.isfinite(value), (row["step"], name)


# ----------------------------------------------------------------------------- configs


IMAGE_GAN_HELP = (
    "--run.workdir STR",
    "the run's folder",
    "--schedule.steps INT",
    "train steps",
    "{minimax,non_saturating,wasserstein",
    "--optim.lr-g FLOAT G's learning rate.",
)
# What --help shows of the experiments that are not image GANs with the usual objective (the rest: IMAGE_GAN_HELP).
HELP = {
    train_mnist_classifier: ("--training.steps INT train steps. (default: 1500)",),
    style_transfer: ("--steps INT optimizer updates of the pixels. (default: 200)", "{lbfgs,adam}"),
    cyclegan: (
        "--data-a {None}|STR image folder of domain A",
        "--objective.cycle-weight FLOAT",
        "--pool.size INT images in each pool. (default: 50)",
        "--schedule.steps INT",
    ),
    pggan: (
        "--schedule.fade-images INT",
        "--critic.drift FLOAT",
        "--optim.lr-g FLOAT G's learning rate.",
        "--data.image-size {None}|INT side of the square images; None: the data's own",
        "(image folders are centre-cropped and resized to it). (default: 32)",
    ),
}


@pytest.mark.parametrize("module", EXPERIMENTS, ids=lambda m: m.__name__.split(".")[-1])
def test_help_lists_every_field_with_its_description(module, capsys):
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for snippet in HELP.get(module, IMAGE_GAN_HELP):
        assert snippet in text, snippet


def test_parse_gives_nested_typed_parts():
    config = run.parse(
        dcgan_mnist.Config,
        [
            "--schedule.steps",
            "7",
            "--optim.lr-g",
            "5e-4",
            "--run.resume",
            "--monitor.stop-on",
            "d_loss_zero",
            "grad_explosion",
        ],
    )
    assert (config.schedule.steps, config.optim.lr_g, config.run.resume) == (7, 5e-4, True)
    assert config.monitor.stop_on == ("d_loss_zero", "grad_explosion")
    assert config.optim.lr_d == dcgan_mnist.Config().optim.lr_d and config.run.workdir == "runs/dcgan_mnist"


@pytest.mark.parametrize(
    "module, build",
    [
        (dcgan_mnist, lambda config: run.dcgan_players(config.model, config.data, config.latent.dim)),
        (cgan_mnist, lambda config: cgan_mnist.RECIPE.models(config)),
        (vaegan_mnist, vaegan_mnist.players),
        (sagan, sagan.players),
        (msggan, lambda config: (msggan.RECIPE.generator(config).module,)),
        (cyclegan, cyclegan.players),
        (pggan, pggan.players),
    ],
)
def test_compute_dtype_flag_sets_every_models_dtype(module, build):
    """``--model.compute-dtype``: auto is float32 on this CPU; params stay float32 either way (tests/models)."""
    for flag, dtype in [("auto", jnp.float32), ("float32", jnp.float32), ("bfloat16", jnp.bfloat16)]:
        config = run.parse(module.Config, ["--model.compute-dtype", flag])
        assert {jnp.dtype(model.dtype) for model in build(config)} == {jnp.dtype(dtype)}
    with pytest.raises(ValueError, match="DCGANModel.compute_dtype: unknown name 'float16'"):
        run.DCGANModel(compute_dtype="float16")


def test_lr_decay_schedules_both_players_over_the_run():
    """D's schedule spans n_critic updates per step, so both reach 0 at the last step."""
    optimizers = run.Optimizers(lr_decay=True, lr_g=1e-3, lr_d=1e-3, d_optimizer="sgd", g_optimizer="sgd")
    tx = optimizers.build(jax.random.key(0), steps=10, n_critic=5)
    params = {"w": np.ones((), np.float32)}

    def steps_taken(chain, n):
        state, sizes = chain.init(params), []
        for _ in range(n):
            updates, state = chain.update({"w": np.ones((), np.float32)}, state, params)
            sizes.append(float(-updates["w"]))
        return sizes

    g_sizes, d_sizes = steps_taken(tx.g, 10), steps_taken(tx.d, 50)
    np.testing.assert_allclose(g_sizes[:6], 1e-3, rtol=1e-6)
    np.testing.assert_allclose(d_sizes[:26], 1e-3, rtol=1e-6)
    np.testing.assert_allclose([g_sizes[-1], d_sizes[-1]], [2e-4, 4e-5], rtol=1e-5)


def test_an_image_folder_gives_its_own_shape_unless_one_is_given(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (64, 64), (i, 90, 200)).save(tmp_path / f"{i}.webp")
    inferred = run.parse(dcgan_mnist.Config, ["--data.dir", str(tmp_path)])
    assert (inferred.data.image_size, inferred.data.channels) == (64, 3)
    given = run.parse(dcgan_mnist.Config, ["--data.dir", str(tmp_path), "--data.image-size", "32"])
    assert (given.data.image_size, given.data.channels) == (32, 3)
    assert given.data.load().images.shape == (3, 32, 32, 3)
    default = run.parse(dcgan_mnist.Config, [])
    assert (default.data.source, default.data.shape) == (str(data.PACKAGED_MNIST), (28, 28, 1))


def test_a_conditional_gan_on_an_unlabelled_folder_says_how_to_label_it(tmp_path, capsys):
    from PIL import Image

    for i in range(20):
        Image.new("L", (28, 28), i).save(tmp_path / f"{i}.png")
    with pytest.raises(SystemExit):
        cgan_mnist.main(
            ["--data.dir", str(tmp_path), "--run.workdir", str(tmp_path / "run"), "--schedule.batch-size", "8"]
        )
    assert (
        "a conditional GAN needs labelled data (for an image folder: --data.folder-labels)" in capsys.readouterr().err
    )


def test_config_shape_mismatch_is_named(mnist_dir):
    with pytest.raises(data.DataError, match="images are \\(28, 28, 1\\), but the config asks for image_size=32"):
        run.Data(dir=str(mnist_dir), image_size=32).load()


# ----------------------------------------------------------------------------- the runner on a toy state


def toy(bad_step=None, zero_loss=False):
    """A jitted step of a toy state whose d_loss is NaN at ``bad_step`` (or always 0)."""

    def step(state, batch):
        loss = jnp.where(state["step"] + 1 == (bad_step or -1), jnp.nan, 0.0 if zero_loss else 1.0 + batch)
        return {"step": state["step"] + 1, "w": state["w"] + batch}, {"d_loss": loss, "g_loss": loss}

    return {"step": jnp.int32(0), "w": jnp.zeros(2)}, jax.jit(step), lambda start: iter(np.arange(start, 100.0))


def toy_hooks(workdir, **monitor_settings):
    settings = run.Run(workdir=str(workdir), log_every=1, checkpoint_every=2)
    return run.run_hooks(settings, {}, watch=monitor.MonitorConfig(**monitor_settings))


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    state, step, batches = toy(bad_step=5)
    with pytest.raises(monitor.NonFiniteLossError, match="d_loss = nan at step 5"):
        run.train_loop(state, step, batches, 10, toy_hooks(tmp_path), step_of=lambda s: int(s["step"]))
    saved = checkpoint.Checkpointer(tmp_path / "checkpoints")
    assert saved.latest_step() == 4
    assert int(saved.restore(state)[0]["step"]) == 4


def test_stop_on_flag_ends_the_run_with_a_sample_and_checkpoint(tmp_path):
    state, step, batches = toy(zero_loss=True)
    samples = []
    hooks = toy_hooks(tmp_path, window=4, stop_on=("d_loss_zero",))
    hooks.insert(-1, run.Periodic(100, lambda s, t: samples.append(t)))
    final = run.train_loop(state, step, batches, 20, hooks, step_of=lambda s: int(s["step"]))
    assert int(final["step"]) == 1 and samples == [1]
    assert checkpoint.Checkpointer(tmp_path / "checkpoints").latest_step() == 1
    (record,) = records(tmp_path)
    assert "D loss 0 is at its least" in record["flags"] and "D loss" in record["stopped"]


def test_metrics_are_fetched_only_on_hook_steps_and_averaged_per_hook(tmp_path):
    state, step, batches = toy()
    settings = run.Run(workdir=str(tmp_path), log_every=3, checkpoint_every=2)
    run.train_loop(state, step, batches, 7, run.run_hooks(settings, {}), step_of=lambda s: int(s["step"]))
    # batch t (t = 0, 1, ...) gives d_loss 1 + t at step t + 1; each record is the mean since the last one.
    assert [(r["step"], r["d_loss"]) for r in records(tmp_path)] == [(3, 2.0), (6, 5.0), (7, 7.0)]


def test_workdir_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path):
    settings = run.Run(workdir=str(tmp_path / "w"))
    run.prepare_workdir(settings, {"model": {"width": 8}, "schedule": {"steps": 4}})
    assert json.loads((tmp_path / "w" / "config.json").read_text())["model"] == {"width": 8}
    run.prepare_workdir(settings, {"model": {"width": 12}})  # only a config: a run that failed before it started
    (tmp_path / "w" / "stale.txt").write_text("old")
    with pytest.raises(run.WorkdirError, match=f"{tmp_path / 'w'} already holds a run: pass --run.resume"):
        run.prepare_workdir(settings, {"model": {"width": 8}})
    run.prepare_workdir(run.Run(workdir=str(tmp_path / "w"), overwrite=True), {"model": {"width": 16}})
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["config.json"]


# ----------------------------------------------------------------------------- experiments end to end


def test_dcgan_run_writes_everything_and_resumes_exactly(mnist_dir, tmp_path, capsys):
    folder = tmp_path / "a"
    straight = run.train(dcgan_mnist.RECIPE, run.parse(dcgan_mnist.Config, tiny_unevaluated(mnist_dir, folder))).state
    started = capsys.readouterr().out.splitlines()
    assert started[0] == "cpu: 1 devices in 1 processes, global batch 16, 16 per device"
    assert sorted(p.name for p in (folder / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]
    for name in ("samples.gif", "interpolation.png", "training.png"):
        assert (folder / name).stat().st_size > 0
    assert any((folder / "tb").iterdir())
    rows = records(folder)
    assert [r["step"] for r in rows] == [2, 4, 6]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"} <= set(rows[0])
    assert_finite(rows)
    assert checkpoint.Checkpointer(folder / "checkpoints").latest_step() == 6
    resolved = json.loads((folder / "config.json").read_text())
    assert resolved["model"]["g_width"] == 8 and resolved["optim"]["lr_g"] == 1e-3

    half = tmp_path / "b"
    dcgan_mnist.main(tiny_unevaluated(mnist_dir, half, "--schedule.steps", "3"))
    with pytest.raises(run.WorkdirError, match="already holds a run"):
        run.train(dcgan_mnist.RECIPE, run.parse(dcgan_mnist.Config, tiny_unevaluated(mnist_dir, half)))
    resumed = run.train(
        dcgan_mnist.RECIPE, run.parse(dcgan_mnist.Config, tiny_unevaluated(mnist_dir, half, "--run.resume"))
    ).state
    assert int(resumed.step) == 6
    chex.assert_trees_all_equal(jax.tree.leaves(resumed.players), jax.tree.leaves(straight.players))
    # The first run logged its end (step 3); the resumed run logs step 4 alone, then as the straight run.
    resumed_rows = records(half)
    assert [r["step"] for r in resumed_rows] == [2, 3, 4, 6]
    assert resumed_rows[0] == rows[0] and resumed_rows[-1] == rows[-1]


@pytest.mark.slow
def test_wgan_gp_splits_its_critic_batches_and_logs_critic_scores(mnist_dir, tmp_path, capsys):
    """Gulrajani et al.'s objective and Adam betas are the defaults; each step takes n_critic batches of batch_size."""
    defaults = wgan_gp_mnist.Config()
    assert (defaults.objective.loss, defaults.objective.penalty, defaults.schedule.n_critic) == (
        "wasserstein",
        "wgan_gp",
        3,
    )
    assert (defaults.optim.lr_g, defaults.optim.b2, defaults.model.d_norm) == (3e-4, 0.9, "none")
    argv = tiny_unevaluated(mnist_dir, tmp_path, "--schedule.steps", "2", "--schedule.batch-size", "4")
    state = run.train(wgan_gp_mnist.RECIPE, run.parse(wgan_gp_mnist.Config, argv)).state
    assert "global batch 4 x 3 batches per step, 4 per device" in capsys.readouterr().out
    assert int(state.step) == 2
    (row,) = records(tmp_path)
    assert {"penalty", "d_real_score", "d_fake_score"} <= set(row) and "d_real" not in row and row["penalty"] > 0
    assert_finite([row])


@pytest.mark.slow
def test_class_head_flags_give_d_a_class_head_on_the_labelled_reals_and_g_catgans_term(mnist_dir, tmp_path):
    """``--class-head.weight`` gives D its class head and its loss on the reals; G still draws from z alone."""
    plain = run.parse(dcgan_mnist.Config, tiny_unevaluated(mnist_dir, tmp_path, "--clusters.k", "0"))
    assert plain.make_gan().conditioning == run.Conditioning()  # no head unless asked for
    head = ["--clusters.k", "0", "--class-head.weight", "1", "--class-head.entropy-weight", "0.5"]
    argv = tiny_unevaluated(mnist_dir, tmp_path, "--schedule.steps", "2", *head)
    state = run.train(dcgan_mnist.RECIPE, run.parse(dcgan_mnist.Config, argv)).state
    (row,) = records(tmp_path)
    assert_finite([row])
    d, g = state.players["d"], state.players["g"]
    (logits, class_logits), _ = d(d.params, np.zeros((2, 28, 28, 1), np.float32), train=False)
    chex.assert_shape((logits, class_logits), ((2,), (2, 10)))
    chex.assert_shape(g(g.params, np.zeros((2, 16), np.float32), train=False)[0], (2, 28, 28, 1))  # z alone
    # A fresh head over 10 classes: the reals' cross-entropy near log 10; CatGAN's term in [-log 10, 0].
    assert 1.0 < row["d_class_loss"] < 4.0 and -np.log(10) <= row["g_class_entropy"] <= 0.0
    assert "g_class_loss" not in row


def test_cluster_flags_train_g_and_d_on_balanced_clusters_of_the_data_and_draw_one_per_sample(
    mnist_dir, tmp_path, monkeypatch
):
    """``--clusters.k`` labels the training data by its k-means clusters (not by its digits), G takes a cluster
    beside z and D sees it; the grid and ``ganjax.sample`` draw a cluster for each image."""
    from ganjax import sample

    argv = tiny_unevaluated(mnist_dir, tmp_path, "--schedule.steps", "2", "--clusters.k", "8")
    config = run.parse(dcgan_mnist.Config, [*argv, "--clusters.iterations", "3"])
    trained_on = {}
    fit = run.fit

    def spy(config, state, step, dataset, *args):
        trained_on["labels"] = dataset.labels
        return fit(config, state, step, dataset, *args)

    monkeypatch.setattr(recipe_module, "fit", spy)
    state = run.train(dcgan_mnist.RECIPE, config).state
    assert_finite(records(tmp_path))
    digits = data.load_idx_folder(mnist_dir)
    pixels = digits.images.reshape(len(digits), -1) / np.float32(255.0)
    expected = clusters.balanced_kmeans(jax.random.fold_in(jax.random.key(0), run.CLUSTERS_KEY), pixels, 8, 3)
    np.testing.assert_array_equal(trained_on["labels"], expected.labels)
    assert np.bincount(trained_on["labels"]).tolist() == [1250] * 8
    g, d = state.players["g"], state.players["d"]
    z, images = np.zeros((2, 16), np.float32), np.zeros((2, 28, 28, 1), np.float32)
    by_cluster = g(g.params, z, np.array([0, 5]), train=False)[0]
    assert not np.allclose(by_cluster[0], by_cluster[1])  # the same z, two clusters: two images
    logits, _ = d(d.params, images, np.array([0, 5]), train=False)
    assert logits[0] != logits[1]  # the same image scored as two clusters
    z, drawn = dcgan_mnist.RECIPE.generator(config).grid(jax.random.key(1))
    chex.assert_shape((z, drawn), ((100, 16), (100,)))
    assert len(set(np.asarray(drawn).tolist())) == 8
    saved = sample.load_run(tmp_path)
    assert saved.sample(12, seed=3).shape == (12, 28, 28, 1) and saved.columns(12) == 10  # 12 images, not 12 a cluster
    assert saved.sample(2, classes=[1, 7]).shape == (4, 28, 28, 1)
    sample.main([str(tmp_path), "--out", str(tmp_path / "again.png")])  # the run's last grid, clusters and all
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "samples" / "step_000002.png").read_bytes()


@pytest.mark.slow
def test_feature_matching_flag_changes_gs_loss_in_a_dcgan_run(mnist_dir, tmp_path):
    """``--objective.g-objective feature_matching`` trains G on the matching loss of D's sown features."""
    losses = {}
    for objective in ("adversarial", "feature_matching"):
        workdir = tmp_path / objective
        argv = tiny_unevaluated(mnist_dir, workdir, "--schedule.steps", "2", "--objective.g-objective", objective)
        run.train(dcgan_mnist.RECIPE, run.parse(dcgan_mnist.Config, argv))
        (row,) = records(workdir)
        assert_finite([row])
        losses[objective] = row["g_loss"]
    # The non-saturating loss of a fresh G is near log 2; the squared distance between the means of D's 512
    # unnormalised features of reals and fakes is of another scale.
    assert 0.3 < losses["adversarial"] < 3.0 and losses["feature_matching"] > 10 * losses["adversarial"]


@pytest.mark.slow
def test_mnist_evaluation_is_logged_with_its_floor(mnist_dir, tmp_path):
    from ganjax.evaluation import mnist_classifier

    classifier_dir = mnist_classifier.save_mnist_classifier(
        mnist_classifier.init(jax.random.key(0), mnist_classifier.ClassifierConfig(conv_widths=(4, 8), feature_dim=8)),
        tmp_path / "classifier",
    )
    dcgan_mnist.main(
        tiny(
            mnist_dir,
            tmp_path / "run",
            "--evaluation.eval-every",
            "3",
            "--evaluation.eval-samples",
            "64",
            "--evaluation.classifier-dir",
            str(classifier_dir),
            "--state.ema-decay",
            "0.9",
        )
    )
    evaluated = [r for r in records(tmp_path / "run") if "fid" in r]
    assert [r["step"] for r in evaluated] == [4, 6]  # computed at steps 3 and 6, logged with the next record
    assert "fid_floor" in evaluated[0] and "fid_floor" not in evaluated[1]
    for name in ("fid", "kid", "precision", "recall", "class_coverage", "duplicate_share", "ema_fid"):
        assert np.isfinite(evaluated[1][name]), name
    assert 1 <= evaluated[1]["class_coverage"] <= 10
    assert 0.0 <= evaluated[1]["readable_share"] <= 1.0 and "ema_readable_share" in evaluated[1]


@pytest.mark.slow  # their models' tests are in the default suite
@pytest.mark.parametrize("module", [sagan, msggan], ids=["sagan", "msggan"])
def test_sagan_and_msggan_train_and_write_samples(module, mnist_dir, tmp_path):
    argv = tiny(
        mnist_dir,
        tmp_path,
        "--schedule.steps",
        "2",
        "--schedule.batch-size",
        "8",
        "--run.sample-every",
        "2",
        "--num-samples",
        "10",
    )
    state = run.train(module.RECIPE, run.parse(module.Config, argv)).state
    assert int(state.step) == 2
    assert (tmp_path / "samples" / "step_000002.png").stat().st_size > 0
    assert_finite(records(tmp_path))
    if module is msggan:
        assert (tmp_path / "scales.png").stat().st_size > 0


def test_classifier_trains_and_reports_its_accuracy(mnist_dir, tmp_path, capsys):
    result = train_mnist_classifier.main(
        [
            "--data.dir",
            str(mnist_dir),
            "--out",
            str(tmp_path / "c"),
            "--training.steps",
            "3",
            "--training.width",
            "4",
            "--training.feature-dim",
            "8",
            "--training.test-size",
            "500",
            "--min-accuracy",
            "0",
        ]
    )
    assert 0.0 <= result["test_accuracy"] <= 1.0 and result["test_size"] == 500
    assert json.loads((tmp_path / "c" / "result.json").read_text())["training"]["steps"] == 3


@pytest.mark.parametrize(
    "objective,floor",
    [
        (run.Objective(), 0.05),
        (run.Objective(d_labels="one_sided"), 0.325 + 0.05),  # H(0.9): smoothed D cannot go lower
        (run.Objective(loss="hinge"), 0.05),
        (run.Objective(loss="wasserstein"), -np.inf),
    ],
)
def test_d_at_its_least_is_judged_above_the_least_its_targets_allow(objective, floor):
    settings = run.Monitor().build(objective)
    assert settings.d_loss_floor == pytest.approx(floor, abs=1e-3)
    # a smoothed D that wins outright: its loss sits just above H(0.9), far from 0
    winning = {"d_loss": 0.33 + 0.01 * np.random.default_rng(0).random(600), "d_real": np.full(600, 0.9)}
    flags = [flag.name for flag in monitor.Monitor(settings).check(winning)]
    assert ("d_loss_zero" in flags) == (objective.d_labels == "one_sided")


@pytest.mark.parametrize("loss", ["hinge", "wasserstein"])
@pytest.mark.parametrize("bounded_below", [True, False])
def test_d_at_its_least_is_off_for_a_loss_unbounded_below(monkeypatch, loss, bounded_below):
    """The monitor reads the loss's d_loss_bounded_below, not its name: False turns the check off (floor -inf)."""
    monkeypatch.setitem(losses.LOSSES, loss, losses.LOSSES[loss]._replace(d_loss_bounded_below=bounded_below))
    floor = run.Monitor().build(run.Objective(loss=loss)).d_loss_floor
    assert floor == (pytest.approx(0.05) if bounded_below else -np.inf)


@pytest.mark.parametrize("restarts", [(), (600,)])
def test_the_runs_monitor_flags_what_its_replay_flags(restarts):
    """``run.Watch`` checks what ``monitor.replay`` checks at each logging step, restarts included."""
    trace = {"d_loss": np.full(1200, 1.0) + 0.05 * np.random.default_rng(0).normal(size=1200)}
    trace["d_loss"][600:650] += 1.0  # a new stage's swing
    config = monitor.MonitorConfig(restarts=restarts)
    watch, live = run.Watch(50, config), []
    for step in range(50, 1201, 50):
        context = run.Context(step, None, step == 1200, [{"d_loss": v} for v in trace["d_loss"][step - 50 : step]])
        watch(context)
        live.append((step, context.postfix["flags"]))
    replayed = [(step, ",".join(f.name for f in flags) or "-") for step, flags in monitor.replay(trace, 50, config)]
    assert live == replayed and any(flags != "-" for _, flags in live) == (not restarts)


def test_cluster_features_are_the_pixels_pooled_down_to_32_wide():
    small = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28, 1)
    np.testing.assert_allclose(clusters.cluster_features(small), small.reshape(2, -1) / np.float32(255.0))
    large = np.random.default_rng(0).integers(0, 256, (2, 65, 65, 3), dtype=np.uint8)
    pooled = clusters.cluster_features(large)  # 3 x 3 squares of the first 63 rows and columns
    assert pooled.shape == (2, 21 * 21 * 3)
    np.testing.assert_allclose(
        pooled.reshape(2, 21, 21, 3)[1, 4, 2], large[1, 12:15, 6:9].mean((0, 1)) / 255.0, rtol=1e-6
    )


def test_no_clusters_turns_off_an_experiments_own_cluster_settings():
    """``--clusters.k 0`` gives WGAN-GP's plain critic although its defaults choose the clusters' projection."""
    config = run.parse(wgan_gp_mnist.Config, ["--clusters.k", "0"])
    assert config.conditioning == run.Conditioning() and config.d_conditioning == "none"
    assert run.parse(wgan_gp_mnist.Config, []).conditioning == run.Conditioning(50, fake_classes="reals")


@pytest.mark.parametrize("images, clusters", [(399, 0), (400, 2), (1000, 5), (10_000, 50), (60_000, 50)])
def test_clusters_left_to_the_data_scale_with_its_size(images, clusters):
    assert run.Clusters(k=None).for_images(images).k == clusters
    assert run.Clusters(k=7).for_images(images).k == 7  # a number given is kept


def test_the_general_dcgan_takes_its_clusters_from_the_datas_size(tmp_path):
    """experiments.dcgan on the embedded 10,000 digits clusters them 50 ways, as dcgan_mnist does, and on a folder
    of 24 images not at all; the number is resolved before the run, so config.json records it."""
    from experiments import dcgan

    assert run.parse(dcgan.Config, []).clusters.k == 50
    for i in range(24):
        Image.fromarray(np.full((8, 8, 3), i, np.uint8)).save(tmp_path / f"{i}.png")
    config = run.parse(dcgan.Config, ["--data.dir", str(tmp_path)])
    assert config.clusters.k == 0 and config.data.shape == (8, 8, 3)
    assert run.resolve(config) is config  # resolving twice changes nothing
    with_head = run.parse(dcgan.Config, ["--class-head.weight", "1"])
    assert with_head.clusters.k == 0 and with_head.conditioning.aux_class_weight == 1


def test_a_hand_wired_run_refuses_a_folder_holding_another_runs_checkpoints(tmp_path):
    """Wired by hand (no prepare_workdir), a run that does not resume stops before its first step rather than
    restart at step 0 beside the checkpoints of another run."""
    state, step, batches = toy()
    settings = run.Run(workdir=str(tmp_path), log_every=1, checkpoint_every=2)
    step_of = lambda s: int(s["step"])
    run.train_loop(state, step, batches, 2, run.run_hooks(settings, {}), step_of=step_of)
    with pytest.raises(run.WorkdirError, match=r"holds checkpoints of another run \(steps 2\)"):
        run.train_loop(toy()[0], step, batches, 2, run.run_hooks(settings, {}), step_of=step_of)
    assert checkpoint.saved_steps(tmp_path / "checkpoints") == [2]
