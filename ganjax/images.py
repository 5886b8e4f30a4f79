"""Sample grids, PNGs and animated GIFs of images in [-1, 1]."""

from __future__ import annotations

import math
import pathlib
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


# Pixels between a text strip's edges and its text.
_MARGIN = 4


def _text_strip(image: Image.Image, lines: Sequence[str], below: bool) -> Image.Image:
    """``image`` with a black strip of white ``lines`` (Pillow's default font) added above or below it."""
    font = ImageFont.load_default()
    line_height = font.getbbox("Ag")[3] + 2
    strip = len(lines) * line_height + 2 * _MARGIN
    canvas = Image.new(image.mode, (image.width, image.height + strip))
    canvas.paste(image, (0, 0 if below else strip))
    draw, top = ImageDraw.Draw(canvas), image.height if below else 0
    for i, line in enumerate(lines):
        draw.text((_MARGIN, top + _MARGIN + i * line_height), line, fill="white", font=font)
    return canvas


def _wrap(text: str, width: int) -> list[str]:
    """``text``'s words in lines no wider than ``width`` pixels in the default font (a longer word keeps a line)."""
    font, lines = ImageFont.load_default(), []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def save_grid(
    images, path: str | pathlib.Path, nrow: int | None = None, scale: int = 1, caption: str | None = None
) -> pathlib.Path:
    """Writes :func:`make_grid` of ``images`` as a PNG (:func:`save_picture`)."""
    return save_picture(make_grid(images, nrow), path, scale, caption)


def save_picture(
    picture: np.ndarray, path: str | pathlib.Path, scale: int = 1, caption: str | None = None
) -> pathlib.Path:
    """Writes a uint8 ``(H, W, C)`` picture as a PNG, upscaled ``scale`` times (nearest neighbour).

    A ``caption`` is written on a strip below it, wrapped to its width.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = _pil(picture)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    if caption:
        image = _text_strip(image, _wrap(caption, image.width - 2 * _MARGIN), below=True)
    image.save(path)
    return path


def save_gif(
    frames: Sequence[str | pathlib.Path],
    path: str | pathlib.Path,
    duration_ms: int = 200,
    labels: Sequence[str] | None = None,
) -> pathlib.Path:
    """Writes the PNG ``frames`` as one looping animated GIF (the last frame held three times longer).

    ``labels``, one line per frame (e.g. ``"step 1200"``), are written on a strip above each frame.
    """
    if not frames:
        raise ValueError(f"{path}: no frames to animate")
    if labels is not None and len(labels) != len(frames):
        raise ValueError(f"{path}: {len(labels)} labels for {len(frames)} frames")
    path = pathlib.Path(path)
    images = [Image.open(f) for f in frames]
    if labels is not None:
        images = [
            _text_strip(image if image.mode in ("L", "RGB") else image.convert("RGB"), [label], below=False)
            for image, label in zip(images, labels, strict=True)
        ]
    images = [image.convert("P") for image in images]
    durations = [duration_ms] * (len(images) - 1) + [duration_ms * 3]
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0)
    return path
