"""MNIST-format IDX files (raw or ``.gz``), and the embedded MNIST test set, :data:`PACKAGED_MNIST`."""

from __future__ import annotations

import gzip
import pathlib

import numpy as np

from ganjax.data.dataset import DataError, ImageDataset

PACKAGED_MNIST = pathlib.Path(__file__).parent.parent / "datasets" / "mnist"
"""The embedded MNIST test set (10,000 digits, CC BY-SA 3.0; attribution in its README.md)."""
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


def _read_bytes(path: pathlib.Path, count: int = -1) -> bytes:
    """The first ``count`` bytes (all with -1) of an IDX file, raw or ``.gz``."""
    if not path.is_file():
        raise DataError(f"{path}: IDX file not found")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read(count)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read IDX file ({e})") from e


def _idx_header(raw: bytes, path: pathlib.Path, expected_magic: int) -> tuple[tuple[int, ...], int]:
    """The array shape an IDX file's header declares, and the header's length in bytes."""
    if len(raw) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{path}: wrong IDX magic number {magic}, expected {expected_magic}")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    return tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)), header


def read_idx(path: str | pathlib.Path, expected_magic: int) -> np.ndarray:
    """Reads one IDX file (raw or ``.gz``) of unsigned bytes.

    Raises:
      DataError: naming the file, if it is missing, has the wrong magic number
        or holds fewer bytes than its header promises.
    """
    path = pathlib.Path(path)
    raw = _read_bytes(path)
    shape, header = _idx_header(raw, path, expected_magic)
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataError(
            f"{path}: truncated IDX file, header promises {size} bytes of data for shape {shape}, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, np.uint8, size, header).reshape(shape)


def _find_one(folder: pathlib.Path, pattern: str, split: str) -> pathlib.Path | None:
    matches = sorted(
        p for p in folder.glob(f"{split}*{pattern}*") if p.suffix in ("", ".gz") or p.name.endswith("ubyte")
    )
    if len(matches) > 1:
        raise DataError(f"{folder}: several files match {split}*{pattern}*: {[m.name for m in matches]}")
    return matches[0] if matches else None


def _idx_images_path(folder: pathlib.Path, split: str) -> pathlib.Path:
    images_path = _find_one(folder, "images-idx3-ubyte", split)
    if images_path is None:
        present = sorted(p.name for p in folder.glob("*images-idx3-ubyte*"))
        raise DataError(f"{folder}: no '{split}*images-idx3-ubyte[.gz]' file in the folder (it holds {present})")
    return images_path


def load_idx_folder(folder: str | pathlib.Path, split: str = "") -> ImageDataset:
    """Loads MNIST-format IDX files from a folder.

    Looks for ``{split}*images-idx3-ubyte[.gz]`` and, if present,
    ``{split}*labels-idx1-ubyte[.gz]``. With ``split=''`` the folder must hold
    exactly one images file (for example only MNIST's ``t10k`` files).

    Args:
      folder: the folder holding the files.
      split: a file-name prefix such as ``'train'`` or ``'t10k'``.

    Raises:
      DataError: on a missing folder or file, a corrupt file, or an image count
        that disagrees with the label count.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found")
    images_path = _idx_images_path(folder, split)
    images = read_idx(images_path, _IDX_IMAGES_MAGIC)
    labels = None
    labels_path = _find_one(folder, "labels-idx1-ubyte", split)
    if labels_path is not None:
        labels = read_idx(labels_path, _IDX_LABELS_MAGIC).astype(np.int32)
        if len(labels) != len(images):
            raise DataError(f"{labels_path}: {len(labels)} labels but {images_path.name} holds {len(images)} images")
    return ImageDataset(images[..., None], labels, name=str(images_path))


def is_idx_folder(folder: pathlib.Path) -> bool:
    """Whether ``folder`` holds IDX images (a ``*images-idx3-ubyte*`` file)."""
    return any(folder.glob("*images-idx3-ubyte*"))


def idx_count(folder: pathlib.Path, split: str = "") -> int:
    """How many IDX images of ``split`` ``folder`` holds, from the header alone."""
    path = _idx_images_path(folder, split)
    shape, _ = _idx_header(_read_bytes(path, 16), path, _IDX_IMAGES_MAGIC)
    return shape[0]


def idx_shape(folder: pathlib.Path, split: str = "") -> tuple[int, int]:
    """``(side, channels)`` of the IDX images of ``split`` in ``folder``, from the header alone: grey digits."""
    path = _idx_images_path(folder, split)
    shape, _ = _idx_header(_read_bytes(path, 16), path, _IDX_IMAGES_MAGIC)
    return shape[2], 1
