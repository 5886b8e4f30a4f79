"""Image folders: every image Pillow reads under a folder, centre-cropped and resized, optionally labelled
by subfolder."""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterable

import numpy as np

from ganjax.data.dataset import DataError, ImageDataset

GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_suffixes() -> tuple[str, ...]:
    """Every file suffix Pillow reads (``.png``, ``.jpg``, ``.webp``, ``.bmp``, ``.tiff``, ...)."""
    from PIL import Image

    return tuple(sorted(suffix for suffix, format in Image.registered_extensions().items() if format in Image.OPEN))


def image_paths(folder: str | pathlib.Path) -> list[pathlib.Path]:
    """The images under ``folder`` (recursively), sorted.

    Raises:
      DataError: on a missing folder or one without images.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: image folder not found")
    suffixes = image_suffixes()
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if not paths:
        raise DataError(f"{folder}: no images in the folder (Pillow reads {', '.join(suffixes[:8])}, ...)")
    return paths


def _open(path: pathlib.Path):
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(path)
        image.load()
        return image
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: unreadable image ({e})") from e


def folder_shape(folder: str | pathlib.Path) -> tuple[int, int]:
    """``(side, channels)`` of an image folder's first image: its shorter side, 1 for a grey image and 3 otherwise."""
    first = image_paths(folder)[0]
    image = _open(first)
    return min(image.size), 1 if image.mode in GREY_MODES else 3


def load_image_folder(
    folder: str | pathlib.Path,
    size: int | None = None,
    channels: int | None = None,
    folder_labels: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> ImageDataset:
    """Loads every image Pillow reads under ``folder`` (recursively), centre-cropped and resized to ``size``².

    Args:
      folder: the folder (e.g. of anime faces).
      size: side of the square output images (None: the first image's shorter side).
      channels: 3 for RGB, 1 for greyscale (None: as the first image).
      folder_labels: label each image by its subfolder, the subfolders' sorted names being
        the classes (``ImageDataset.class_names``); images directly in ``folder`` are refused.
      progress: wraps the iteration over the files (e.g. ``tqdm``), to show progress.

    Raises:
      DataError: on a missing or empty folder, an image that cannot be decoded, or,
        with ``folder_labels``, an image outside the subfolders.
    """
    from PIL import Image

    folder = pathlib.Path(folder)
    paths = image_paths(folder)
    if size is None or channels is None:
        native_size, native_channels = folder_shape(folder)
        size, channels = size or native_size, channels or native_channels
    labels = class_names = None
    if folder_labels:
        loose = [p for p in paths if p.parent == folder]
        if loose:
            raise DataError(f"{loose[0]}: labels come from subfolders, but this image is in none")
        class_names = tuple(sorted({p.relative_to(folder).parts[0] for p in paths}))
        labels = np.asarray([class_names.index(p.relative_to(folder).parts[0]) for p in paths], np.int32)
    mode = {1: "L", 3: "RGB"}[channels]
    images = np.empty((len(paths), size, size, channels), np.uint8)
    for i, path in enumerate(progress(paths) if progress is not None else paths):
        with _open(path) as img:
            img = img.convert(mode)
            side = min(img.size)
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
            images[i] = np.asarray(img).reshape(size, size, channels)
    return ImageDataset(images, labels, name=str(folder), class_names=class_names)
