"""Failure flags over a window of recent GAN metrics.

Every check is a pure function ``(history, config) -> Flag | None`` over a
history ``{name: values over recent steps}`` (the metrics dicts of
:func:`ganjax.training.phases.make_step`'s step, stacked; NumPy or JAX arrays). The signs are
those of the GAN training folklore (ganhacks, Chintala et al. 2016, tips 10
and 13): D's loss going to 0, exploding gradients, a D loss that jumps about
instead of settling, G's loss falling while D still wins (G fooling D with
garbage), and mode collapse.

Example::

  monitor = Monitor(MonitorConfig(stop_on=("grad_explosion",)))
  flags = monitor.check(history)         # every N steps, on the fetched window
  if monitor.should_stop(flags): ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np

History = Mapping[str, np.ndarray]


class Flag(NamedTuple):
    """A failure sign: a short ``name`` (the check) and a ``message`` for a person."""

    name: str
    message: str


class NonFiniteLossError(FloatingPointError):
    """A metric (loss or gradient norm) became NaN or Inf."""


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """Thresholds of the checks, and which flags stop training.

    Attributes:
      window: how many of the most recent values each check looks at.
      d_loss_floor: D's mean loss below this is "near 0".
      max_grad_norm: a global gradient norm of G or D above this, as the median of
        the last ``explosion_steps`` steps (so one spike is not an explosion), is an explosion.
      explosion_steps: how many recent steps that median covers.
      max_d_loss_rel_std: D's loss std over its mean above this is "high variance".
      spike_ratio: a D loss above this times the window's median is a spike.
      max_spike_share: more spikes than this share of the window is unstable.
      g_loss_fall: G's loss falling by at least this fraction over the window (on a linear fit) is "falling steadily".
      d_wins_real: D(x) at least this ...
      d_wins_fake: ... and D(G(z)) at most this mean D is winning.
      max_duplicate_share: a larger share of near-duplicate samples is mode collapse.
      min_distance_ratio: a smaller samples-to-data mean pairwise distance ratio is mode collapse.
      stop_on: names of the flags that should stop training.
    """

    window: int = 200
    d_loss_floor: float = 0.05
    max_grad_norm: float = 100.0
    explosion_steps: int = 20
    max_d_loss_rel_std: float = 0.5
    spike_ratio: float = 3.0
    max_spike_share: float = 0.02
    g_loss_fall: float = 0.2
    d_wins_real: float = 0.8
    d_wins_fake: float = 0.2
    max_duplicate_share: float = 0.5
    min_distance_ratio: float = 0.5
    stop_on: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = set(self.stop_on) - set(CHECKS)
        if unknown:
            raise ValueError(f"MonitorConfig.stop_on: unknown flags {sorted(unknown)}; choose from {sorted(CHECKS)}")
        if self.window < 2:
            raise ValueError(f"MonitorConfig.window must be at least 2, got {self.window}")


def _recent(history: History, name: str, config: MonitorConfig) -> np.ndarray | None:
    if name not in history:
        return None
    values = np.asarray(history[name], np.float64).reshape(-1)[-config.window :]
    return values if len(values) else None


def d_loss_zero(history: History, config: MonitorConfig) -> Flag | None:
    """D's loss near 0: D separates real from fake perfectly and G gets no useful gradient."""
    d = _recent(history, "d_loss", config)
    if d is not None and d.mean() < config.d_loss_floor:
        return Flag("d_loss_zero", f"D loss {d.mean():.3g} is near 0: D wins outright and G learns nothing")
    return None


def grad_explosion(history: History, config: MonitorConfig) -> Flag | None:
    """The global gradient norm of G or D above ``max_grad_norm`` over the last ``explosion_steps`` (median)."""
    worst = {}
    for name in ("g_grad_norm", "d_grad_norm"):
        values = _recent(history, name, config)
        if values is not None and np.median(values[-config.explosion_steps :]) > config.max_grad_norm:
            worst[name[0].upper()] = np.median(values[-config.explosion_steps :])
    if worst:
        which = ", ".join(f"{p} {v:.3g}" for p, v in worst.items())
        return Flag(
            "grad_explosion", f"gradient norm above {config.max_grad_norm:g} (median {which}): training is unstable"
        )
    return None


def d_loss_unstable(history: History, config: MonitorConfig) -> Flag | None:
    """D's loss with a high relative variance or spikes, where a healthy run has low variance."""
    d = _recent(history, "d_loss", config)
    if d is None or len(d) < 2:
        return None
    rel_std = d.std() / max(abs(d.mean()), 1e-8)
    spikes = int(np.sum(d > config.spike_ratio * max(np.median(d), 1e-8)))
    if rel_std > config.max_d_loss_rel_std or spikes > config.max_spike_share * len(d):
        return Flag(
            "d_loss_unstable",
            f"D loss unstable: std/mean {rel_std:.2f}, {spikes} spike(s) above {config.spike_ratio:g}x the median",
        )
    return None


def g_fools_with_garbage(history: History, config: MonitorConfig) -> Flag | None:
    """G's loss falling steadily while D still wins (D(x) high, D(G(z)) low): G fools D with garbage.

    Needs ``d_real``/``d_fake``, D's probabilities, which only the cross-entropy
    losses log (``ganjax.training.gan.d_outputs``); silent for the others.
    """
    g, real, fake = (_recent(history, n, config) for n in ("g_loss", "d_real", "d_fake"))
    if g is None or real is None or fake is None or len(g) < 2:
        return None
    slope = np.polyfit(np.arange(len(g)), g, 1)[0]
    fall = -slope * (len(g) - 1) / max(abs(g.mean()), 1e-8)
    if fall >= config.g_loss_fall and real.mean() >= config.d_wins_real and fake.mean() <= config.d_wins_fake:
        return Flag(
            "g_fools_with_garbage",
            f"G loss fell {fall:.0%} while D still wins (D(x) {real.mean():.2f}, "
            f"D(G(z)) {fake.mean():.2f}): G may be fooling D with garbage",
        )
    return None


def mode_collapse(history: History, config: MonitorConfig) -> Flag | None:
    """Many near-duplicate samples, or samples much closer together than the data (see ``metrics.sample_diversity``)."""
    dup = _recent(history, "duplicate_share", config)
    ratio = _recent(history, "pairwise_distance_ratio", config)
    reasons = []
    if dup is not None and dup[-1] > config.max_duplicate_share:
        reasons.append(f"{dup[-1]:.0%} of samples are near-duplicates")
    if ratio is not None and ratio[-1] < config.min_distance_ratio:
        reasons.append(f"samples are {ratio[-1]:.2f}x as far apart as the data")
    if reasons:
        return Flag("mode_collapse", "mode collapse: " + "; ".join(reasons))
    return None


CHECKS: dict[str, Callable[[History, MonitorConfig], Flag | None]] = {
    "d_loss_zero": d_loss_zero,
    "grad_explosion": grad_explosion,
    "d_loss_unstable": d_loss_unstable,
    "g_fools_with_garbage": g_fools_with_garbage,
    "mode_collapse": mode_collapse,
}


def check_finite(metrics: Mapping[str, np.ndarray], step: int) -> None:
    """Raises :class:`NonFiniteLossError` naming the first NaN/Inf metric and its step.

    ``metrics`` values may be scalars or histories; for a history ``(T,)``
    ending at ``step``, the step of the first bad entry is reported.
    """
    for name, value in metrics.items():
        values = np.asarray(value, np.float64).reshape(-1)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            at = step - (len(values) - 1 - bad[0])
            raise NonFiniteLossError(f"{name} = {values[bad[0]]} at step {at}: training stopped")


@dataclasses.dataclass(frozen=True)
class Monitor:
    """Runs every check of :data:`CHECKS` over a metrics history and says which flags stop training."""

    config: MonitorConfig = MonitorConfig()

    def check(self, history: History) -> list[Flag]:
        """The flags raised by ``history`` (``{name: recent values}``), in :data:`CHECKS` order."""
        flags = (check(history, self.config) for check in CHECKS.values())
        return [flag for flag in flags if flag is not None]

    def should_stop(self, flags: list[Flag]) -> list[Flag]:
        """The flags among ``flags`` that ``config.stop_on`` names (empty: keep training)."""
        return [flag for flag in flags if flag.name in self.config.stop_on]


def stack_history(window: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A list of per-step metrics dicts -> ``{name: (T, ...) array}``, the history the checks read."""
    return {name: np.stack([np.asarray(m[name]) for m in window]) for name in window[0]} if window else {}
