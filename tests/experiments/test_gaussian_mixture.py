"""experiments/gaussian_mixture.py end to end with a tiny config: its outputs, names, cadences, resume and errors."""

import json

import pytest
from PIL import Image

from experiments import gaussian_mixture as gm
from ganjax import checkpoint, run

TINY = [
    "--schedule.steps",
    "40",
    "--evaluation.eval-every",
    "20",
    "--run.log-every",
    "20",
    "--run.sample-every",
    "20",
    "--schedule.batch-size",
    "32",
    "--model.g-width",
    "16",
    "--model.d-width",
    "16",
    "--model.g-depth",
    "2",
    "--model.d-depth",
    "2",
    "--evaluation.eval-samples",
    "200",
]


def test_tiny_run_writes_metrics_scatter_and_plot(tmp_path):
    workdir = tmp_path / "grid_ns_0"
    result = gm.main(TINY + ["--mixture", "grid", "--run.workdir", str(workdir)])
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40] and result.metrics == records[-1] and int(result.state.step) == 40
    assert result.results == {name: records[-1][name] for name in ("modes", "high_quality", "mode_kl")}
    for key in (
        "d_loss",
        "g_loss",
        "d_real",
        "d_fake",
        "d_grad_norm",
        "g_grad_norm",
        "modes",
        "high_quality",
        "mode_kl",
        "duplicate_share",
        "pairwise_distance_ratio",
    ):
        assert key in records[-1]
    assert 0 <= records[-1]["modes"] <= 25 and 0.0 <= records[-1]["high_quality"] <= 1.0
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == ["step_000020.png", "step_000040.png"]
    assert Image.open(workdir / "training.png").size[0] > 100 and (workdir / "samples.gif").is_file()
    assert json.loads((workdir / "config.json").read_text())["mixture"] == "grid"
    table = run.seeds_table(tmp_path, gm.TABLE_COLUMNS)
    assert "| grid_ns | 1 |" in table


def test_nan_stops_the_run_naming_what_went_non_finite(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        gm.main(TINY + ["--optim.lr-d", "1e38", "--optim.d-optimizer", "sgd", "--run.workdir", str(tmp_path / "nan")])
    assert exit.value.code == 1
    assert capsys.readouterr().err.endswith("error: step 20: players/d/params/Dense_0/bias holds NaN or Inf\n")


def records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_steps_need_not_be_a_multiple_of_any_cadence(tmp_path):
    """Evaluations, samples and checkpoints come at multiples of their cadence and at the last step, as in the
    image experiments."""
    workdir = tmp_path / "run"
    gm.main(
        TINY
        + ["--schedule.steps", "50", "--run.log-every", "10", "--run.checkpoint-every", "20"]
        + ["--run.workdir", str(workdir)]
    )
    assert [r["step"] for r in records(workdir) if "modes" in r] == [20, 40, 50]
    assert [r["step"] for r in records(workdir)] == [10, 20, 30, 40, 50]
    assert sorted(p.name for p in (workdir / "samples").iterdir()) == [f"step_0000{s}.png" for s in (20, 40, 50)]
    assert checkpoint.saved_steps(workdir / "checkpoints") == [20, 40, 50]


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    uninterrupted = gm.main(TINY + ["--run.checkpoint-every", "20", "--run.workdir", str(straight)])
    gm.main(TINY + ["--schedule.steps", "20", "--run.workdir", str(halves)])
    resumed = gm.main(TINY + ["--run.checkpoint-every", "20", "--run.workdir", str(halves), "--run.resume"])
    assert resumed.metrics == uninterrupted.metrics and resumed.metrics["step"] == 40
    assert resumed.results == uninterrupted.results
    assert records(halves) == records(straight)
    assert checkpoint.saved_steps(halves / "checkpoints") == [20, 40]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mixture", "spiral"], "invalid choice 'spiral' for argument '--mixture'. Expected one of ('ring', 'grid')"),
        (["table"], "error: usage: python -m experiments.gaussian_mixture table ROOT"),
        (["table", "nowhere"], "error: nowhere: not a folder of runs"),
    ],
)
def test_a_wrong_name_is_refused_listing_the_choices(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        gm.main(argv)
    assert exit_.value.code == 2
    assert message in " ".join(capsys.readouterr().err.replace("│", " ").split())


def test_a_config_with_an_unknown_mixture_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"Config.mixture: unknown mixture 'spiral'; choose one of \['grid', 'ring'\]"):
        gm.Config(mixture="spiral")


def test_the_table_names_a_folder_it_cannot_read(tmp_path):
    (tmp_path / "grid_ns").mkdir()
    (tmp_path / "grid_ns" / "training.png").write_bytes(b"")
    with pytest.raises(ValueError, match="grid_ns: not named {setting}_{seed}"):
        run.seeds_table(tmp_path, gm.TABLE_COLUMNS)
