"""The hooks of a run: the failure monitor, logging, checkpoints, and the usual list of them."""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import sys
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from ganjax import checkpoint, event_log, plots
from ganjax.evaluation import monitor
from ganjax.run.folder import CHECKPOINTS, METRICS_FILE, PROGRESS_METRICS, WorkdirError
from ganjax.run.parts import Run
from ganjax.training.loop import Context, Hook, Periodic, _jsonable, _metrics_from_json, _metrics_to_json

PyTree = Any


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
        self.last = {"step": context.step, **record}
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


class Checkpoint(Hook):
    """Saves the state (and the config) under ``{workdir}/checkpoints``; on resume starts from the latest.

    It refuses to save a state holding NaN or Inf, or one whose metrics since the
    last save are not finite. On resume, a checkpoint that cannot be read is set
    aside, with a warning, for the one before it. A run that does not resume
    refuses a folder already holding checkpoints, so two runs never mix in one.
    """

    reads_metrics = True
    needs_finite_state = True

    def __init__(self, every: int, workdir: str | pathlib.Path, keep: int, resume: bool, config: dict | None = None):
        self.every, self.resume, self.config = every, resume, config
        self.memory: dict | None = None
        self.checkpointer = checkpoint.Checkpointer(pathlib.Path(workdir) / CHECKPOINTS, max_to_keep=keep)

    def restore(self, state: PyTree) -> PyTree:
        """The latest readable checkpoint's state; its loop memory is kept in ``self.memory``.

        Raises:
          WorkdirError: when not resuming and the folder already holds checkpoints (of another run).
        """
        if not self.resume:
            saved = checkpoint.saved_steps(self.checkpointer.directory)
            if saved:
                steps = ", ".join(map(str, saved))
                raise WorkdirError(
                    f"{self.checkpointer.directory} holds checkpoints of another run (steps {steps}): resume it, "
                    "or start in an empty folder"
                )
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
    run: Run,
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
