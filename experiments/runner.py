"""The one train loop every experiment runs, its periodic hooks, and the set-up image GANs share.

:func:`train` runs ``step_fn(state, batch) -> (state, metrics)`` from the
state's step to ``steps``, with a progress bar. Metrics stay on device between
the steps where a hook that reads them runs (no host sync in the hot loop).
Everything else is a :class:`Hook` the experiment lists, run in list order at
every multiple of its ``every`` (and, unless ``at_end=False``, at the last step
and when a hook stops the run):

- :class:`Evaluate` adds ``evaluate(state, step)``'s values to the next log record;
- :class:`Watch` is the failure monitor: NaN/Inf stops the run with
  :class:`ganjax.evaluation.monitor.NonFiniteLossError`, its flags are logged,
  and a flag in ``stop_on`` ends the run early;
- :class:`Log` writes the window's mean metrics to ``metrics.jsonl`` and TensorBoard
  (``tb/``), and ``training.png`` at the end;
- :class:`Periodic` calls ``fn(state, step)`` (sample grids: :func:`grid_writer`);
- :class:`Checkpoint` saves the state, and restores the latest one on resume.

Before the first hook at a step that samples, watches or checkpoints, the loop
checks the state itself: a parameter, statistic or optimizer value holding NaN
or Inf stops the run (:class:`ganjax.checkpoint.NonFiniteStateError`) before
anything is written from it, so the last checkpoint stays the last good state.
A resumed run with nothing left to do is refused (:class:`ResumeError`).

A run starts with :func:`start`: it joins the other processes, prepares the
workdir (a folder that holds another run is refused unless resumed or
overwritten; a resumed run's config is compared with the saved one; the
resolved config is written to ``config.json``), makes the device mesh and
prints one line with the backend, the devices and the batch. :func:`main` is
every experiment's command line: it turns expected errors into one line.

The second half is what the image GAN experiments share: :func:`train_image_gan`
runs one from start to end out of :func:`gan_state`, :func:`run_hooks` and
:func:`fit_gan`. Other models fit the same loop with their own players and
phases (:func:`fit_gan` trains any phases on an image dataset, e.g. VAE-GAN's
three players or CycleGAN's two-domain batches), or with their own step
(:func:`fit` takes any parallel step, e.g. PGGAN's, compiled once per stage),
or with their own batches: ``train`` takes any ``batches(start_step) -> iterator``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import shutil
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from tqdm import tqdm

from experiments import config as configs
from ganjax import checkpoint, data, event_log, images, plots
from ganjax import latent as latent_paths
from ganjax.evaluation import monitor
from ganjax.sample import CHECKPOINTS, CONFIG_FILE, EXPERIMENT_KEY, Generator
from ganjax.training import devices
from ganjax.training.gan import GAN, create_state, ema_stats, generate
from ganjax.training.phases import Phase, batches_per_step, make_step
from ganjax.training.state import TrainState

PyTree = Any
# Config fields a resumed run may change freely: where and how often it reports, and how long it goes on.
FREE_CHANGES = (
    "run.workdir",
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


class ResumeError(ValueError):
    """A resumed run has nothing left to do."""


class TrainingFailed(Exception):
    """Training ended without a usable result (e.g. a classifier that did not learn)."""


# ----------------------------------------------------------------------------- start


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _check_resumed_config(workdir: pathlib.Path, run: configs.Run, before: dict, now: dict) -> None:
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


def prepare_workdir(run: configs.Run, resolved: dict) -> pathlib.Path:
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


def experiment_name(config_cls: type) -> str:
    """The importable name of the module defining ``config_cls`` (``python -m`` runs it as ``__main__``)."""
    module = sys.modules[config_cls.__module__]
    spec = getattr(module, "__spec__", None)
    return spec.name if spec is not None else module.__name__


def start(config, batches_per_step: int = 1) -> jax.sharding.Mesh:
    """Starts a run of ``config`` (with ``schedule``, ``run`` and ``devices`` parts); returns the device mesh.

    A config without a ``devices`` part runs on one device.

    Joins the other processes first when ``config.devices`` names any, prepares
    the workdir (:func:`prepare_workdir`) and prints one line: the backend, the
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
    prepare_workdir(config.run, {EXPERIMENT_KEY: experiment_name(type(config)), **configs.to_dict(config)})
    if jax.process_index() == 0:
        batches = f" x {batches_per_step} batches per step" if batches_per_step > 1 else ""
        print(
            f"{jax.default_backend()}: {mesh.size} devices in {jax.process_count()} processes, global batch "
            f"{batch_size}{batches}, {per_device} per device",
            flush=True,
        )
    return mesh


# ----------------------------------------------------------------------------- the command line

DEBUG_FLAG = "--debug"
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def mean_std(values: Sequence[float], spec: str) -> str:
    """``'mean ± std'`` of ``values`` over seeds, each as ``spec``; the sample std (ddof 1), 0 for one seed."""
    std = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{np.mean(values):{spec}} ± {std:{spec}}"


def seeds_table(root: str | pathlib.Path, columns: Sequence[tuple[str, str, str]]) -> str:
    """A markdown table of the last record of every finished run ``{root}/{setting}_{seed}``, a row per setting.

    Each cell is :func:`mean_std` over the setting's seeds of a logged metric;
    ``columns`` lists ``(metric, header, format)``. A run is finished once it has
    drawn ``training.png``.

    Raises:
      ValueError: naming ``root`` when it is not a folder, or a run whose name or last record does not fit.
    """
    root = pathlib.Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder of runs")
    settings: dict[str, list[dict]] = {}
    for path in sorted(root.glob("*/training.png")):
        setting, _, seed = path.parent.name.rpartition("_")
        if not setting or not seed.isdigit():
            raise ValueError(f"{path.parent}: not named {{setting}}_{{seed}}")
        last = plots.read_jsonl(path.parent / METRICS_FILE)[-1]
        missing = [metric for metric, _, _ in columns if metric not in last]
        if missing:
            raise ValueError(f"{path.parent}: the last record of {METRICS_FILE} has no {', '.join(missing)}")
        settings.setdefault(setting, []).append(last)
    lines = [
        "| setting | seeds | " + " | ".join(header for _, header, _ in columns) + " |",
        "|---|---|" + "---|" * len(columns),
    ]
    for setting, records in settings.items():
        cells = [mean_std([record[metric] for record in records], spec) for metric, _, spec in columns]
        lines.append(f"| {setting} | {len(records)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(
    config_cls: type[configs.Config],
    run_fn: Callable[[Any], Any],
    argv: Sequence[str] | None = None,
    table_columns: Sequence[tuple[str, str, str]] = (),
):
    """Parses ``config_cls`` from ``argv`` (the command line when None) and returns ``run_fn(config)``.

    With ``table_columns``, ``table ROOT`` prints :func:`seeds_table` of the runs in ``ROOT`` instead.

    An expected error ends the process with one line on stderr, ``error: ...``,
    naming the file or field: bad data, a bad config, a workdir or checkpoint
    problem, a filesystem error (exit code 2), or training that produced NaN or
    Inf or failed otherwise (:class:`TrainingFailed`; exit code 1). ``--debug``
    anywhere in ``argv`` (or ``GANJAX_DEBUG=1``) shows the full traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("GANJAX_DEBUG") == "1"
    try:
        if table_columns and argv[:1] == ["table"]:
            if len(argv) != 2:
                raise ValueError(f"usage: python -m {experiment_name(config_cls)} table ROOT (a folder of runs)")
            return print(seeds_table(argv[1], table_columns))
        return run_fn(configs.parse(config_cls, [arg for arg in argv if arg != DEBUG_FLAG]))
    except (FloatingPointError, TrainingFailed, ValueError, OSError) as e:
        if debug:
            raise
        for bar in list(tqdm._instances):  # a progress bar the error left open: clear its line first
            bar.close()
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(
            EXIT_FAILED if isinstance(e, (FloatingPointError, TrainingFailed)) else EXIT_BAD_INPUT
        ) from None


# ----------------------------------------------------------------------------- hooks


@dataclasses.dataclass
class Context:
    """What hooks see and share at one step.

    Attributes:
      step: the number of completed steps.
      state: the state after that step.
      last: whether it is the run's last step.
      window: the host metrics of every step since this hook last ran (hooks with ``reads_metrics``).
      record: values for the next log record (evaluations, flags); :class:`Log` writes and clears them.
      stop: reasons to end the run after this step; a hook appends one to stop it.
      postfix: what the progress bar shows beside it.
      memory: what the loop and its hooks hold on the host at this step (:class:`Checkpoint` saves it).
    """

    step: int
    state: PyTree
    last: bool
    window: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    record: dict[str, Any] = dataclasses.field(default_factory=dict)
    stop: list[str] = dataclasses.field(default_factory=list)
    postfix: dict[str, str] = dataclasses.field(default_factory=dict)
    memory: Callable[[], dict] = dict


class Hook:
    """Something done every ``every`` steps; subclasses set ``every`` and override ``__call__``.

    Attributes:
      every: runs at multiples of ``every``.
      at_end: also runs at the last step and at the step a hook stops the run.
      reads_metrics: gets the train metrics since its last run in ``context.window``.
      needs_finite_state: writes or reads the state, so the loop first stops the run if it holds NaN or Inf.
    """

    every: int
    at_end = True
    reads_metrics = False
    needs_finite_state = False

    def restore(self, state: PyTree) -> PyTree:
        """Before the loop: the state to start from (a checkpoint's, on resume)."""
        return state

    def begin(self, step: int) -> None:
        """Before the loop, once every hook has restored: the run goes on from ``step``."""

    def remember(self) -> dict:
        """What this hook holds on the host, as JSON values, for a resumed run to :meth:`recall`."""
        return {}

    def recall(self, memory: dict) -> None:
        """Takes back what :meth:`remember` gave at the checkpoint the run resumes from."""

    def __call__(self, context: Context) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """After the loop, also when it fails."""

    def due(self, context: Context) -> bool:
        return context.step % self.every == 0 or (self.at_end and (context.last or bool(context.stop)))


@dataclasses.dataclass
class Periodic(Hook):
    """Calls ``fn(state, step)`` every ``every`` steps (e.g. a sample grid, a plot)."""

    every: int
    fn: Callable[[PyTree, int], None]
    at_end: bool = True
    needs_finite_state = True

    def __call__(self, context: Context) -> None:
        self.fn(context.state, context.step)


@dataclasses.dataclass
class Evaluate(Hook):
    """Adds ``evaluate(state, step)``'s values to the next log record (the monitor also reads them)."""

    every: int
    evaluate: Callable[[PyTree, int], Mapping[str, float]]

    def __call__(self, context: Context) -> None:
        context.record.update(self.evaluate(context.state, context.step))


@dataclasses.dataclass
class Watch(Hook):
    """The failure monitor: NaN/Inf in any metric stops the run; flags are logged, those in ``stop_on`` stop it.

    Raises (when called):
      ganjax.evaluation.monitor.NonFiniteLossError: naming the metric and its step. The last
      checkpoint written is then the last good state.
    """

    every: int
    config: monitor.MonitorConfig
    reads_metrics = True
    needs_finite_state = True

    def __post_init__(self):
        self._monitor = monitor.Monitor(self.config)
        self._history: collections.deque = collections.deque(maxlen=self.config.kept)

    def __call__(self, context: Context) -> None:
        monitor.check_finite(monitor.stack_history(context.window), context.step)
        self._history.extend(context.window)
        evaluated = {k: v for k, v in context.record.items() if isinstance(v, (int, float))}
        recent = list(self._history)[-self.config.reads(context.step) :]
        flags = self._monitor.check(monitor.stack_history(recent), evaluated)
        if flags:
            context.record["flags"] = "; ".join(flag.message for flag in flags)
        context.postfix["flags"] = ",".join(flag.name for flag in flags) or "-"
        stop = self._monitor.should_stop(flags)
        if stop:
            context.record["stopped"] = "; ".join(flag.message for flag in stop)
            context.stop.append(context.record["stopped"])

    def remember(self) -> dict:
        return {"history": _metrics_to_json(self._history)}

    def recall(self, memory: dict) -> None:
        self._history.extend(_metrics_from_json(memory["history"]))


class Log(Hook):
    """Mean metrics since the last record, plus the record's values, to ``metrics.jsonl`` and TensorBoard.

    In TensorBoard the train metrics are under ``train/``, evaluations under
    ``eval/``, the monitor's flags as text under ``monitor/``, sample grids
    (:meth:`image`) under ``samples``, and the run's config as text. Only
    process 0 writes; TensorBoard is flushed at every record, so a killed run
    loses none. On resume, records after the resumed step are dropped from both
    (a last line torn by a crash too). At the end it plots ``training.png``.
    """

    reads_metrics = True

    def __init__(
        self,
        every: int,
        workdir: str | pathlib.Path,
        progress: Sequence[str] = PROGRESS_METRICS,
        config: Mapping | None = None,
    ):
        self.every, self.workdir, self.progress, self.config = every, pathlib.Path(workdir), tuple(progress), config
        self.path = self.workdir / METRICS_FILE
        self.active = jax.process_index() == 0
        self._tb = None
        self.last: dict[str, Any] = {}  # the last record written

    def begin(self, step: int) -> None:
        if not self.active:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            kept = [line for line in _read_records(self.path) if json.loads(line)["step"] <= step]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._tb = event_log.EventLog(self.workdir / "tb", purge_step=step + 1 if step else None)
        if self.config is not None:
            self._tb.text("config", f"```\n{json.dumps(self.config, indent=2)}\n```", step)
            self._tb.flush()

    def __call__(self, context: Context) -> None:
        train = {
            name: float(np.mean([m[name] for m in context.window]))
            for name in (context.window[0] if context.window else {})
        }
        record = {**train, **context.record}
        context.record.clear()
        context.postfix.update({k: f"{v:.3g}" for k, v in record.items() if k in self.progress})
        self.last = record
        if self.active:
            self.write(context.step, record, train_names=train.keys())

    def write(self, step: int, values: Mapping[str, Any], train_names: Iterable[str] = ()) -> None:
        """Appends ``values`` to ``metrics.jsonl`` and TensorBoard (``train_names`` under ``train/``, other
        numbers under ``eval/``, text under ``monitor/``)."""
        record = {"step": step, **{k: _jsonable(v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        train_names = set(train_names)
        for name, value in values.items():
            value = record[name]
            if isinstance(value, (int, float)):
                self._tb.scalar(f"{'train' if name in train_names else 'eval'}/{name}", value, step)
            elif isinstance(value, str):
                self._tb.text(f"monitor/{name}", value, step)
        self._tb.flush()

    def image(self, tag: str, picture: np.ndarray, step: int) -> None:
        """A uint8 ``(H, W, C)`` image to TensorBoard (process 0)."""
        if self.active:
            self._tb.image(tag, picture, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            if self.path.exists() and self.path.stat().st_size:
                try:
                    plots.plot_training(self.path, self.workdir / "training.png")
                except ValueError as e:  # every metric constant: a figure would show nothing
                    print(f"warning: training.png not drawn: {e}", file=sys.stderr, flush=True)


def _read_records(path: pathlib.Path) -> list[str]:
    """The lines of ``metrics.jsonl``; a last line torn by a crash is dropped, a bad earlier one refused."""
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            json.loads(line)
        except json.JSONDecodeError as e:
            if number == len(lines):
                print(f"warning: {path}: dropped a last line torn by a crash", file=sys.stderr, flush=True)
                return lines[:-1]
            raise WorkdirError(f"{path}:{number}: not a JSON record ({e})") from e
    return lines


def _metrics_to_json(window: Sequence[Mapping[str, np.ndarray]]) -> list[dict]:
    """Host metrics of several steps as JSON: ``{name: [value, dtype]}`` per step, so they come back bit for bit."""
    return [{k: [np.asarray(v).tolist(), np.asarray(v).dtype.name] for k, v in m.items()} for m in window]


def _metrics_from_json(saved: list[dict]) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(v, dtype) for k, (v, dtype) in m.items()} for m in saved]


def _jsonable(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


class Checkpoint(Hook):
    """Saves the state (and the config) under ``{workdir}/checkpoints``; on resume starts from the latest.

    It refuses to save a state holding NaN or Inf, or one whose metrics since the
    last save are not finite. On resume, a checkpoint that cannot be read is set
    aside, with a warning, for the one before it.
    """

    reads_metrics = True
    needs_finite_state = True

    def __init__(self, every: int, workdir: str | pathlib.Path, keep: int, resume: bool, config: dict | None = None):
        self.every, self.resume, self.config = every, resume, config
        self.memory: dict | None = None
        self.checkpointer = checkpoint.Checkpointer(pathlib.Path(workdir) / CHECKPOINTS, max_to_keep=keep)

    def restore(self, state: PyTree) -> PyTree:
        """The latest readable checkpoint's state; its loop memory is kept in ``self.memory``."""
        if not self.resume:
            return state
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            restored = self.checkpointer.restore(state)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr, flush=True)
        self.memory = restored.extra
        return restored.state

    def __call__(self, context: Context) -> None:
        monitor.check_finite(monitor.stack_history(context.window), context.step)
        self.checkpointer.save(context.step, context.state, self.config, extra=context.memory())

    def close(self) -> None:
        self.checkpointer.close()


def run_hooks(
    run: configs.Run,
    resolved: dict,
    extra: Sequence[Hook] = (),
    watch: monitor.MonitorConfig | None = None,
    sample: Callable[[PyTree, int], None] | None = None,
) -> list[Hook]:
    """The usual hooks of a run, in order: ``extra`` (evaluations), the monitor, logging, samples, checkpoints.

    ``sample(state, step)`` writes a sample grid and returns it (:func:`grid_writer`); it is also logged to TensorBoard.
    """
    hooks = list(extra)
    if watch is not None:
        hooks.append(Watch(run.log_every, watch))
    log = Log(run.log_every, run.workdir, config=resolved)
    hooks.append(log)
    if sample is not None:
        hooks.append(Periodic(run.sample_every, lambda state, step: log.image("samples", sample(state, step), step)))
    hooks.append(Checkpoint(run.checkpoint_every, run.workdir, run.keep_checkpoints, run.resume, resolved))
    return hooks


# ----------------------------------------------------------------------------- the loop


def train(
    state: PyTree,
    step_fn: Callable[[PyTree, Any], tuple[PyTree, dict]],
    batches: Callable[[int], Iterator[Any]],
    steps: int,
    hooks: Sequence[Hook],
    desc: str | None = None,
    step_of: Callable[[PyTree], int] = lambda s: int(s.step),
) -> PyTree:
    """Runs ``step_fn`` until ``steps`` steps are done; returns the last state.

    Args:
      state: the state to start from (hooks may replace it, e.g. with a checkpoint's).
      step_fn: ``(state, batch) -> (state, metrics)``, usually jitted with the state donated.
      batches: ``start_step -> iterator`` of the batches of steps ``start_step + 1, ...``.
      steps: the step to stop at.
      hooks: run in order at their steps.
      desc: the progress bar's label.
      step_of: the number of steps ``state`` has completed.
    """
    for hook in hooks:
        state = hook.restore(state)
    memory = next((h.memory for h in hooks if isinstance(h, Checkpoint) and h.memory), None)
    start_step = step_of(state)
    if start_step >= steps:
        raise ResumeError(
            f"the run is at step {start_step} and schedule.steps is {steps}: nothing left to do; "
            "pass a larger --schedule.steps to go on"
        )
    for hook in hooks:
        hook.begin(start_step)
    since = {id(hook): start_step for hook in hooks if hook.reads_metrics}
    pending: list[dict] = []  # device metrics not fetched yet
    fetched: list[dict] = []  # host metrics of steps first_fetched + 1, ...
    first_fetched = start_step
    record: dict[str, Any] = {}
    postfix: dict[str, str] = {}
    if memory is not None and len(memory["hooks"]) == len(hooks):  # the run's memory at its checkpoint
        since = {id(hook): at for hook, at in zip(hooks, memory["since"]) if hook.reads_metrics}
        fetched, first_fetched, record = (
            _metrics_from_json(memory["fetched"]),
            memory["first_fetched"],
            memory["record"],
        )
        for hook, remembered in zip(hooks, memory["hooks"]):
            hook.recall(remembered)

    def remember() -> dict:
        return {
            "since": [since.get(id(hook)) for hook in hooks],
            "fetched": _metrics_to_json(fetched),
            "first_fetched": first_fetched,
            "record": {k: _jsonable(v) for k, v in record.items()},
            "hooks": [hook.remember() for hook in hooks],
        }

    iterator = batches(start_step)
    try:
        with tqdm(
            initial=start_step, total=steps, disable=jax.process_index() != 0, dynamic_ncols=True, desc=desc
        ) as bar:
            for done in range(start_step + 1, steps + 1):
                state, metrics = step_fn(state, next(iterator))
                pending.append(metrics)
                context = Context(done, state, done == steps, record=record, postfix=postfix, memory=remember)
                checked = False
                for hook in hooks:
                    if not hook.due(context):
                        continue
                    if hook.needs_finite_state and not checked:
                        checkpoint.check_finite_state(state, done)
                        checked = True
                    if hook.reads_metrics:
                        fetched.extend(jax.device_get(pending))
                        pending = []
                        context.window = fetched[since[id(hook)] - first_fetched :]
                        since[id(hook)] = done
                    hook(context)
                if since:
                    drop = min(since.values()) - first_fetched
                    fetched, first_fetched = fetched[drop:], first_fetched + drop
                bar.set_postfix(postfix, refresh=False)
                bar.update(1)
                if context.stop:
                    break
    finally:
        getattr(iterator, "close", lambda: None)()  # stops a prefetch thread before the process may exit
        for hook in hooks:
            hook.close()
    return state


# ----------------------------------------------------------------------------- image GANs


def gan_state(
    key: jax.Array, gan: GAN, generator: nn.Module, discriminator: nn.Module, example_shape: tuple[int, ...], config
) -> TrainState:
    """G and D with ``config.optim``'s optimizers and ``config.state``'s options, at step 0.

    ``key`` is split into the players' key (which also seeds every step) and the optimizers' noise key.
    Refuses a ``config.schedule.batch_size`` that PacGAN's ``Objective.packing`` does not divide.
    """
    if config.schedule.batch_size % gan.objective.packing:
        raise ValueError(
            f"Objective.packing: {gan.objective.packing} does not divide schedule.batch_size "
            f"{config.schedule.batch_size}; D judges whole packs"
        )
    init_key, noise_key = jax.random.split(key)
    tx = config.optim.build(noise_key, config.schedule.steps, config.schedule.n_critic)
    options = config.state
    return create_state(
        init_key,
        gan,
        generator,
        discriminator,
        example_shape,
        g_tx=tx.g,
        d_tx=tx.d,
        ema_decay=options.ema(config.schedule.batch_size),
        replay_capacity=options.replay_capacity,
        replay_share=options.replay_share,
    )


def grid_writer(workdir: str | pathlib.Path, sample: Callable[[PyTree], Any], nrow: int = 10) -> Callable:
    """``(state, step) -> grid``: writes ``{workdir}/samples/step_XXXXXX.png`` from ``sample(state)`` (process 0
    writes) and returns the grid as a uint8 ``(H, W, C)`` array (:func:`ganjax.images.make_grid`)."""
    folder = pathlib.Path(workdir) / "samples"

    def write(state: PyTree, step: int) -> np.ndarray:
        picture = images.make_grid(np.asarray(sample(state)), nrow)  # every process takes part in sampling
        if jax.process_index() == 0:
            images.save_picture(picture, folder / f"step_{step:06d}.png", scale=2)
        return picture

    return write


def write_animation(workdir: str | pathlib.Path) -> pathlib.Path | None:
    """``{workdir}/samples.gif`` from every sample grid written so far (process 0 only)."""
    frames = sorted((pathlib.Path(workdir) / "samples").glob("step_*.png"))
    if jax.process_index() != 0 or not frames:
        return None
    labels = [f"step {int(frame.stem.removeprefix('step_'))}" for frame in frames]
    return images.save_gif(frames, pathlib.Path(workdir) / "samples.gif", labels=labels)


def fit(
    config,
    state: PyTree,
    step: Callable,
    dataset: data.ImageDataset,
    mesh: jax.sharding.Mesh,
    hooks: Sequence[Hook],
    batches: int = 1,
) -> PyTree:
    """Trains ``state`` with the parallel ``step`` on ``dataset``'s shuffled batches over ``mesh``; returns it.

    Each step takes ``batches`` real batches of ``schedule.batch_size`` rows, one
    after another, from ``data.Batcher(dataset, rows, run.seed)``; each process
    puts its rows on its own devices. Writes ``samples.gif`` at the end.
    """
    batcher = data.Batcher(dataset, config.schedule.batch_size * batches, config.run.seed)
    state = train(
        devices.replicate(state, mesh),
        step,
        lambda start: batcher.iterate(start, put=lambda batch: devices.shard_batch(batch, mesh)),
        config.schedule.steps,
        hooks,
    )
    write_animation(config.run.workdir)
    return state


def fit_gan(
    config,
    state: TrainState,
    phases: tuple[Phase, ...],
    dataset: data.ImageDataset,
    mesh: jax.sharding.Mesh,
    hooks: Sequence[Hook],
    wrap_step: Callable[[Callable], Callable] | None = None,
    inputs: Callable[[Mapping[str, jax.Array]], Mapping[str, jax.Array]] | None = None,
) -> TrainState:
    """Trains ``state`` with ``phases`` on ``dataset``'s shuffled batches over ``mesh`` (:func:`fit`).

    Each step takes as many real batches as its phases need
    (:func:`ganjax.training.phases.batches_per_step`). ``inputs`` maps each
    device's batch inside the step (e.g. to several scales); ``wrap_step`` wraps
    the parallel step (e.g. opponent swaps).
    """
    step_fn = make_step(phases)
    if inputs is not None:
        inner = step_fn
        step_fn = lambda state, batch, axis_name=None: inner(state, inputs(batch), axis_name)
    per_step = batches_per_step(phases)
    step = devices.data_parallel(step_fn, mesh, per_step)
    if wrap_step is not None:
        step = wrap_step(step)
    return fit(config, state, step, dataset, mesh, hooks, per_step)


def train_image_gan(
    config,
    gan: GAN,
    models: Callable[[str | None], tuple[nn.Module, nn.Module]],
    init_key: jax.Array,
    fixed: tuple,
    sample_key: jax.Array,
    *,
    example_shape: tuple[int, ...] | None = None,
    view: Callable[[jax.Array], jax.Array] | None = None,
    nrow: int = 10,
    rngs: dict | None = None,
    evaluations: Callable[[data.ImageDataset], Sequence[Hook]] | None = None,
    prepare: Callable[[TrainState], TrainState] | None = None,
    wrap_step: Callable[[Callable], Callable] | None = None,
    inputs: Callable[[Mapping[str, jax.Array]], Mapping[str, jax.Array]] | None = None,
    training_data: Callable[[data.ImageDataset], data.ImageDataset] | None = None,
):
    """An image GAN experiment from start to end; returns ``(final state, sample)``.

    Starts the run (:func:`start`), loads ``config.data``, builds G and D with
    ``models(bn_axis_name)`` and the state (:func:`gan_state`, then ``prepare``),
    and trains (:func:`fit_gan`) with the hooks of ``evaluations(dataset)``, the
    monitor, logging, sample grids and checkpoints.

    Args:
      config: with ``data``, ``optim``, ``state``, ``schedule``, ``run``, ``devices`` and ``monitor`` parts.
      gan: the objective.
      models: ``bn_axis_name -> (G, D)``; the axis is None unless ``config.devices`` has cross-replica BatchNorm on.
      init_key: the players' and the steps' key.
      fixed: G's inputs for every sample grid (``(z,)`` or ``(z, labels)``).
      sample_key: the key ``fixed`` was drawn from; the moving average of G is sampled with BatchNorm
        statistics recomputed for it from this key (:func:`ganjax.training.gan.ema_stats`), as
        :mod:`ganjax.sample` recomputes them from the run's sample key.
      example_shape: D's input shape (default: ``config.data``'s images).
      view: maps G's output to the grid's images.
      nrow: images per grid row.
      rngs: G's keys for its noise and dropout layers when sampling.
      evaluations: ``dataset -> hooks`` run before the others.
      prepare, wrap_step, inputs: see :func:`fit_gan` (``prepare`` maps the new state, e.g. to add buffers).
      training_data: maps the loaded data to the data G and D train on (e.g. labelled by clusters); the
        evaluations see the data as loaded.

    Returns:
      The last state and ``sample(state, *inputs)``, G's jitted images (its moving average when kept, with its
      recomputed statistics).
    """
    phases = gan.phases(config.schedule.n_critic)
    mesh = start(config, batches_per_step(phases))
    dataset = config.data.load()
    train_set = training_data(dataset) if training_data is not None else dataset
    classes = gan.conditioning.num_classes
    if classes and train_set.labels is None:
        needs = "a conditional GAN needs" if gan.conditioning.g_takes_labels else "D's class head needs"
        hint = "" if gan.conditioning.g_takes_labels else "; --class-head.weight 0 trains without labels"
        raise data.DataError(f"{dataset.name}: {needs} labelled data (for an image folder: --data.folder-labels){hint}")
    if classes and train_set.labels.max() >= classes:
        raise data.DataError(
            f"{dataset.name}: holds {train_set.labels.max() + 1} classes, but the config's num_classes is {classes}"
        )
    mode = getattr(config.devices, "cross_replica_bn", "off")
    generator, discriminator = models(devices.bn_axis_name(mode, config.schedule.batch_size, mesh))
    state = gan_state(init_key, gan, generator, discriminator, example_shape or config.data.shape, config)
    state = prepare(state) if prepare is not None else state
    use_ema, batch_size, g_classes = config.state.keeps_ema, config.schedule.batch_size, gan.conditioning.g_classes

    def draw(state: TrainState, *inputs) -> jax.Array:
        stats = ema_stats(state, sample_key, gan.latent.sample, batch_size, g_classes) if use_ema else None
        return generate(state, *inputs, use_ema=use_ema, rngs=rngs, ema_stats=stats)

    sample = jax.jit(draw)
    fixed = devices.replicate(fixed, mesh)
    view = view or (lambda x: x)
    writer = grid_writer(config.run.workdir, lambda s: view(sample(s, *fixed)), nrow)
    extra = list(evaluations(dataset)) if evaluations is not None else []
    hooks = run_hooks(config.run, configs.to_dict(config), extra, config.monitor.build(gan.objective), writer)
    return fit_gan(config, state, phases, train_set, mesh, hooks, wrap_step, inputs), sample


def write_interpolation(
    workdir: str | pathlib.Path,
    state: TrainState,
    sample: Callable,
    key: jax.Array,
    latent: configs.Latent,
    rows: int = 10,
    anchors: int = 3,
    num_classes: int = 0,
) -> None:
    """``{workdir}/interpolation.png``: rows of G's images along great-circle paths between ``anchors`` codes;
    for a G that takes one of ``num_classes`` classes, row ``r`` keeps class ``r`` (modulo ``num_classes``)."""
    paths = latent_paths.interpolation_grid(key, rows, 10, latent.dim, anchors=anchors, sampler=latent.distribution)
    labels = (np.repeat(np.arange(rows) % num_classes, 10).astype(np.int32),) if num_classes else ()
    grid = np.asarray(sample(state, np.asarray(paths.reshape(-1, latent.dim)), *labels))
    if jax.process_index() == 0:
        caption = f"each row: a great-circle (slerp) path through {anchors} random codes"
        caption += ", in one class" if num_classes else ""
        images.save_grid(grid, pathlib.Path(workdir) / "interpolation.png", nrow=10, scale=2, caption=caption)


def dcgan_generator(config) -> Generator:
    """G of an unconditional DCGAN experiment as :func:`train_dcgan` samples it (for :mod:`ganjax.sample`).

    The grid's z comes from the second of three keys split from ``run.seed``, and G's always-on dropout, if any,
    from ``fold_in`` of that key and 1. A G conditioned on clusters takes, for each image, a cluster drawn
    uniformly (:meth:`ganjax.sample.Generator.inputs`), as in training.
    """
    module, _ = config.models()
    classes = config.conditioning.g_classes
    return Generator(
        module,
        draw=config.latent.sample,
        key=jax.random.split(jax.random.key(config.run.seed), 3)[1],
        num=config.num_samples,
        nrow=10,
        num_classes=classes,
        draws_classes=bool(classes),
        latent=config.latent,
        apply=lambda variables, inputs, key, step: module.apply(
            variables, *inputs, train=False, rngs={"dropout": jax.random.fold_in(key, 1)}
        ),
    )


def train_dcgan(config, evaluations: Callable[[data.ImageDataset], Sequence[Hook]] | None = None) -> TrainState:
    """An unconditional GAN of DCGAN players (``config.model.build``) from start to end.

    Samples come from one fixed z throughout (the EMA of G's params if kept) and
    G's always-on dropout, if any, draws from fixed keys, so the grids are
    comparable across steps; ends with ``interpolation.png``.
    """
    init_key, _, path_key = jax.random.split(jax.random.key(config.run.seed), 3)
    g = dcgan_generator(config)
    state, sample = train_image_gan(
        config,
        config.make_gan(),
        config.models,
        init_key,
        g.grid(g.key),
        g.key,
        rngs={"dropout": jax.random.fold_in(g.key, 1)},
        evaluations=evaluations,
        training_data=config.training_data,
    )
    write_interpolation(config.run.workdir, state, sample, path_key, config.latent, num_classes=g.num_classes)
    return state
