"""The in-memory dataset every source loads into, its error, and the pixel conversions."""

from __future__ import annotations

import dataclasses

import numpy as np


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
