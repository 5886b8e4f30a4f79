"""PNG plots of a run: its logged curves over training, and 2D samples over a mixture's modes.

Uses matplotlib's Agg backend through the object API (no pyplot state), so it
runs headless and from any thread.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Panels of the training plot: a title and the logged keys drawn in it.
PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("losses", ("d_loss", "g_loss")),
    ("D(x) and D(G(z))", ("d_real", "d_fake", "d_real_score", "d_fake_score")),
    ("gradient norms", ("d_grad_norm", "g_grad_norm")),
)


def read_jsonl(path: str | pathlib.Path) -> list[dict]:
    """The records of a JSONL metrics file, in order."""
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]


def _series(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return np.array([p[0] for p in points]), np.array([p[1] for p in points], np.float64)


def _save(fig: Figure, path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def plot_training(
    jsonl_path: str | pathlib.Path, png_path: str | pathlib.Path, metrics: Sequence[str] | None = None
) -> pathlib.Path:
    """Draws losses, D(x) and D(G(z)), gradient norms and evaluation metrics over steps into one PNG.

    Args:
      jsonl_path: a metrics file with one ``{'step': ..., name: value}`` record per line.
      png_path: where to write the PNG.
      metrics: the other numeric keys to draw, one panel each; default: every
        numeric key not in :data:`PANELS`.

    Returns:
      ``png_path``.
    """
    records = read_jsonl(jsonl_path)
    drawn = {k for _, keys in PANELS for k in keys}
    if metrics is None:
        numeric = {k for r in records for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        metrics = sorted(numeric - drawn - {"step"})
    panels = [(title, keys) for title, keys in PANELS if any(k in r for r in records for k in keys)]
    panels += [(name, (name,)) for name in metrics]
    if not panels:
        raise ValueError(f"{jsonl_path}: nothing to plot")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.5 * cols, 3.0 * rows), layout="constrained")
    for i, (title, keys) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        for key in keys:
            steps, values = _series(records, key)
            if len(steps):
                ax.plot(steps, values, label=key, linewidth=1.0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if "grad_norm" in keys[0]:
            ax.set_yscale("log")
        if len(keys) > 1:
            ax.legend(fontsize=7)
    return _save(fig, png_path)


def scatter_mixture(
    samples, means, png_path: str | pathlib.Path, title: str = "", limit: float | None = None
) -> pathlib.Path:
    """Scatter of 2D ``samples`` (blue) over a mixture's ``means`` (red crosses), as a PNG."""
    samples, means = np.asarray(samples), np.asarray(means)
    limit = limit or 1.5 * float(np.abs(means).max())
    fig = Figure(figsize=(4, 4), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:blue", linewidths=0)
    ax.scatter(means[:, 0], means[:, 1], s=30, marker="x", color="tab:red")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    return _save(fig, png_path)
