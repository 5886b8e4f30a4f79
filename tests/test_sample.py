"""ganjax.sample: a run's G rebuilt from its folder alone draws the run's own sample grids; its one-line errors."""

import dataclasses
import importlib
import json
import os
import shutil
import subprocess
import sys
import types

import jax
import numpy as np
import pytest
from PIL import Image

from experiments import dcgan_mnist
from ganjax import run, sample
from tests.training.tiny import LATENT, TinyG, make_state, standing_by_hand, with_ema_apart

SMALL = ("--latent.dim", "8", "--model.g-width", "4", "--model.d-width", "4")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A tiny run of one experiment, and where the sampler's default grid sits in the run's grids."""

    args: tuple[str, ...]
    steps: int = 2
    ema: bool = False  # the run samples G's moving average
    row: int = 0  # the run's grid row where the sampler's grid begins (the run's grid may show more)


EXPERIMENTS = {
    "dcgan_mnist": Experiment(  # G itself (its moving average is the others' case)
        (*SMALL, "--evaluation.eval-every", "0", "--num-samples", "10", "--state.ema-decay", "0", "--clusters.k", "0"),
        steps=4,
    ),
    "cgan_mnist": Experiment((*SMALL, "--samples-per-class", "2", "--class-accuracy.classifier-dir", ""), ema=True),
    "msggan": Experiment((*SMALL, "--num-samples", "10", "--state.ema-decay", "0.9"), ema=True),
    "vaegan_mnist": Experiment(
        ("--latent.dim", "8", "--model.width", "4", "--holdout", "100", "--grid-columns", "5", "--grid-pairs", "1")
        + ("--reconstruction.classifier-dir", ""),
        row=2,
    ),
    "wgan_gp_mnist": Experiment((*SMALL, "--evaluation.eval-every", "0", "--num-samples", "10")),
    "acgan_mnist": Experiment((*SMALL, "--samples-per-class", "2", "--class-accuracy.classifier-dir", ""), ema=True),
    "sagan": Experiment((*SMALL, "--num-samples", "20", "--model.num-classes", "10")),
    "pggan": Experiment(
        ("--model.latent-dim", "8", "--model.g-width", "4", "--model.d-width", "4", "--model.max-width", "8")
        + ("--schedule.fade-images", "8", "--schedule.stable-images", "4", "--num-samples", "8"),
        steps=3,
        ema=True,
    ),
    "cyclegan": Experiment(
        ("--model.g-width", "4", "--model.g-blocks", "1", "--model.d-width", "4", "--pool.size", "6")
        + ("--num-samples", "4"),
        row=1,
    ),
}
FAST = ("dcgan_mnist", "cgan_mnist")  # the other families in -m slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mnist_dir):
    """``name -> workdir`` of a tiny run of experiment ``name`` (each run once per module)."""
    done = {}

    def run(name: str):
        if name not in done:
            experiment, workdir = EXPERIMENTS[name], tmp_path_factory.mktemp(name)
            importlib.import_module(f"experiments.{name}").main(
                [
                    *("--data.dir", str(mnist_dir), "--run.workdir", str(workdir)),
                    *("--schedule.steps", str(experiment.steps), "--schedule.batch-size", "4"),
                    *("--run.log-every", "2", "--run.sample-every", "2", "--run.checkpoint-every", "2"),
                    *experiment.args,
                ]
            )
            done[name] = workdir
        return done[name]

    return run


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def run_grid(workdir, step: int, row: int, side: int, height: int) -> np.ndarray:
    """The run's grid of ``step`` from grid row ``row``, ``height`` pixels (tiles of ``side``, 2 apart, scaled 2)."""
    top = 2 * row * (side + 2)
    return pixels(workdir / "samples" / f"step_{step:06d}.png")[top : top + height]


def sample_main(argv, capsys) -> tuple[int, str]:
    """``ganjax.sample.main(argv)``'s exit code and its stderr."""
    capsys.readouterr()  # what came before (a run's progress bars)
    try:
        sample.main([str(arg) for arg in argv])
    except SystemExit as e:
        return e.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "name", [name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in EXPERIMENTS]
)
def test_the_sampler_draws_the_runs_last_sample_grid(name, trained, tmp_path, capsys):
    workdir, experiment = trained(name), EXPERIMENTS[name]
    out = tmp_path / "grid.png"
    code, err = sample_main([workdir, "--out", out], capsys)  # the moving average when kept, as the run's grids
    assert code == 0, err
    ours = pixels(out)
    side = sample.load_run(workdir).config.data.image_size
    theirs = run_grid(workdir, experiment.steps, experiment.row, side, ours.shape[0])
    if experiment.row == 0:
        assert out.read_bytes() == (workdir / "samples" / f"step_{experiment.steps:06d}.png").read_bytes()
    np.testing.assert_array_equal(ours, theirs)


def test_no_ema_samples_gs_own_weights_where_the_run_kept_an_average(trained, tmp_path, capsys):
    workdir = trained("cgan_mnist")
    run = sample.load_run(workdir)
    assert run.uses_ema(None) and not run.uses_ema(False)
    capsys.readouterr()
    sample.main([str(workdir), "--out", str(tmp_path / "g.png"), "--no-ema"])
    assert "(EMA)" not in capsys.readouterr().out
    sample.main([str(workdir), "--out", str(tmp_path / "average.png")])
    assert "(EMA)" in capsys.readouterr().out
    assert pixels(tmp_path / "g.png").shape == pixels(tmp_path / "average.png").shape
    assert not np.array_equal(pixels(tmp_path / "g.png"), pixels(tmp_path / "average.png"))
    np.testing.assert_array_equal(run.sample(ema=False), run.sample(ema=False))
    assert not np.array_equal(run.sample(), run.sample(ema=False))


def test_a_checkpoints_step_gives_that_steps_grid(trained, tmp_path, capsys):
    workdir, out = trained("dcgan_mnist"), tmp_path / "grid.png"
    assert sample_main([workdir, "--out", out, "--step", 2], capsys)[0] == 0
    assert out.read_bytes() == (workdir / "samples" / "step_000002.png").read_bytes()
    assert out.read_bytes() != (workdir / "samples" / "step_000004.png").read_bytes()


def test_a_run_folder_relative_to_the_working_directory_is_sampled(trained, tmp_path, capsys, monkeypatch):
    workdir = trained("dcgan_mnist")
    monkeypatch.chdir(workdir.parent)  # the README's form: python -m ganjax.sample runs/dcgan_mnist ...
    code, err = sample_main([workdir.name, "--out", tmp_path / "grid.png", "--step", 2], capsys)
    assert code == 0, err
    assert (tmp_path / "grid.png").read_bytes() == (workdir / "samples" / "step_000002.png").read_bytes()


def test_fresh_draws_come_from_the_seed(trained):
    run = sample.load_run(trained("dcgan_mnist"))
    assert (run.experiment, run.step, run.ema_params) == ("ganjax.run.recipes:DCGANRecipe", 4, None)
    images = run.sample(7, seed=3)
    assert images.shape == (7, 28, 28, 1) and images.dtype == np.float32
    assert -1.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(images, run.sample(7, seed=3))
    assert not np.array_equal(images, run.sample(7, seed=4))
    assert not np.array_equal(images, run.sample()[:7])


def test_a_conditional_grid_has_a_row_per_asked_class(trained, tmp_path, capsys):
    workdir, out = trained("cgan_mnist"), tmp_path / "grid.png"
    assert sample_main([workdir, "--out", out, "--classes", 0, 3, 7, "--num", 4, "--ema", "--seed", 1], capsys)[0] == 0
    assert pixels(out).shape == (2 * (3 * 30 + 2), 2 * (4 * 30 + 2))
    run = sample.load_run(workdir)
    assert run.columns(4, [0, 3, 7]) == 4 and run.sample(4, seed=1, classes=[0, 3, 7], ema=True).shape[0] == 12
    assert not np.array_equal(run.sample(2, seed=1, classes=[3]), run.sample(2, seed=1, classes=[7]))  # same z


def test_interpolation_rows_are_paths_of_ten(trained, tmp_path, capsys):
    out = tmp_path / "paths.png"
    assert sample_main([trained("dcgan_mnist"), "--out", out, "--interpolate", "--num", 20], capsys)[0] == 0
    assert pixels(out).shape == (2 * (2 * 30 + 2), 2 * (10 * 30 + 2))
    run = sample.load_run(trained("cgan_mnist"))
    paths = run.interpolate(rows=3, seed=0, classes=[5], ema=True)
    assert paths.shape == (30, 28, 28, 1)
    assert not np.array_equal(paths[0], paths[9])


def copy_with_config(workdir, tmp_path, edit) -> str:
    """A copy of the run in ``workdir`` whose config.json is ``edit(config)``."""
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    saved = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(edit(saved)))
    return copy


def without_checkpoints(workdir, tmp_path):
    folder = tmp_path / "no_checkpoints"
    folder.mkdir()
    shutil.copy(workdir / "config.json", folder)
    return folder


@pytest.mark.parametrize(
    "folder, flags, message",
    [
        (lambda run, tmp: tmp, [], "no config.json there"),
        (without_checkpoints, [], "no_checkpoints/checkpoints: no checkpoint to sample from"),
        (lambda run, tmp: run, ["--classes", "1"], "recipes:DCGANRecipe is unconditional: it takes no classes"),
        (lambda run, tmp: run, ["--ema"], "the run kept no moving average of G"),
        (lambda run, tmp: run, ["--step", "3"], "no checkpoint of step 3; there are 2, 4"),
        (lambda run, tmp: run, ["--num", "0"], "the number of images must be at least 1, got 0"),
        (
            lambda run, tmp: copy_with_config(run, tmp, lambda c: {k: v for k, v in c.items() if k != "recipe"}),
            [],
            "config.json does not say where its recipe come from",
        ),
        (
            lambda run, tmp: copy_with_config(run, tmp, lambda c: {**c, "recipe": {"name": "nowhere.at_all:R"}}),
            [],
            "the run's recipe cannot be imported (No module named 'nowhere')",
        ),
        (
            lambda run, tmp: copy_with_config(run, tmp, lambda c: {**c, "recipe": {"name": "ganjax.run:Run"}}),
            [],
            "ganjax.run:Run has no image generator to sample",
        ),
        (
            lambda run, tmp: copy_with_config(run, tmp, lambda c: {**c, "run": {**c["run"], "sed": 1}}),
            [],
            "config.json: run.sed: not a field of Run",
        ),
    ],
)
def test_an_error_is_one_line_naming_the_problem(folder, flags, message, trained, tmp_path, capsys):
    code, err = sample_main([folder(trained("dcgan_mnist"), tmp_path), "--out", tmp_path / "x.png", *flags], capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "x.png").exists()


def test_unknown_classes_are_refused_naming_the_known_ones(trained, tmp_path, capsys):
    code, err = sample_main([trained("cgan_mnist"), "--out", tmp_path / "x.png", "--classes", 3, 10], capsys)
    assert code == 2 and "classes [10]: ganjax.run.recipes:ConditionalRecipe knows classes 0 to 9" in err


@pytest.mark.parametrize("name", [*EXPERIMENTS, "gaussian_mixture"])
def test_a_config_comes_back_from_its_dict(name):
    module = importlib.import_module(f"experiments.{name}")
    config = run.parse(module.Config, ["--run.seed", "3", "--monitor.stop-on", "d_loss_zero"])
    assert sample.config_from_dict(module.Config, run.to_dict(config)) == config


def test_a_config_dict_with_unknown_fields_is_refused_naming_them():
    with pytest.raises(ValueError, match=r"^bogus, zz: not a field of Config$"):
        sample.config_from_dict(dcgan_mnist.Config, {"zz": 1, "bogus": 2, "run": {}})
    with pytest.raises(ValueError, match=r"^optim\.lr: not a field of Optimizers$"):
        sample.config_from_dict(dcgan_mnist.Config, {"optim": {"lr": 1.0}})


def test_the_run_records_where_its_recipe_and_config_come_from(trained):
    saved = json.loads((trained("dcgan_mnist") / run.CONFIG_FILE).read_text())
    assert saved[run.RECIPE_KEY]["name"] == "ganjax.run.recipes:DCGANRecipe"
    assert saved[run.CONFIG_CLASS_KEY]["name"] == "experiments.dcgan_mnist:Config"
    assert importlib.import_module("experiments").__file__.startswith(saved[run.CONFIG_CLASS_KEY]["path"])


def test_the_grid_takes_the_rows_asked_for(trained, tmp_path, capsys):
    workdir = trained("dcgan_mnist")
    assert sample_main([workdir, "--out", tmp_path / "five.png", "--nrow", 5], capsys)[0] == 0
    (five_high, five_wide), (one_high, ten_wide) = (
        pixels(path).shape[:2] for path in (tmp_path / "five.png", workdir / "samples" / "step_000004.png")
    )
    assert five_high > one_high and five_wide < ten_wide  # 10 images: two rows of five, not one of ten
    code, err = sample_main([workdir, "--out", tmp_path / "none.png", "--nrow", 0], capsys)
    assert code == 2 and "--nrow: images per row must be at least 1, got 0" in err


def test_the_moving_average_is_sampled_with_batchnorm_statistics_recomputed_for_it(tmp_path):
    state = with_ema_apart(make_state(ema_decay=0.9))
    g, ema = state.players["g"], state.ema["g"].params
    draw = lambda key, n: jax.random.normal(key, (n, LATENT))
    generator = sample.Generator(TinyG(), draw, key=jax.random.key(2), num=6, nrow=3)
    config = types.SimpleNamespace(schedule=types.SimpleNamespace(batch_size=8))
    run = sample.Run(tmp_path, "tiny", config, generator, 1, {"params": g.params, "batch_stats": g.batch_stats}, ema)
    for key, images in ((generator.key, run.sample(ema=True)), (jax.random.key(4), run.sample(5, seed=4, ema=True))):
        z = draw(key, len(images))
        expected = g.apply_fn({"params": ema, "batch_stats": standing_by_hand(ema, key, draw, 8)}, z, train=False)
        np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-6)
        assert not np.allclose(images, g.apply_fn({"params": ema, "batch_stats": g.batch_stats}, z, train=False))
    np.testing.assert_array_equal(run.sample(ema=False), g.apply_fn(run.variables, draw(generator.key, 6), train=False))
    np.testing.assert_array_equal(run.sample(), run.sample(ema=True))  # by default, as the run sampled it


@pytest.mark.slow  # a process of its own, starting JAX
def test_a_folder_with_its_own_experiments_package_samples_the_projects_run(trained, tmp_path):
    """From a folder holding a package named ``experiments`` (one is on the public index too), the sampler imports
    the run's config class from the checkout it was recorded in, and never runs the other package."""
    workdir = trained("dcgan_mnist")
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "__init__.py").write_text("raise RuntimeError('the wrong experiments package')\n")
    out = tmp_path / "grid.png"
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-m", "ganjax.sample", str(workdir), "--out", str(out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert out.read_bytes() == (workdir / "samples" / "step_000004.png").read_bytes()
