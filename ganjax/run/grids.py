"""Sample grids, their animation and interpolation paths, written into the run folder."""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ganjax import images
from ganjax import latent as latent_paths
from ganjax.latent import Latent
from ganjax.training.state import TrainState

PyTree = Any


def grid_writer(workdir: str | pathlib.Path, sample: Callable[[PyTree], Any], nrow: int = 10) -> Callable:
    """``(state, step) -> grid``: writes ``{workdir}/samples/step_XXXXXX.png`` from ``sample(state)`` (process 0
    writes) and returns the grid as a uint8 ``(H, W, C)`` array (:func:`ganjax.images.make_grid`)."""
    folder = pathlib.Path(workdir) / "samples"

    def write(state: PyTree, step: int) -> np.ndarray:
        picture = images.make_grid(np.asarray(sample(state)), nrow)  # every process takes part in sampling
        if jax.process_index() == 0:
            images.save_picture(picture, folder / f"step_{step:06d}.png", scale=2)
        return picture

    return write


def write_animation(workdir: str | pathlib.Path) -> pathlib.Path | None:
    """``{workdir}/samples.gif`` from every sample grid written so far (process 0 only)."""
    frames = sorted((pathlib.Path(workdir) / "samples").glob("step_*.png"))
    if jax.process_index() != 0 or not frames:
        return None
    labels = [f"step {int(frame.stem.removeprefix('step_'))}" for frame in frames]
    return images.save_gif(frames, pathlib.Path(workdir) / "samples.gif", labels=labels)


def write_interpolation(
    workdir: str | pathlib.Path,
    state: TrainState,
    sample: Callable,
    key: jax.Array,
    latent: Latent,
    rows: int = 10,
    anchors: int = 3,
    num_classes: int = 0,
) -> None:
    """``{workdir}/interpolation.png``: rows of G's images along great-circle paths between ``anchors`` codes;
    for a G that takes one of ``num_classes`` classes, row ``r`` keeps class ``r`` (modulo ``num_classes``)."""
    paths = latent_paths.interpolation_grid(key, rows, 10, latent.dim, anchors=anchors, sampler=latent.distribution)
    labels = (np.repeat(np.arange(rows) % num_classes, 10).astype(np.int32),) if num_classes else ()
    grid = np.asarray(sample(state, np.asarray(paths.reshape(-1, latent.dim)), *labels))
    if jax.process_index() == 0:
        caption = f"each row: a great-circle (slerp) path through {anchors} random codes"
        caption += ", in one class" if num_classes else ""
        images.save_grid(grid, pathlib.Path(workdir) / "interpolation.png", nrow=10, scale=2, caption=caption)
