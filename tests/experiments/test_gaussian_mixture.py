"""Smoke test: experiments/gaussian_mixture.py runs end to end with a tiny config."""

import json

import pytest
from PIL import Image

from experiments import gaussian_mixture as gm
from ganjax.evaluation import monitor

TINY = ["--steps", "40", "--eval-every", "20", "--plot-every", "20", "--batch-size", "32", "--g-width", "16",
        "--d-width", "16", "--g-depth", "2", "--d-depth", "2", "--eval-samples", "200"]


def test_tiny_run_writes_metrics_scatter_and_plot(tmp_path, capsys):
    workdir = tmp_path / "grid_ns_0"
    gm.main(TINY + ["--mixture", "grid", "--workdir", str(workdir)])
    printed = json.loads(capsys.readouterr().out)
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [20, 40] and printed["step"] == 40
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm", "modes", "high_quality",
                "mode_kl", "duplicate_share", "pairwise_distance_ratio", "flags"):
        assert key in records[-1]
    assert 0 <= records[-1]["modes"] <= 25 and 0.0 <= records[-1]["high_quality"] <= 1.0
    assert sorted(p.name for p in (workdir / "scatter").iterdir()) == ["step_000020.png", "step_000040.png"]
    assert Image.open(workdir / "training.png").size[0] > 100
    table = gm.table(tmp_path)
    assert "| grid | ns | 1 |" in table


def test_nan_stops_the_run_naming_the_metric(tmp_path):
    with pytest.raises(monitor.NonFiniteLossError, match="at step"):
        gm.main(TINY + ["--lr-d", "nan", "--workdir", str(tmp_path / "nan")])


def test_steps_must_be_a_multiple_of_eval_every(tmp_path):
    with pytest.raises(ValueError, match="multiple of eval_every"):
        gm.main(["--steps", "30", "--eval-every", "20", "--workdir", str(tmp_path)])
