"""TFDS datasets, read through their array-record data source (no TensorFlow needed to read)."""

from __future__ import annotations

import difflib
import socket

import numpy as np

from ganjax.data.dataset import DataError, ImageDataset

TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def _online(address: tuple[str, int] = TFDS_DOWNLOAD_HOST, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection(address, timeout=timeout).close()
        return True
    except OSError:
        return False


def tfds_builder(name: str, data_dir: str | None = None, download: bool = True, must_be_prepared: bool = True):
    """The TFDS builder of ``name`` (``'mnist'``, ``'mnist:3.0.1'``), prepared on disk unless not ``must_be_prepared``
    (its ``info.features`` are known without the data).

    Raises:
      DataError: for a name TFDS does not know (with the closest names), or a
        dataset that is not prepared and cannot be: no download allowed, no network
        (saying how to prepare it elsewhere), or no TensorFlow to prepare it with.
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core import registered

    known = registered.list_imported_builders()
    if name.split(":")[0] not in known:
        close = difflib.get_close_matches(name.split(":")[0], known, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"tfds:{name}: TFDS has no dataset of that name{hint}")
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    if builder.is_prepared() or not must_be_prepared:
        return builder
    where = f"tfds:{name} is not prepared in {builder.data_dir}"
    prepare = (
        f"prepare it where there is a network (pip install 'ganjax[tfds]'; python -c \"import tensorflow_datasets as "
        f"tfds; tfds.builder('{name}', file_format='array_record').download_and_prepare()\") and copy that folder "
        "here, or pass --data.dir FOLDER"
    )
    if not download:
        raise DataError(f"{where} and downloading is off: {prepare}")
    if not _online():
        raise DataError(f"{where} and there is no network to download it: {prepare}")
    try:
        builder.download_and_prepare()
    except ModuleNotFoundError as e:
        raise DataError(f"{where}; preparing it needs {e.name}: pip install 'ganjax[tfds]'") from e
    return builder


def load_tfds(
    name: str,
    split: str = "train",
    data_dir: str | None = None,
    image_key: str = "image",
    label_key: str | None = "label",
    download: bool = True,
) -> ImageDataset:
    """Loads a TFDS image dataset into memory through its array-record data source (no TensorFlow needed to read).

    Preparing a dataset the first time (``download=True``, with a network) uses
    TFDS's builders; see BUILD.md for the extra that installs what they need.

    Raises:
      DataError: see :func:`tfds_builder`; also for an unknown split or an empty one.
    """
    builder = tfds_builder(name, data_dir, download)
    try:
        source = builder.as_data_source(split=split)
    except (KeyError, ValueError) as e:
        raise DataError(f"tfds:{name}: no split {split!r} ({e})") from e
    if len(source) == 0:
        raise DataError(f"tfds:{name}[{split}]: the split is empty")
    records = [source[i] for i in range(len(source))]
    if image_key not in records[0]:
        raise DataError(f"tfds:{name}: no feature {image_key!r}; features are {sorted(records[0])}")
    images = np.stack([np.asarray(r[image_key], np.uint8) for r in records])
    if images.ndim == 3:
        images = images[..., None]
    labels = None
    if label_key is not None and label_key in records[0]:
        labels = np.asarray([r[label_key] for r in records], np.int32)
    return ImageDataset(images, labels, name=f"tfds:{name}[{split}]")
