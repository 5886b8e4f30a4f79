"""Experiment plumbing and the DCGAN experiment end to end, at tiny sizes on the real digits."""

import dataclasses
import json

import chex
import jax
import numpy as np
import pytest

from experiments import common, dcgan_mnist, wgan_gp_mnist
from ganjax import checkpoint, data
from ganjax.evaluation import monitor


def tiny(mnist_dir, tmp_path, config_cls=dcgan_mnist.Config, **overrides):
    values = dict(data_dir=str(mnist_dir), workdir=str(tmp_path / "run"), steps=6, batch_size=16, latent_dim=16,
                  g_width=8, d_width=8, num_samples=12, log_every=2, sample_every=3, checkpoint_every=3, eval_every=0)
    return config_cls(**{**values, **overrides})


def test_dcgan_run_writes_everything_and_resumes_exactly(mnist_dir, tmp_path):
    straight = dcgan_mnist.train_and_evaluate(tiny(mnist_dir, tmp_path / "a"))
    run = tmp_path / "a" / "run"
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_000003.png", "step_000006.png"]
    assert (run / "samples.gif").stat().st_size > 0 and any((run / "tb").iterdir())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 3, 4, 6]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"} <= set(records[0])
    assert checkpoint.Checkpointer(run / "checkpoints").latest_step() == 6

    dcgan_mnist.train_and_evaluate(tiny(mnist_dir, tmp_path / "b", steps=3))
    resumed = dcgan_mnist.train_and_evaluate(tiny(mnist_dir, tmp_path / "b", resume=True))
    assert int(resumed.step) == 6
    chex.assert_trees_all_equal(resumed.g.params, straight.g.params)
    chex.assert_trees_all_equal(resumed.d.params, straight.d.params)
    chex.assert_trees_all_equal(resumed.g.opt_state, straight.g.opt_state)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(mnist_dir, tmp_path):
    config = tiny(mnist_dir, tmp_path, steps=10, log_every=1, checkpoint_every=2)
    state = dcgan_mnist.create_state(config, jax.random.key(0))
    step = jax.jit(lambda s, b: dcgan_mnist.train.train_step(s, b, common.step_config(config)))

    def poisoned(state, batch):
        state, metrics = step(state, batch)
        return state, {**metrics, "d_loss": jax.numpy.where(state.step == 5, jax.numpy.nan, metrics["d_loss"])}

    with pytest.raises(monitor.NonFiniteLossError, match="d_loss = nan at step 5"):
        common.fit(config, state, poisoned, data.load_idx_folder(mnist_dir), lambda s, t: None)
    saved = checkpoint.Checkpointer(tmp_path / "run" / "checkpoints")
    assert saved.latest_step() == 4
    restored, saved_config = saved.restore(state)
    assert int(restored.step) == 4 and saved_config["steps"] == 10
    chex.assert_tree_all_finite(restored.g.params)


def test_checkpointer_refuses_non_finite_metrics(tmp_path):
    saver = checkpoint.Checkpointer(tmp_path)
    with pytest.raises(ValueError, match="non-finite metrics \\['g_loss'\\]"):
        saver.save(1, {"x": np.ones(2)}, metrics={"g_loss": np.nan, "d_loss": 1.0})
    assert saver.latest_step() is None
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        saver.restore({"x": np.ones(2)})


def test_parse_config_overrides_and_refuses_unknown_fields(capsys):
    config = common.parse_config(dcgan_mnist.Config, ["--steps", "7", "--lr-g", "5e-4", "--resume", "--data-dir", "d"])
    assert (config.steps, config.lr_g, config.resume, config.data_dir) == (7, 5e-4, True, "d")
    assert dataclasses.replace(config, steps=dcgan_mnist.Config.steps) == dcgan_mnist.Config(lr_g=5e-4, resume=True, data_dir="d")
    with pytest.raises(SystemExit):
        common.parse_config(dcgan_mnist.Config, ["--stepz", "7"])
    assert "unrecognized arguments: --stepz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        common.parse_config(dcgan_mnist.Config, ["--steps", "many"])
    assert "--steps: invalid int value: 'many'" in capsys.readouterr().err


def test_config_shape_mismatch_is_named(mnist_dir):
    with pytest.raises(data.DataError, match="images are \\(28, 28, 1\\), but the config asks for image_size=32"):
        common.load_data(dcgan_mnist.Config(data_dir=str(mnist_dir), image_size=32))


def test_mnist_evaluation_is_logged_with_its_floor(mnist_dir, tmp_path):
    from ganjax.evaluation import mnist_classifier

    classifier_dir = mnist_classifier.save_mnist_classifier(
        mnist_classifier.init(jax.random.key(0), mnist_classifier.ClassifierConfig(conv_widths=(4, 8), feature_dim=8)),
        tmp_path / "classifier")
    config = tiny(mnist_dir, tmp_path, eval_every=3, eval_samples=64, classifier_dir=str(classifier_dir),
                  ema_decay=0.9, workdir=str(tmp_path / "eval_run"))
    dcgan_mnist.train_and_evaluate(config)
    records = [json.loads(line) for line in (tmp_path / "eval_run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = [r for r in records if "fid" in r]
    assert [r["step"] for r in evaluated] == [3, 6]
    assert "fid_floor" in evaluated[0] and "fid_floor" not in evaluated[1]
    for name in ("fid", "kid", "precision", "recall", "class_coverage", "duplicate_share", "ema_fid"):
        assert np.isfinite(evaluated[1][name]), name
    assert 1 <= evaluated[1]["class_coverage"] <= 10
    assert (tmp_path / "eval_run" / "training.png").stat().st_size > 0


def test_stop_on_flag_ends_the_run_with_a_checkpoint(mnist_dir, tmp_path):
    config = tiny(mnist_dir, tmp_path, steps=20, log_every=4, checkpoint_every=10, stop_on="d_loss_zero")
    state = dcgan_mnist.create_state(config, jax.random.key(0))
    step = jax.jit(lambda s, b: dcgan_mnist.train.train_step(s, b, common.step_config(config)))

    def d_always_wins(state, batch):
        state, metrics = step(state, batch)
        return state, {**metrics, "d_loss": metrics["d_loss"] * 0.0}

    final = common.fit(config, state, d_always_wins, data.load_idx_folder(mnist_dir), lambda s, t: None)
    assert int(final.step) == 4
    assert checkpoint.Checkpointer(tmp_path / "run" / "checkpoints").latest_step() == 4
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "D loss 0 is near 0" in records[0]["flags"] and "D loss" in records[-1]["stopped"]


def test_lr_decay_schedules_both_players_over_the_run():
    """D's schedule spans n_critic updates per step, so both reach 0 at the last step."""
    config = dcgan_mnist.Config(lr_decay=True, steps=10, n_critic=5, lr_g=1e-3, lr_d=1e-3, d_optimizer="sgd",
                                g_optimizer="sgd")
    tx = common.optimizers(config, jax.random.key(0))
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
    with pytest.raises(ValueError, match="lr_decay needs a positive number of steps"):
        common.optimizers(dataclasses.replace(config, steps=0), jax.random.key(0))


def test_wgan_gp_experiment_keeps_the_papers_recipe_and_logs_critic_scores(mnist_dir, tmp_path):
    """Gulrajani et al.'s settings are the defaults; a tiny run logs the penalty and raw critic scores."""
    defaults = wgan_gp_mnist.Config()
    step = common.step_config(defaults)
    assert (step.loss, step.penalty, step.penalty_weight, step.n_critic) == ("wasserstein", "wgan_gp", 10.0, 5)
    assert (defaults.lr_g, defaults.lr_d, defaults.b1, defaults.b2, defaults.d_norm) == (1e-4, 1e-4, 0.5, 0.9, "none")
    state = dcgan_mnist.train_and_evaluate(tiny(mnist_dir, tmp_path, wgan_gp_mnist.Config, steps=2, batch_size=4))
    assert int(state.step) == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"penalty", "d_real_score", "d_fake_score"} <= set(records[-1]) and "d_real" not in records[-1]
    assert records[-1]["penalty"] > 0
