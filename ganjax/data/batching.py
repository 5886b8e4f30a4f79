"""Fixed-size shuffled batches, reproducible from ``(seed, step)``, prepared ahead in a background thread."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator

import numpy as np

from ganjax.data.dataset import DataError, ImageDataset, to_float


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
