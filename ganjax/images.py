"""Sample grids, PNGs and animated GIFs of images in [-1, 1]."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ganjax.data import to_uint8


def make_grid(images, nrow: int | None = None, padding: int = 2) -> np.ndarray:
    """Tiles ``(N, H, W, C)`` images in [-1, 1] into one uint8 ``(rows*(H+p)+p, nrow*(W+p)+p, C)`` array.

    Args:
      images: the images, row-major in the grid.
      nrow: images per row (default: ceil(sqrt(N))).
      padding: pixels of black between and around tiles.
    """
    images = to_uint8(images)
    n, h, w, c = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.zeros((rows * (h + padding) + padding, nrow * (w + padding) + padding, c), np.uint8)
    for i, image in enumerate(images):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[top : top + h, left : left + w] = image
    return grid


def _pil(grid: np.ndarray) -> Image.Image:
    return Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)


def save_grid(images, path: str | pathlib.Path, nrow: int | None = None, scale: int = 1) -> pathlib.Path:
    """Writes :func:`make_grid` of ``images`` as a PNG (upscaled ``scale`` times, nearest neighbour)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _pil(make_grid(images, nrow))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    image.save(path)
    return path


def save_gif(frames: Sequence[str | pathlib.Path], path: str | pathlib.Path, duration_ms: int = 200) -> pathlib.Path:
    """Writes the PNG ``frames`` as one looping animated GIF (the last frame held three times longer)."""
    if not frames:
        raise ValueError(f"{path}: no frames to animate")
    path = pathlib.Path(path)
    images = [Image.open(f).convert("P") for f in frames]
    durations = [duration_ms] * (len(images) - 1) + [duration_ms * 3]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path
