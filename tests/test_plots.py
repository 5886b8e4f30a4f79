"""The training-curve and mixture-scatter PNGs."""

import json

import numpy as np
import pytest
from PIL import Image

from ganjax import plots


def test_plot_training_draws_every_logged_series(tmp_path):
    path = tmp_path / "metrics.jsonl"
    records = [
        {
            "step": s,
            "d_loss": 1.3 - s / 1000,
            "g_loss": 0.8,
            "d_real": 0.6,
            "d_fake": 0.4,
            "d_grad_norm": 2.0,
            "g_grad_norm": 3.0,
            "fid": 50.0 - s / 100,
            "flags": "",
        }
        for s in range(100, 1100, 100)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    png = plots.plot_training(path, tmp_path / "out" / "training.png")
    image = np.asarray(Image.open(png))
    assert image.shape[0] > 100 and image.shape[1] > 300
    assert image[..., :3].std() > 10  # not blank
    assert plots.read_jsonl(path)[3]["step"] == 400


def test_plot_training_refuses_an_empty_log(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"step": 1, "flags": ""}) + "\n")
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.plot_training(tmp_path / "m.jsonl", tmp_path / "t.png")


def test_scatter_mixture(tmp_path):
    points = np.random.default_rng(0).normal(size=(500, 2))
    png = plots.scatter_mixture(points, np.eye(2), tmp_path / "s.png", "title")
    assert Image.open(png).size == (400, 400)
