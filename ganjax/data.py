"""Image data for GANs: IDX files, image folders and TFDS, as NHWC float32 in [-1, 1].

Every source loads into an :class:`ImageDataset` of uint8 images in NHWC
layout. :func:`batches` then yields fixed-size float32 batches in [-1, 1]
(ganhacks trick 1), reshuffled every epoch from an explicit seed: the batch at a
given step depends only on ``(seed, step)``, so a resumed run sees exactly the
batches an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import difflib
import gzip
import pathlib
import queue
import socket
import threading
from collections.abc import Callable, Iterable, Iterator

import numpy as np

PACKAGED_MNIST = pathlib.Path(__file__).parent / "datasets" / "mnist"
"""The embedded MNIST test set (10,000 digits, CC BY-SA 3.0; attribution in its README.md)."""
_IDX_IMAGES_MAGIC = 2051
_IDX_LABELS_MAGIC = 2049


class DataError(ValueError):
    """A data file or folder is missing, corrupt or inconsistent."""


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 ``(N, H, W, C)``, optional int32 labels ``(N,)`` and the classes' names if known."""

    images: np.ndarray
    labels: np.ndarray | None = None
    name: str = ""
    class_names: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.images.ndim != 4 or self.images.dtype != np.uint8:
            raise DataError(f"{self.name}: images must be uint8 NHWC, got {self.images.dtype} {self.images.shape}")
        if len(self.images) == 0:
            raise DataError(f"{self.name}: holds no images")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise DataError(f"{self.name}: {len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.images)

    def split(self, fraction: float) -> tuple[ImageDataset, ImageDataset]:
        """The first ``fraction`` of the examples and the rest (a fixed, unshuffled split).

        Raises:
          DataError: when either part would hold no examples.
        """
        if not 0 < round(len(self) * fraction) < len(self):
            raise DataError(
                f"{self.name}: {len(self)} examples do not split into two non-empty parts at {fraction:.3g}"
            )
        cut = round(len(self) * fraction)
        part = lambda a, s: None if a is None else a[s]
        return (
            ImageDataset(self.images[:cut], part(self.labels, slice(None, cut)), f"{self.name}[:{cut}]"),
            ImageDataset(self.images[cut:], part(self.labels, slice(cut, None)), f"{self.name}[{cut}:]"),
        )


def to_float(images: np.ndarray) -> np.ndarray:
    """uint8 images in [0, 255] -> float32 in [-1, 1]."""
    return images.astype(np.float32) * np.float32(2.0 / 255.0) - np.float32(1.0)


def to_uint8(images) -> np.ndarray:
    """Images in [-1, 1] -> uint8 in [0, 255] (values outside are clipped)."""
    images = np.asarray(images, np.float32)
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- IDX (MNIST format)


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


# ----------------------------------------------------------------------------- image folders

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


# ----------------------------------------------------------------------------- TFDS


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


# ----------------------------------------------------------------------------- batching


@dataclasses.dataclass(frozen=True)
class Batcher:
    """Fixed-size shuffled batches, reproducible from ``(seed, step)``.

    Epoch ``e`` visits the examples in the order ``permutation(seed, e)``; an
    epoch's last partial batch is dropped so every batch has ``batch_size``
    examples. ``batch(step)`` is a pure function of ``step``, so training can
    resume at any step and see the same data.
    """

    dataset: ImageDataset
    batch_size: int
    seed: int

    def __post_init__(self):
        if not 0 < self.batch_size <= len(self.dataset):
            raise DataError(
                f"{self.dataset.name}: holds {len(self.dataset)} examples, too few for batches of {self.batch_size}"
            )

    @property
    def steps_per_epoch(self) -> int:
        return len(self.dataset) // self.batch_size

    def indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
        return order[position * self.batch_size : (position + 1) * self.batch_size]

    def batch(self, step: int) -> dict[str, np.ndarray]:
        """``{'image': float32 (B, H, W, C) in [-1, 1]}``, plus ``'label'`` when the dataset has labels."""
        idx = self.indices(step)
        out = {"image": to_float(self.dataset.images[idx])}
        if self.dataset.labels is not None:
            out["label"] = self.dataset.labels[idx]
        return out

    def iterate(self, start_step: int = 0, prefetch: int = 2, put=None) -> Iterator[dict]:
        """Batches from ``start_step`` on, prepared ``prefetch`` ahead in a background thread.

        Args:
          start_step: the first step's batch.
          prefetch: how many batches to prepare ahead.
          put: applied to each batch in the thread (e.g. ``jax.device_put``), so
            the host-to-device copy overlaps the train step.
        """
        put = put or (lambda b: b)
        buffer: queue.Queue = queue.Queue(maxsize=prefetch)
        stop = threading.Event()

        def offer(item) -> None:
            while not stop.is_set():
                try:
                    buffer.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

        def produce():
            step = start_step
            try:
                while not stop.is_set():
                    offer(put(self.batch(step)))
                    step += 1
            except BaseException as e:  # handed to the consumer, which raises it: a dead thread never hangs it
                offer(_Failed(e))

        thread = threading.Thread(target=produce, daemon=True)
        thread.start()
        try:
            while True:
                item = buffer.get()
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
            thread.join(timeout=10)


@dataclasses.dataclass(frozen=True)
class _Failed:
    """The exception that ended a prefetch thread."""

    error: BaseException


def _folder(source: str) -> pathlib.Path:
    folder = pathlib.Path(source)
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found" if not folder.exists() else f"{folder}: not a folder")
    return folder


def _is_idx(folder: pathlib.Path) -> bool:
    return any(folder.glob("*images-idx3-ubyte*"))


def native_shape(source: str, split: str | None = None) -> tuple[int, int]:
    """``(side, channels)`` of ``source``'s images as stored: an IDX header, an image folder's first image,
    or a TFDS dataset's image feature."""
    if source.startswith("tfds:"):
        height, _, channels = (
            tfds_builder(source[5:], download=False, must_be_prepared=False).info.features["image"].shape
        )
        return height, channels
    folder = _folder(source)
    if _is_idx(folder):  # the header alone: (N, H, W) grey digits
        path = _idx_images_path(folder, split or "")
        shape, _ = _idx_header(_read_bytes(path, 16), path, _IDX_IMAGES_MAGIC)
        return shape[2], 1
    return folder_shape(folder)


def load(
    source: str,
    *,
    image_size: int | None = None,
    channels: int | None = None,
    split: str | None = None,
    data_dir: str | None = None,
    folder_labels: bool = False,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> ImageDataset:
    """Loads ``source``: a folder of IDX files, a folder of images, or ``tfds:NAME``.

    A folder holding ``*images-idx3-ubyte*`` files is read as IDX: the files of
    ``split`` (a file-name prefix; None: the folder's only images file); any
    other folder as images (:func:`load_image_folder`, resized to
    ``image_size`` with ``channels``, each the first image's when None). A TFDS
    dataset reads ``split`` (None: ``'train'``).
    """
    if source.startswith("tfds:"):
        return load_tfds(source[5:], split=split or "train", data_dir=data_dir)
    folder = _folder(source)
    if _is_idx(folder):
        return load_idx_folder(folder, split or "")
    return load_image_folder(folder, image_size, channels, folder_labels, progress)


# ----------------------------------------------------------------------------- 2D Gaussian mixtures


@dataclasses.dataclass(frozen=True)
class Mixture2D:
    """An equal-weight mixture of isotropic 2D Gaussians: ``means`` ``(K, 2)`` and one ``std``.

    The benchmarks of the VEEGAN (Srivastava et al. 2017) and PacGAN (Lin et al.
    2018) papers; see :func:`ring_mixture` and :func:`grid_mixture`.
    """

    name: str
    means: np.ndarray
    std: float

    def sample(self, key, n: int):
        """``n`` points ``(n, 2)`` float32: a uniform mode each, plus N(0, std²) noise. Jit-friendly."""
        import jax

        mode_key, noise_key = jax.random.split(key)
        modes = jax.random.randint(mode_key, (n,), 0, len(self.means))
        noise = self.std * jax.random.normal(noise_key, (n, 2))
        return jax.numpy.asarray(self.means, np.float32)[modes] + noise


def ring_mixture(n_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Mixture2D:
    """The ring of 8 Gaussians on the unit circle, std 0.01."""
    angles = 2 * np.pi * np.arange(n_modes) / n_modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return Mixture2D("ring", means.astype(np.float32), std)


def grid_mixture(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture2D:
    """The grid of 25 Gaussians with means {-4, -2, 0, 2, 4}², std 0.05."""
    ticks = spacing * (np.arange(side) - (side - 1) / 2)
    means = np.stack(np.meshgrid(ticks, ticks, indexing="ij"), axis=-1).reshape(-1, 2)
    return Mixture2D("grid", means.astype(np.float32), std)


MIXTURES = {"ring": ring_mixture, "grid": grid_mixture}
