"""Tables of finished runs over seeds."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ganjax import plots
from ganjax.run.folder import METRICS_FILE

PyTree = Any


def mean_std(values: Sequence[float], spec: str) -> str:
    """``'mean ± std'`` of ``values`` over seeds, each as ``spec``; the sample std (ddof 1), 0 for one seed."""
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):{spec}} ± {std:{spec}}"


def seeds_table(root: str | pathlib.Path, columns: Sequence[tuple[str, str, str]]) -> str:
    """A markdown table of the last record of every finished run ``{root}/{setting}_{seed}``, a row per setting.

    Each cell is :func:`mean_std` over the setting's seeds of a logged metric;
    ``columns`` lists ``(metric, header, format)``. A run is finished once it has
    drawn ``training.png``.

    Raises:
      ValueError: naming ``root`` when it is not a folder, or a run whose name or last record does not fit.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder of runs")
    settings: dict[str, list[dict]] = {}
    for path in sorted(root.glob("*/training.png")):
        setting, _, seed = path.parent.name.rpartition("_")
        if not setting or not seed.isdigit():
            raise ValueError(f"{path.parent}: not named {{setting}}_{{seed}}")
        last = plots.read_jsonl(path.parent / METRICS_FILE)[-1]
        missing = [metric for metric, _, _ in columns if metric not in last]
        if missing:
            raise ValueError(f"{path.parent}: the last record of {METRICS_FILE} has no {', '.join(missing)}")
        settings.setdefault(setting, []).append(last)
    lines = [
        "| setting | seeds | " + " | ".join(header for _, header, _ in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for setting, records in settings.items():
        cells = [mean_std([record[metric] for record in records], spec) for metric, _, spec in columns]
        lines.append(f"| {setting} | {len(records)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
