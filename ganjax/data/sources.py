"""One entry point for every source: a folder of IDX files, a folder of images, or ``tfds:NAME``."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Callable, Iterable

from ganjax.data.dataset import DataError, ImageDataset
from ganjax.data.folders import folder_shape, image_paths, load_image_folder
from ganjax.data.idx import idx_count, idx_shape, is_idx_folder, load_idx_folder
from ganjax.data.tfds import load_tfds, tfds_builder

Source = str | os.PathLike
"""A folder (a path, or its name as a string) or ``'tfds:NAME'``."""


def _folder(source: str) -> pathlib.Path:
    folder = pathlib.Path(source)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found" if not folder.exists() else f"{folder}: not a folder")
    return folder


def native_shape(source: Source, split: str | None = None) -> tuple[int, int]:
    """``(side, channels)`` of ``source``'s images as stored: an IDX header, an image folder's first image,
    or a TFDS dataset's image feature."""
    source = os.fspath(source)
    if source.startswith("tfds:"):
        height, _, channels = (
            tfds_builder(source[5:], download=False, must_be_prepared=False).info.features["image"].shape
        )
        return height, channels
    folder = _folder(source)
    if is_idx_folder(folder):
        return idx_shape(folder, split or "")
    return folder_shape(folder)


def native_count(source: Source, split: str | None = None) -> int:
    """How many images ``source`` holds, without reading them: an IDX header, an image folder's image files
    (searched recursively), or a TFDS split's size (``'train'`` when None)."""
    source = os.fspath(source)
    if source.startswith("tfds:"):
        info = tfds_builder(source[5:], download=False, must_be_prepared=False).info
        return info.splits[split or "train"].num_examples
    folder = _folder(source)
    if is_idx_folder(folder):
        return idx_count(folder, split or "")
    return len(image_paths(folder))


def load(
    source: Source,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    folder_labels: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> ImageDataset:
    """Loads ``source``: a folder of IDX files, a folder of images (a path or its name), or ``tfds:NAME``.

    A folder holding ``*images-idx3-ubyte*`` files is read as IDX: the files of
    ``split`` (a file-name prefix; None: the folder's only images file); any
    other folder as images (:func:`ganjax.data.load_image_folder`, resized to
    ``image_size`` with ``channels``, each the first image's when None). A TFDS
    dataset reads ``split`` (None: ``'train'``).

    Example:
      >>> from ganjax import data
      >>> data.load(data.PACKAGED_MNIST).images.shape
      (10000, 28, 28, 1)
    """
    source = os.fspath(source)
    if source.startswith("tfds:"):
        return load_tfds(source[5:], split=split or "train", data_dir=data_dir)
    folder = _folder(source)
    if is_idx_folder(folder):
        return load_idx_folder(folder, split or "")
    return load_image_folder(folder, image_size, channels, folder_labels, progress)
