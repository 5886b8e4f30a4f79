"""The PGGAN experiment: MNIST padded to 32x32, its stage schedule, and a resume mid-stage at the same weight."""

import json

import chex
import jax
import pytest

from experiments import pggan as experiment
from ganjax import run


def tiny(mnist_dir, workdir, *extra):
    """Arguments of a tiny run: stage 0 is step 0; stage 1 fades in over steps 1 and 2 (alpha 0, 0.5) and is
    stable at step 3."""
    return [
        "--data.dir",
        str(mnist_dir),
        "--run.workdir",
        str(workdir),
        "--schedule.batch-size",
        "8",
        "--schedule.fade-images",
        "16",
        "--schedule.stable-images",
        "8",
        "--model.latent-dim",
        "8",
        "--model.g-width",
        "4",
        "--model.d-width",
        "4",
        "--model.max-width",
        "8",
        "--num-samples",
        "4",
        "--run.log-every",
        "1",
        "--run.sample-every",
        "5",
        "--run.checkpoint-every",
        "5",
        *extra,
    ]


def parse(argv):
    return run.parse(experiment.Config, argv)


def records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_mnist_is_padded_to_32_and_the_schedule_spans_every_stage(mnist_dir, tmp_path):
    config = parse(tiny(mnist_dir, tmp_path))
    assert experiment.RECIPE.load(config).images.shape[1:] == (32, 32, 1)
    assert config.plan.num_stages == 4 and config.steps == config.plan.total_steps() == 1 + 3 * 3
    assert experiment.Config().steps == 3500  # 16,000 images per fade-in and stable period, 32 a step
    assert config.schedule.steps == 10 and run.parse(experiment.Config, ["--schedule.steps", "4"]).schedule.steps == 4
    with pytest.raises(ValueError, match="Data.image_size: must be 4 \\* 2\\^k, got 28"):
        experiment.Config(data=run.Data(image_size=28))


@pytest.mark.slow  # every stage's compile and weight are checked in tests/models/test_pggan.py
def test_experiment_resumes_mid_stage_at_the_same_weight(mnist_dir, tmp_path):
    straight = run.train(experiment.RECIPE, parse(tiny(mnist_dir, tmp_path / "a", "--schedule.steps", "4"))).state
    assert int(straight.step) == 4 and (tmp_path / "a" / "samples" / "step_000004.png").is_file()
    alphas = {r["step"]: r["alpha"] for r in records(tmp_path / "a")}
    assert alphas == {1: 1.0, 2: 0.0, 3: 0.5, 4: 1.0}

    experiment.main(tiny(mnist_dir, tmp_path / "b", "--schedule.steps", "2", "--run.checkpoint-every", "2"))
    resumed = run.train(
        experiment.RECIPE, parse(tiny(mnist_dir, tmp_path / "b", "--schedule.steps", "4", "--run.resume"))
    ).state
    assert {r["step"]: r["alpha"] for r in records(tmp_path / "b")} == alphas
    # Params, optimizer states and G's moving average (the modules and optimizers are static, new each run).
    chex.assert_trees_all_equal(
        jax.tree.leaves((resumed.players, resumed.ema)), jax.tree.leaves((straight.players, straight.ema))
    )


def test_the_monitor_judges_each_stage_on_its_own_steps():
    """The monitor restarts where each stage's new layers start training, and reads the Wasserstein loss."""
    config = experiment.Config()
    watch = experiment.monitor_config(config)
    plan = config.plan
    assert watch.restarts == (plan.start(1), plan.start(2), plan.start(3)) == (500, 1500, 2500)
    assert [plan.stage(r) for r in watch.restarts] == [1, 2, 3] and plan.stage(watch.restarts[0] - 1) == 0
    assert watch.d_loss_floor == -float("inf")
