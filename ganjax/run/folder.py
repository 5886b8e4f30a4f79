"""The run folder: the workdir guard, resume checks and ``config.json``, and the start of a run."""

from __future__ import annotations

import json
import pathlib
import shutil
from collections.abc import Mapping
from typing import Any

import jax

from ganjax import checkpoint
from ganjax.run.config_json import to_dict
from ganjax.run.parts import Run
from ganjax.training import devices

PyTree = Any
CONFIG_FILE = "config.json"
CHECKPOINTS = "checkpoints"


# Config fields a resumed run may change freely: where and how often it reports, and how long it goes on.
FREE_CHANGES = (
    "run.workdir",
    "recipe.path",  # where the recipe and the config class are imported from: the checkout may move
    "config_class.path",
    "run.resume",
    "run.overwrite",
    "run.allow_changes",
    "run.debug",
    "run.log_every",
    "run.sample_every",
    "run.checkpoint_every",
    "run.keep_checkpoints",
    "monitor.",
    "evaluation.",
    "class_accuracy.",
    "diversity.",
    "schedule.steps",
    "model.compute_dtype",  # params and optimizer state are float32 whatever the models compute in
)
# Config fields that shape the state or its random streams: a resumed run never changes them.
FIXED_ON_RESUME = (
    "run.seed",
    "schedule.batch_size",
    "schedule.n_critic",
    "data.image_size",
    "data.channels",
    "model.",
    "latent.",
    "state.",
    "conditioning.num_classes",
    "class_head.weight",  # whether D has a class head
    "class_head.num_classes",
)
METRICS_FILE = "metrics.jsonl"
PROGRESS_METRICS = ("d_loss", "g_loss", "d_real", "d_fake", "d_real_score", "d_fake_score", "fid")


class WorkdirError(ValueError):
    """The workdir holds another run, holds nothing to resume, or the resumed run's config differs."""


class TrainingFailed(Exception):
    """Training ended without a usable result (e.g. a classifier that did not learn)."""


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_resumed_config(workdir: pathlib.Path, run: Run, before: dict, now: dict) -> None:
    """Refuses changes a resumed run may not make (see :data:`FIXED_ON_RESUME` and ``run.allow_changes``)."""
    before, now = _flatten(before), _flatten(now)
    allowed = tuple(name.replace("-", "_") for name in run.allow_changes)
    unknown = [name for name in allowed if name not in now]
    if unknown:
        raise WorkdirError(f"run.allow_changes: {', '.join(unknown)} is not a field of this config")
    fixed = [name for name in allowed if name.startswith(FIXED_ON_RESUME)]
    if fixed:
        raise WorkdirError(
            f"run.allow_changes: {', '.join(fixed)} shapes the model or its random streams and cannot change on resume"
        )
    changed = sorted(
        name
        for name in before.keys() | now.keys()
        if before.get(name) != now.get(name) and not name.startswith(FREE_CHANGES) and name not in allowed
    )
    if changed:
        fields = ", ".join(f"{k} ({before.get(k)!r} -> {now.get(k)!r})" for k in changed)
        allow = [k for k in changed if not k.startswith(FIXED_ON_RESUME)]
        hint = f"; to change them anyway pass --run.allow-changes {' '.join(allow)}" if allow == changed else ""
        raise WorkdirError(f"{workdir}: resuming with a different config would mix two runs; changed: {fields}{hint}")


def prepare_workdir(run: Run, resolved: dict) -> pathlib.Path:
    """Makes ``run.workdir`` ready and writes ``resolved`` (the whole config) to its ``config.json``.

    A folder holding anything is refused unless ``run.resume`` (continue it) or
    ``run.overwrite`` (delete it first). A resumed run needs a checkpoint, and its
    config may differ from the saved one only in :data:`FREE_CHANGES` and in the
    fields named by ``run.allow_changes`` (never in :data:`FIXED_ON_RESUME`).
    Only process 0 touches the folder.

    Raises:
      WorkdirError: naming the folder, or the fields a resumed run would change.
    """
    workdir = pathlib.Path(run.workdir)
    if jax.process_index() != 0:
        return workdir
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirError(f"{workdir}: run.workdir is a file, not a folder")
    if run.resume:
        if not checkpoint.saved_steps(workdir / CHECKPOINTS):
            raise WorkdirError(f"{workdir}: nothing to resume (no checkpoint there); drop --run.resume to start a run")
        if (workdir / CONFIG_FILE).is_file():
            _check_resumed_config(workdir, run, _read_json(workdir / CONFIG_FILE), resolved)
    elif workdir.exists() and any(p.name != CONFIG_FILE for p in workdir.iterdir()):  # a run that never started
        if not run.overwrite:
            raise WorkdirError(
                f"{workdir} already holds a run: pass --run.resume to continue it, --run.overwrite "
                "to replace it, or another --run.workdir"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / CONFIG_FILE).write_text(json.dumps(resolved, indent=2) + "\n")
    return workdir


def _read_json(path: pathlib.Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise WorkdirError(f"{path}: not valid JSON ({e})") from e


def start(config, batches_per_step: int = 1, records: Mapping[str, Any] | None = None) -> jax.sharding.Mesh:
    """Starts a run of ``config`` (with ``schedule``, ``run`` and ``devices`` parts); returns the device mesh.

    A config without a ``devices`` part runs on one device.

    Joins the other processes first when ``config.devices`` names any, prepares
    the workdir (:func:`prepare_workdir`, with ``records`` beside the config in ``config.json``: where the
    recipe and the config class come from) and prints one line: the backend, the
    device count and the global and per-device batch.

    Raises:
      ValueError: if the global batch does not divide evenly over the devices.
    """
    parts = getattr(config, "devices", None)
    if parts is not None and parts.multi_host:
        devices.initialize_distributed(parts.coordinator_address, parts.num_processes, parts.process_id)
    mesh = devices.make_mesh(parts.num_devices if parts is not None else 1)
    batch_size = config.schedule.batch_size
    per_device = devices.check_batch_size(batch_size, mesh)
    prepare_workdir(config.run, {**(records or {}), **to_dict(config)})
    if jax.process_index() == 0:
        batches = f" x {batches_per_step} batches per step" if batches_per_step > 1 else ""
        print(
            f"{jax.default_backend()}: {mesh.size} devices in {jax.process_count()} processes, global batch "
            f"{batch_size}{batches}, {per_device} per device",
            flush=True,
        )
    return mesh
