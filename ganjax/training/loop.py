"""The one train loop and its hook protocol."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from ganjax import checkpoint

PyTree = Any


class ResumeError(ValueError):
    """A resumed run has nothing left to do."""


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
      memory: what the loop held at the checkpoint :meth:`restore` went back to, if any (the loop takes it back).
    """

    every: int
    at_end = True
    reads_metrics = False
    needs_finite_state = False
    memory: dict | None = None

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


def _metrics_to_json(window: Sequence[Mapping[str, np.ndarray]]) -> list[dict]:
    """Host metrics of several steps as JSON: ``{name: [value, dtype]}`` per step, so they come back bit for bit."""
    return [{k: [np.asarray(v).tolist(), np.asarray(v).dtype.name] for k, v in m.items()} for m in window]


def _metrics_from_json(saved: list[dict]) -> list[dict[str, np.ndarray]]:
    return [{k: np.asarray(v, dtype) for k, (v, dtype) in m.items()} for m in saved]


def _jsonable(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


def train_loop(
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
    memory = next((h.memory for h in hooks if h.memory), None)
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
