"""The training-curve and mixture-scatter PNGs."""

import json

import numpy as np
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from PIL import Image

from ganjax import plots

STEPS = range(100, 1100, 100)
EVALUATED = (500, 1000)


def run_records() -> list[dict]:
    """A run's log: train metrics every 100 steps, evaluations at 500 and 1000, flags at 300 and 700."""
    records = []
    for s in STEPS:
        record = {
            "step": s,
            "d_loss": 1.3 - s / 1000,
            "g_loss": 0.8,
            "d_real": 0.6 + s / 1e4,
            "d_fake": 0.4,
            "d_grad_norm": 2.0 + s / 100,
            "g_grad_norm": 3.0,
            "flags": "D loss unstable" if s in (300, 700) else "",
        }
        if s in EVALUATED:
            record |= {"fid": 50.0 - s / 100, "kid": 20.0 - s / 100, "kid_std": 2.0, "precision": s / 2000}
            record |= {"recall": 0.3, "classes": 10}
        if s == EVALUATED[0]:
            record["fid_floor"] = 3.5
        records.append(record)
    return records


def panels(fig) -> dict:
    return {ax.get_title(): ax for ax in fig.axes}


@pytest.fixture(scope="module")
def figure():
    return plots.training_figure(run_records())


def test_plot_training_draws_every_logged_series(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in run_records()))
    png = plots.plot_training(path, tmp_path / "out" / "training.png")
    image = np.asarray(Image.open(png))
    assert png == tmp_path / "out" / "training.png"
    assert image.shape[0] > 100 and image.shape[1] > 300
    assert image[..., :3].std() > 10  # not blank
    assert plots.read_jsonl(path)[3]["step"] == 400


def test_training_figure_labels_every_panel_and_leaves_out_constant_ones(figure):
    titles = ["losses", "D(x) and D(G(z))", "gradient norms", "FID", "KID", "precision and recall"]
    assert list(panels(figure)) == titles
    assert [ax.get_ylabel() for ax in figure.axes] == [
        "loss",
        "D output",
        "gradient norm",
        "FID",
        "KID",
        "fraction of samples",
    ]
    assert "classes = 10" in figure.get_supxlabel()  # constant: listed, not drawn
    drawn = {line.get_label() for ax in figure.axes for line in ax.get_lines()}
    train = {"d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"}
    assert drawn == train | {"fid", "fid_floor", "kid", "precision", "recall"}
    legends = {title: [t.get_text() for t in ax.get_legend().get_texts()] for title, ax in panels(figure).items()}
    assert legends["precision and recall"] == ["precision", "recall"]
    assert legends["KID"] == ["kid", "kid ± kid_std"]


def test_training_figure_marks_sparse_series(figure):
    markers = {line.get_label(): line.get_marker() for ax in figure.axes for line in ax.get_lines()}
    assert markers["fid"] == markers["kid"] == markers["recall"] == "o"
    assert markers["d_loss"] == markers["d_grad_norm"] == "None"


def test_training_figure_draws_kid_std_as_a_band_and_the_fid_floor(figure):
    (band,) = [c for c in panels(figure)["KID"].collections if isinstance(c, PolyCollection)]
    y = band.get_paths()[0].vertices[:, 1]
    assert np.isclose(y.min(), 20.0 - 10.0 - 2.0) and np.isclose(y.max(), 20.0 - 5.0 + 2.0)
    (floor,) = [line for line in panels(figure)["FID"].get_lines() if line.get_label() == "fid_floor"]
    assert floor.get_linestyle() == "--" and list(floor.get_ydata()) == [3.5, 3.5]


def test_training_figure_marks_flagged_steps_on_the_loss_panel(figure):
    losses = panels(figure)["losses"]
    (rug,) = [c for c in losses.collections if isinstance(c, LineCollection)]
    assert rug.get_label() == "monitor flag"
    assert [segment[0, 0] for segment in rug.get_segments()] == [300, 700]
    assert "monitor flag" in [t.get_text() for t in losses.get_legend().get_texts()]


def test_training_figure_draws_only_the_named_metrics():
    fig = plots.training_figure(run_records(), metrics=["fid"])
    assert list(panels(fig)) == ["losses", "D(x) and D(G(z))", "gradient norms", "FID"]
    assert [line.get_label() for line in panels(fig)["FID"].get_lines()] == ["fid", "fid_floor"]


def test_plot_training_refuses_an_empty_or_constant_log(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"step": 1, "flags": ""}) + "\n")
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.plot_training(tmp_path / "m.jsonl", tmp_path / "t.png")
    with pytest.raises(ValueError, match="nothing to plot"):
        plots.training_figure([{"step": s, "d_loss": 0.5} for s in (1, 2)])


def test_scatter_mixture(tmp_path):
    points = np.random.default_rng(0).normal(size=(500, 2))
    png = plots.scatter_mixture(points, np.eye(2), tmp_path / "s.png", "title")
    assert Image.open(png).size == (400, 400)
