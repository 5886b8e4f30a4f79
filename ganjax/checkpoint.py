"""Orbax checkpoints of a run's state and config, with resume.

Orbax writes each step to a temporary folder and renames it when complete, so
a crash during a save never damages an earlier, finished checkpoint. States
whose metrics are not finite are refused, so the last checkpoint on disk is
always a good one.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
    """Saves and restores a state pytree (plus a JSON config) under ``directory``.

    Args:
      directory: where step folders are written (created if missing).
      max_to_keep: how many recent checkpoints to keep.
    """

    def __init__(self, directory: str | pathlib.Path, max_to_keep: int = 3):
        self.directory = pathlib.Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
            item_names=("state", "config"),
        )

    def latest_step(self) -> int | None:
        """The newest finished checkpoint's step, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, config: dict | None = None, metrics: dict | None = None) -> None:
        """Saves ``state`` (and ``config``) as ``step``; waits for the previous save first.

        Raises:
          ValueError: if any value in ``metrics`` is not finite (the state is then not saved).
        """
        if metrics is not None:
            bad = [k for k, v in metrics.items() if not np.all(np.isfinite(np.asarray(v)))]
            if bad:
                raise ValueError(f"refusing to checkpoint step {step}: non-finite metrics {bad}")
        self._manager.wait_until_finished()
        self._manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config or {}))
        )

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores ``(state, config)`` at ``step`` (default: the latest) into ``template``'s structure.

        Raises:
          FileNotFoundError: if there is no checkpoint to restore.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"{self.directory}: no checkpoint to resume from")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), config=ocp.args.JsonRestore())
        )
        return restored["state"], dict(restored["config"] or {})

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
