"""TensorBoard event files, written synchronously.

tensorboardX's ``SummaryWriter`` hands events to a background thread and its
``flush`` does not wait for that thread, so a killed process loses what the
thread had not written. :class:`EventLog` writes each event in the caller's
thread with tensorboardX's record writer and summary protos; ``flush`` puts
everything written so far on disk.
"""

from __future__ import annotations

import pathlib
import time

from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2
from tensorboardX.summary import image, scalar, text


class EventLog:
    """One TensorBoard event file under ``folder``.

    Args:
      folder: the run's TensorBoard folder (created if missing).
      purge_step: on resume, the first step written again: TensorBoard then drops
        every earlier-written point from this step on (a ``SessionLog.START``).
    """

    def __init__(self, folder: str | pathlib.Path, purge_step: int | None = None):
        folder = pathlib.Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._writer = EventsWriter(str(folder / "events"))
        if purge_step is not None:
            start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
            self._write(event_pb2.Event(step=purge_step, session_log=start))

    def _write(self, event: event_pb2.Event) -> None:
        event.wall_time = time.time()
        self._writer.write_event(event)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self._write(event_pb2.Event(step=step, summary=scalar(tag, value)))

    def text(self, tag: str, value: str, step: int) -> None:
        self._write(event_pb2.Event(step=step, summary=text(tag, value)))

    def image(self, tag: str, picture, step: int) -> None:
        """A uint8 ``(H, W, C)`` image (C = 1 or 3), e.g. a sample grid."""
        self._write(event_pb2.Event(step=step, summary=image(tag, picture, dataformats="HWC")))

    def flush(self) -> None:
        """Puts every event written so far on disk."""
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
