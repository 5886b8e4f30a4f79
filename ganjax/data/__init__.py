"""Image data for GANs: IDX files, image folders and TFDS, as NHWC float32 in [-1, 1].

Every source loads into an :class:`ImageDataset` of uint8 images in NHWC
layout. :class:`Batcher` then yields fixed-size float32 batches in [-1, 1]
(ganhacks trick 1), reshuffled every epoch from an explicit seed: the batch at a
given step depends only on ``(seed, step)``, so a resumed run sees exactly the
batches an uninterrupted one would.

The package, by concern: :mod:`ganjax.data.dataset` (:class:`ImageDataset`,
:class:`DataError`, the pixel conversions), :mod:`ganjax.data.idx` (IDX files,
:data:`PACKAGED_MNIST`), :mod:`ganjax.data.folders` (image folders),
:mod:`ganjax.data.tfds`, :mod:`ganjax.data.sources` (:func:`load`, one entry
point for all three), :mod:`ganjax.data.batching` (:class:`Batcher`) and
:mod:`ganjax.data.mixtures` (the 2D Gaussian mixtures); their public names are
re-exported here.
"""

from ganjax.data.batching import Batcher
from ganjax.data.dataset import DataError, ImageDataset, to_float, to_uint8
from ganjax.data.folders import GREY_MODES, folder_shape, image_paths, image_suffixes, load_image_folder
from ganjax.data.idx import PACKAGED_MNIST, load_idx_folder, read_idx
from ganjax.data.mixtures import MIXTURES, Mixture2D, grid_mixture, ring_mixture
from ganjax.data.sources import Source, load, native_count, native_shape
from ganjax.data.tfds import TFDS_DOWNLOAD_HOST, load_tfds, tfds_builder

__all__ = [
    "GREY_MODES",
    "MIXTURES",
    "PACKAGED_MNIST",
    "TFDS_DOWNLOAD_HOST",
    "Batcher",
    "DataError",
    "ImageDataset",
    "Mixture2D",
    "Source",
    "folder_shape",
    "grid_mixture",
    "image_paths",
    "image_suffixes",
    "load",
    "load_idx_folder",
    "load_image_folder",
    "load_tfds",
    "native_count",
    "native_shape",
    "read_idx",
    "ring_mixture",
    "tfds_builder",
    "to_float",
    "to_uint8",
]
