"""Smoke test: experiments/gaussian_mixture.py runs end to end with a tiny config."""

import json

import pytest
from PIL import Image

from experiments import gaussian_mixture as gm

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


def test_tiny_run_writes_metrics_scatter_and_plot(tmp_path, capsys):
    workdir = tmp_path / "grid_ns_0"
    gm.main(TINY + ["--mixture", "grid", "--run.workdir", str(workdir)])
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40] and printed["step"] == 40
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
    assert sorted(p.name for p in (workdir / "scatter").iterdir()) == ["step_000020.png", "step_000040.png"]
    assert Image.open(workdir / "training.png").size[0] > 100
    assert json.loads((workdir / "config.json").read_text())["mixture"] == "grid"
    table = gm.table(tmp_path)
    assert "| grid | ns | 1 |" in table


def test_nan_stops_the_run_naming_what_went_non_finite(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        gm.main(TINY + ["--optim.lr-d", "1e38", "--optim.d-optimizer", "sgd", "--run.workdir", str(tmp_path / "nan")])
    assert exit.value.code == 1
    assert capsys.readouterr().err.endswith("error: step 20: players/d/params/Dense_0/bias holds NaN or Inf\n")
