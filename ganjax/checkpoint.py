"""Orbax checkpoints of a run's state and config, with resume.

Orbax writes each step to a temporary folder and renames it when complete, so
a crash during a save never damages an earlier, finished checkpoint. A state
holding NaN or Inf is never saved, so the checkpoints on disk are all good
ones; and a checkpoint that cannot be read (a damaged disk, files truncated by
hand) is set aside for the one before it.
"""

from __future__ import annotations

import pathlib
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
    """No checkpoint can be restored, or the checkpoint does not fit the state it is restored into."""


class NonFiniteStateError(FloatingPointError):
    """A state to be saved holds NaN or Inf."""


def _path(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator="/")


@jax.jit
def _finite_leaves(leaves: list) -> list:
    return [jnp.all(jnp.isfinite(leaf)) for leaf in leaves]


def first_non_finite(tree: Any) -> str | None:
    """The path (``players/g/params/Dense_0/kernel``) of ``tree``'s first float leaf holding NaN or Inf, or None.

    >>> first_non_finite({"a": np.ones(2), "b": np.array([0.0, np.nan])})
    'b'
    """
    flat = [
        (path, leaf)
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
        if jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)
    ]
    finite = jax.device_get(_finite_leaves([leaf for _, leaf in flat]))
    return next((_path(path) for (path, _), ok in zip(flat, finite) if not ok), None)


def check_finite_state(state: Any, step: int) -> None:
    """Raises :class:`NonFiniteStateError` naming ``step`` and ``state``'s first leaf holding NaN or Inf."""
    bad = first_non_finite(state)
    if bad is not None:
        raise NonFiniteStateError(f"step {step}: {bad} holds NaN or Inf")


def saved_steps(directory: str | pathlib.Path) -> list[int]:
    """The steps of the finished checkpoints under ``directory``, oldest first (none if it does not exist)."""
    directory = pathlib.Path(directory)
    return sorted(ocp.utils.checkpoint_steps(directory)) if directory.is_dir() else []


def _shapes(tree: Any) -> dict[str, tuple[int, ...]]:
    """Each leaf's path and stored shape (a PRNG key is stored as its key data)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if jnp.issubdtype(getattr(leaf, "dtype", np.float32), jax.dtypes.prng_key):
            leaf = jax.eval_shape(jax.random.key_data, leaf)
        out[_path(path)] = tuple(leaf.shape)
    return out


class Restored(NamedTuple):
    """A restored checkpoint: the state, the config and the extra values saved with it, and its step."""

    state: Any
    config: dict
    extra: dict
    step: int


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
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "config": ocp.JsonCheckpointHandler(),
                "extra": ocp.JsonCheckpointHandler(),
            },
        )

    def latest_step(self) -> int | None:
        """The newest finished checkpoint's step, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state: Any, config: dict | None = None, extra: dict | None = None) -> None:
        """Saves ``state`` and the JSON values ``config`` and ``extra`` as ``step``, after the previous save ends.

        Raises:
          NonFiniteStateError: naming the step and the first leaf holding NaN or Inf; nothing is saved.
        """
        try:
            check_finite_state(state, step)
        except NonFiniteStateError as e:
            last = self.latest_step()
            kept = f"the last good checkpoint is step {last}" if last is not None else "no checkpoint was written"
            raise NonFiniteStateError(f"{e}; not checkpointed ({kept})") from None
        self._manager.wait_until_finished()
        self._manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                config=ocp.args.JsonSave(config or {}),
                extra=ocp.args.JsonSave(extra or {}),
            ),
        )

    def _check_fits(self, template: Any, step: int) -> None:
        saved = _shapes(self._manager.item_metadata(step)["state"].tree)
        wanted = _shapes(template)
        differences = [
            f"{path} is {saved.get(path, 'missing')} there, {wanted.get(path, 'missing')} here"
            for path in sorted(saved.keys() | wanted.keys())
            if saved.get(path) != wanted.get(path)
        ]
        if differences:
            more = f" (and {len(differences) - 3} more)" if len(differences) > 3 else ""
            raise CheckpointError(
                f"{self.directory / str(step)} does not fit this model: " + "; ".join(differences[:3]) + more
            )

    def _restore(self, template: Any, step: int) -> Restored:
        self._check_fits(template, step)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        items = {"state": ocp.args.StandardRestore(abstract), "config": ocp.args.JsonRestore()}
        if (self.directory / str(step) / "extra").is_dir():
            items["extra"] = ocp.args.JsonRestore()
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        extra = restored["extra"] if "extra" in items else None
        return Restored(restored["state"], dict(restored["config"] or {}), dict(extra or {}), step)

    def restore(self, template: Any, step: int | None = None) -> Restored:
        """Restores the state, into ``template``'s structure, with its config, extra values and step.

        Without ``step``, from the newest checkpoint that can be read: one that
        cannot is renamed ``{step}.unreadable`` (so the run can save that step
        again) with a warning, and the one before it is tried.

        Raises:
          CheckpointError: if there is no checkpoint (or none that can be read), or
            if the checkpoint's arrays do not fit ``template`` (naming the first leaves that differ).
        """
        self._manager.wait_until_finished()
        steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise CheckpointError(f"{self.directory}: no checkpoint to resume from")
        failures: list[tuple[int, str]] = []
        for candidate in steps:
            try:
                restored = self._restore(template, candidate)
            except CheckpointError:
                raise
            except Exception as e:  # orbax and tensorstore raise many kinds for damaged files
                failures.append((candidate, f"{type(e).__name__}: {(str(e).strip() or '-').splitlines()[0]}"))
                continue
            for failed, why in failures:  # only once an older one restored: a bug here must not move every one
                self._set_aside(failed)
                warnings.warn(f"checkpoint {failed} cannot be read ({why}); moved to {failed}.unreadable", stacklevel=2)
            return restored
        reasons = "; ".join(f"step {failed}: {why}" for failed, why in failures)
        raise CheckpointError(f"{self.directory}: no checkpoint can be read ({reasons})")

    def _set_aside(self, step: int) -> None:
        folder = self.directory / str(step)
        if folder.exists():
            folder.rename(folder.with_name(f"{step}.unreadable"))
        self._manager.reload()

    def close(self) -> None:
        """Waits for pending saves and releases the manager."""
        self._manager.wait_until_finished()
        self._manager.close()
