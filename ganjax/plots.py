"""PNG plots of a run: its logged curves over training, and 2D samples over a mixture's modes.

Uses matplotlib's Agg backend through the object API (no pyplot state), so it
runs headless and from any thread.
"""

from __future__ import annotations

import fnmatch
import json
import pathlib
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Panels of the training plot: a title, a y-axis label, and patterns (fnmatch) of the logged keys drawn in it.
TRAIN_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("losses", "loss", ("d_loss", "g_loss")),
    ("D(x) and D(G(z))", "D output", ("d_real", "d_fake", "d_real_score", "d_fake_score")),
    ("gradient norms", "gradient norm", ("*_grad_norm",)),
)
EVAL_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("FID", "FID", ("fid", "ema_fid")),
    ("KID", "KID", ("kid", "ema_kid")),
    ("precision and recall", "fraction of samples", ("precision", "recall", "ema_precision", "ema_recall")),
)


def read_jsonl(path: str | pathlib.Path) -> list[dict]:
    """The records of a JSONL metrics file, in order."""
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line.strip()]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _series(records: Sequence[Mapping], *keys: str) -> np.ndarray:
    """``(1 + len(keys), n)``: the steps and values of the records that carry every one of ``keys``."""
    rows = [[r["step"], *(r[k] for k in keys)] for r in records if all(_number(r.get(k)) for k in keys)]
    return np.array(rows, np.float64).reshape(-1, 1 + len(keys)).T


def _save(fig: Figure, path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=100)
    return path


def _panels(keys: Sequence[str]) -> list[tuple[str, str, list[str]]]:
    """``keys`` sorted into the panels of :data:`TRAIN_PANELS` and :data:`EVAL_PANELS`, then one per other name."""
    panels, rest = [], list(keys)
    for title, ylabel, patterns in TRAIN_PANELS + EVAL_PANELS:
        matched = list(dict.fromkeys(k for p in patterns for k in rest if fnmatch.fnmatchcase(k, p)))
        if matched:
            panels.append((title, ylabel, matched))
            rest = [k for k in rest if k not in matched]
    groups: dict[str, list[str]] = {}
    for key in rest:  # a metric and its ``ema_`` twin share a panel
        groups.setdefault(key.removeprefix("ema_"), []).append(key)
    return panels + [(name, name, group) for name, group in groups.items()]


def training_figure(records: Sequence[Mapping], metrics: Sequence[str] | None = None) -> Figure:
    """The figure of :func:`plot_training`: one panel per group of logged series, over steps.

    Series logged on fewer records than the densest one (evaluations) get markers.
    A key ``{name}_std`` draws a shaded ±1 std band around ``name`` (``kid_std``
    around ``kid``); a key ``{name}_floor`` on any record draws its last value as a
    dashed horizontal line in ``name``'s panel (``fid_floor``: the FID between two
    disjoint real sets, the best a generator can reach with that many samples).
    Steps whose record has a non-empty ``flags`` string get a red "monitor flag" tick
    at the bottom of the first panel (the losses). Panels whose every series is
    constant are left out and their values listed below the panels.

    Args:
      records: ``{'step': ..., name: value}`` records, as :func:`read_jsonl` gives.
      metrics: the numeric keys to draw besides those of :data:`TRAIN_PANELS`;
        default: every other numeric key.
    """
    numeric = {k for r in records for k, v in r.items() if _number(v)} - {"step"}
    train = sorted(k for k in numeric if any(fnmatch.fnmatchcase(k, p) for _, _, ps in TRAIN_PANELS for p in ps))
    keys = train + [k for k in (sorted(numeric) if metrics is None else metrics) if k not in train]
    decorations = {f"{base}{suffix}" for base in keys for suffix in ("_std", "_floor")}
    keys = [k for k in keys if k not in decorations]
    series = {k: _series(records, k) for k in keys}
    dense = max((s.shape[1] for s in series.values()), default=0)
    panels, constant = [], []
    for title, ylabel, group in _panels([k for k in keys if series[k].shape[1]]):
        if all(series[k].shape[1] > 1 and np.all(series[k][1] == series[k][1, 0]) for k in group):
            constant += [f"{k} = {series[k][1, 0]:.4g}" for k in group]
        else:
            panels.append((title, ylabel, group))
    if not panels:
        raise ValueError("nothing to plot")
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.5 * cols, 3.0 * rows), layout="constrained")
    axes = []
    for i, (title, ylabel, group) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1, sharex=axes[0] if axes else None)
        axes.append(ax)
        for key in group:
            steps, values = series[key]
            sparse = len(steps) < dense or len(steps) == 1
            (line,) = ax.plot(steps, values, label=key, linewidth=1.0, marker="o" if sparse else None, markersize=3)
            band_steps, mean, std = _series(records, key, f"{key}_std")
            if len(band_steps):
                ax.fill_between(
                    band_steps, mean - std, mean + std, color=line.get_color(), alpha=0.2, label=f"{key} ± {key}_std"
                )
            floors = _series(records, f"{key}_floor")[1]
            if len(floors):
                ax.axhline(floors[-1], color=line.get_color(), linestyle="--", linewidth=1.0, label=f"{key}_floor")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        if all(k.endswith("grad_norm") for k in group):
            ax.set_yscale("log")
    flagged = [r["step"] for r in records if isinstance(r.get("flags"), str) and r["flags"].strip()]
    if flagged:
        axes[0].vlines(
            flagged, 0, 0.05, transform=axes[0].get_xaxis_transform(), colors="tab:red", label="monitor flag"
        )
    for ax in axes:
        if len(ax.get_legend_handles_labels()[1]) > 1:
            ax.legend(fontsize=7)
    if constant:
        fig.supxlabel(textwrap.fill("constant, not drawn: " + ", ".join(constant), 60 * cols), fontsize=8)
    return fig


def plot_training(
    jsonl_path: str | pathlib.Path, png_path: str | pathlib.Path, metrics: Sequence[str] | None = None
) -> pathlib.Path:
    """Draws :func:`training_figure` of a metrics file (one JSON record per line) into a PNG; returns ``png_path``."""
    records = read_jsonl(jsonl_path)
    try:
        fig = training_figure(records, metrics)
    except ValueError as error:
        raise ValueError(f"{jsonl_path}: {error}") from None
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


def ablation_figure(
    settings: Mapping[str, Mapping[str, Sequence[float]]],
    metrics: Mapping[str, bool],
    png_path: str | pathlib.Path,
    title: str = "",
) -> pathlib.Path:
    """One panel per metric, one row per setting: every seed's value a point, the mean a bar; as a PNG.

    Args:
      settings: ``{setting: {metric: [value per seed]}}``; the first setting is the base,
        whose mean is drawn as a dashed line across its panel.
      metrics: ``{metric: whether larger is better}`` (said in the panel's title).
      png_path: where the PNG goes.
      title: the figure's title.
    """
    names = list(settings)
    rows = np.arange(len(names))
    fig = Figure(figsize=(4 * len(metrics), 1.5 + 0.28 * len(names)), layout="constrained")
    axes = fig.subplots(1, len(metrics), sharey=True, squeeze=False)[0]
    for ax, (metric, higher) in zip(axes, metrics.items(), strict=True):
        means = [np.mean(settings[name][metric]) for name in names]
        ax.barh(rows, means, height=0.6, color="0.85")
        for row, name in zip(rows, names, strict=True):
            values = np.asarray(settings[name][metric], np.float64)
            jitter = np.linspace(-0.2, 0.2, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(values, row + jitter, s=10, color="tab:blue", zorder=3)
        ax.axvline(means[0], color="tab:red", linestyle="--", linewidth=1)
        ax.set_title(f"{metric} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(rows, names, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(title, fontsize=10)
    return _save(fig, png_path)
