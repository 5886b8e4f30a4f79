"""Failure flags over the recent metrics of a GAN run, judged against the run's own earlier level.

Every check is a pure function ``(history, config) -> Flag | None`` over a
history ``{name: values over recent steps}`` (the metrics dicts of
:func:`ganjax.training.phases.make_step`'s step, stacked; NumPy or JAX arrays),
oldest first: its last ``config.window`` steps are the *recent* ones judged,
the up to ``config.baseline`` steps before them the run's *earlier level*. The
signs are those of the GAN training folklore (ganhacks, Chintala et al. 2016,
#10 "Track failures early"): D's loss going to 0, exploding or vanishing gradients, a D
loss that jumps about instead of settling, G's loss falling while D still wins
(G fooling D with garbage), and mode collapse.

A batch's loss is a noisy estimate of the loss, and a healthy run's batches
scatter widely about its level (docs/monitor.md has the measurements behind
every threshold). So the checks judge levels, not batches: medians, and medians of blocks of
``config.smooth`` steps, compared with the loss's own batch-to-batch spread or
with its earlier level, never one batch against a fixed scale.

Example::

  monitor = Monitor(MonitorConfig(stop_on=("grad_explosion",)))
  flags = monitor.check(history)         # every N steps, on the last config.kept steps
  if monitor.should_stop(flags): ...
  replay(trace, every=50)                # the flags a run logging every 50 steps would have raised
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
      window: the recent steps each check judges.
      baseline: the steps before those that are the run's earlier level (the history keeps ``kept`` steps).
      smooth: steps per block median, the level of a noisy metric judged by the trend checks.
      warmup: in a history of fewer steps (the start of a run, where the losses move fast and G's samples are
        alike by design) only outright failures are flagged: D's loss at its least and exploding or vanishing gradients.
      d_loss_floor: D's mean loss over the window below this is "near its least" (0 for hard targets; an
        experiment adds the least its smoothed or flipped targets allow).
      max_grad_norm: a gradient norm of G or D (median of the last ``explosion_steps``) above this ...
      explosion_ratio: ... and this many times its earlier median (its own median over the window
        while there is no earlier level) is an explosion.
      explosion_steps: how many recent steps that median covers (so one spike is not an explosion).
      vanish_ratio: G's gradient norm (median of the last ``explosion_steps``) below this share of its
        earlier median, or below ``min_grad_norm``, has vanished.
      min_grad_norm: a gradient norm below this is 0 whatever the run's scale.
      max_d_loss_swing: D's loss level both rising and falling over the window by more than this many
        times its batch-to-batch spread is unstable.
      g_loss_fall: G's smoothed loss falling by at least this many of its batch-to-batch spreads over the window ...
      d_wins_real: ... while D(x) at least this ...
      d_wins_fake: ... and D(G(z)) at most this (window medians): G fools D with garbage.
      max_duplicate_share: a larger share of near-duplicate samples is mode collapse.
      min_distance_ratio: a smaller samples-to-data mean pairwise distance ratio is mode collapse.
      collapse_prefixes: the prefixes of the ``duplicate_share`` and ``pairwise_distance_ratio`` that mode collapse
        reads, each judged on its own ('' reads the plain names; a CycleGAN's ``a_to_b_`` and ``b_to_a_`` read
        each direction's).
      restarts: steps after which the run trains something new (PGGAN's stages, whose new layers move the losses):
        a check reads only the steps since the latest restart, so each segment has its own earlier level and warmup.
      stop_on: names of the flags that should stop training.
    """

    window: int = 200
    baseline: int = 400
    smooth: int = 25
    warmup: int = 400
    d_loss_floor: float = 0.05
    max_grad_norm: float = 100.0
    explosion_ratio: float = 10.0
    explosion_steps: int = 20
    vanish_ratio: float = 0.1
    min_grad_norm: float = 1e-4
    max_d_loss_swing: float = 6.0
    g_loss_fall: float = 2.0
    d_wins_real: float = 0.9
    d_wins_fake: float = 0.1
    max_duplicate_share: float = 0.5
    min_distance_ratio: float = 0.4
    collapse_prefixes: tuple[str, ...] = ("",)
    restarts: tuple[int, ...] = ()
    stop_on: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = set(self.stop_on) - set(CHECKS)
        if unknown:
            raise ValueError(f"MonitorConfig.stop_on: unknown flags {sorted(unknown)}; choose from {sorted(CHECKS)}")
        for field in ("window", "smooth", "explosion_steps"):
            if getattr(self, field) < 1:
                raise ValueError(f"MonitorConfig.{field} must be at least 1, got {getattr(self, field)}")
        if self.window < 2:
            raise ValueError(f"MonitorConfig.window must be at least 2, got {self.window}")
        if self.baseline < 0:
            raise ValueError(f"MonitorConfig.baseline must be at least 0, got {self.baseline}")
        if self.warmup < 0:
            raise ValueError(f"MonitorConfig.warmup must be at least 0, got {self.warmup}")
        if any(restart < 0 for restart in self.restarts):
            raise ValueError(f"MonitorConfig.restarts must be steps of at least 0, got {self.restarts}")

    @property
    def kept(self) -> int:
        """How many recent steps of history the checks read: the window and the earlier level before it."""
        return self.window + self.baseline

    def reads(self, step: int) -> int:
        """How many of the steps up to ``step`` a check at ``step`` reads: ``kept``, or those since the latest
        restart before it."""
        latest = max((restart for restart in self.restarts if restart < step), default=0)
        return min(self.kept, step - latest)


def _values(history: History, name: str, config: MonitorConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """``(earlier, recent)`` values of ``name``: the last ``window`` steps and up to ``baseline`` before them."""
    if name not in history:
        return None
    values = np.asarray(history[name], np.float64).reshape(-1)[-config.kept :]
    if not len(values):
        return None
    split = max(len(values) - config.window, 0)
    return values[:split], values[split:]


def _warming_up(history: History, config: MonitorConfig) -> bool:
    """Whether ``history`` is shorter than ``config.warmup`` steps (at most ``kept``, the longest history)."""
    steps = max((len(np.asarray(v).reshape(-1)) for v in history.values()), default=0)
    return steps < min(config.warmup, config.kept)


def _block_medians(values: np.ndarray, span: int) -> np.ndarray:
    """Medians of consecutive blocks of ``span`` steps, the last block ending at the last value: the level of a
    noisy metric, one independent estimate per block."""
    blocks = len(values) // span
    return np.median(values[len(values) - blocks * span :].reshape(blocks, span), axis=1)


def _spread(values: np.ndarray) -> float:
    """The batch-to-batch spread of ``values``: the interquartile range of their step-to-step changes over
    sqrt(2), the interquartile range of their noise when it is independent from step to step, whatever the level."""
    q1, q3 = np.percentile(np.diff(values), [25, 75])
    return float(max((q3 - q1) / np.sqrt(2), 1e-8))


def d_loss_zero(history: History, config: MonitorConfig) -> Flag | None:
    """D's mean loss over the window near its least (below ``d_loss_floor``): D separates real from fake on every
    batch and G gets no useful gradient.

    The mean, not the median: a D that wins most batches while G still fools it
    now and then (a loss spike) is a GAN at work, as early in a healthy Stacked
    MNIST run; a D that wins every batch is not.
    """
    d = _values(history, "d_loss", config)
    if d is not None and d[1].mean() < config.d_loss_floor:
        return Flag(
            "d_loss_zero",
            f"D loss {d[1].mean():.3g} is at its least (below {config.d_loss_floor:.3g}): D wins outright and G "
            "learns nothing",
        )
    return None


def grad_explosion(history: History, config: MonitorConfig) -> Flag | None:
    """A gradient norm of G or D far above its earlier level and above ``max_grad_norm`` (medians).

    The absolute bound alone cries wolf: a healthy norm's scale depends on the
    model (BatchNorm in D makes it large), and it drifts by several times as D
    sharpens; a diverging run's grows by orders of magnitude.
    """
    worst = {}
    for name in ("g_grad_norm", "d_grad_norm"):
        values = _values(history, name, config)
        if values is None:
            continue
        earlier, recent = values
        now = np.median(recent[-config.explosion_steps :])
        before = np.median(earlier) if len(earlier) else np.median(recent)
        if now > config.max_grad_norm and now > config.explosion_ratio * before:
            worst[name[0].upper()] = (now, before)
    if worst:
        which = ", ".join(f"{p} {now:.3g} (was {before:.3g})" for p, (now, before) in worst.items())
        return Flag("grad_explosion", f"gradient norm exploded (median {which}): training is diverging")
    return None


def vanishing_gradients(history: History, config: MonitorConfig) -> Flag | None:
    """G's gradient norm collapsed: below ``vanish_ratio`` of its earlier median, or below ``min_grad_norm``.

    With the saturating minimax loss and a D that rejects every fake, ``log(1 - D(G(z)))``
    is flat and G stops learning (Goodfellow et al. 2014, section 3; ganhacks tip 2).
    """
    values = _values(history, "g_grad_norm", config)
    if values is None:
        return None
    earlier, recent = values
    now = np.median(recent[-config.explosion_steps :])
    collapsed = len(earlier) and now < config.vanish_ratio * np.median(earlier)
    if collapsed or now < config.min_grad_norm:
        was = f" (was {np.median(earlier):.3g})" if len(earlier) else ""
        return Flag("vanishing_gradients", f"G's gradient norm vanished: median {now:.3g}{was}; G learns nothing")
    return None


def d_loss_unstable(history: History, config: MonitorConfig) -> Flag | None:
    """D's loss going up and down: its level both rose and fell over the window by many of its earlier batch spreads.

    A healthy D loss is noisy from batch to batch but its level settles or
    drifts one way; an unstable one goes up and down (ganhacks #10 "Track failures early":
    "huge variance and spiking"). The level is the median of each
    ``smooth`` steps; the unit is the loss's batch-to-batch spread (the larger
    of the earlier level's and the window's, so a quiet start does not make a
    unit too small), so the bound follows the loss's own scale (a Wasserstein
    critic's has no fixed one); a loss falling to 0 is not called unstable.
    Silent in the warmup.
    """
    d = _values(history, "d_loss", config)
    if d is None or _warming_up(history, config) or len(d[0]) < 2 or len(d[1]) < 2 * config.smooth:
        return None
    earlier, recent = d
    level = _block_medians(recent, config.smooth)
    rise = np.max(level[1:] - np.minimum.accumulate(level)[:-1])
    fall = np.max(np.maximum.accumulate(level)[:-1] - level[1:])
    swing = min(rise, fall) / max(_spread(earlier), _spread(recent))
    if swing > config.max_d_loss_swing:
        return Flag(
            "d_loss_unstable",
            f"D loss unstable: its level rose and fell by {swing:.1f}x its batch-to-batch spread",
        )
    return None


def g_fools_with_garbage(history: History, config: MonitorConfig) -> Flag | None:
    """G's smoothed loss falling steadily while D still wins (D(x) high, D(G(z)) low): G fools D with garbage.

    Needs ``d_real``/``d_fake``, D's probabilities, which only the cross-entropy
    losses log (``ganjax.training.gan.d_outputs``); silent for the others, and in
    the warmup, where G's loss falls as it first catches up with D.
    """
    g, real, fake = (_values(history, n, config) for n in ("g_loss", "d_real", "d_fake"))
    if g is None or real is None or fake is None or _warming_up(history, config) or len(g[1]) < 2 * config.smooth:
        return None
    level = _block_medians(g[1], config.smooth)
    slope = np.polyfit(np.arange(len(level)), level, 1)[0]
    fall = -slope * (len(level) - 1) / _spread(g[1])
    real, fake = np.median(real[1]), np.median(fake[1])
    if fall >= config.g_loss_fall and real >= config.d_wins_real and fake <= config.d_wins_fake:
        return Flag(
            "g_fools_with_garbage",
            f"G loss fell {fall:.1f}x its batch spread while D still wins (D(x) {real:.2f}, "
            f"D(G(z)) {fake:.2f}): G may be fooling D with garbage",
        )
    return None


def mode_collapse(history: History, config: MonitorConfig) -> Flag | None:
    """Many near-duplicate samples, or samples much closer together than the data (see ``metrics.sample_diversity``),
    under any of ``config.collapse_prefixes``.

    Silent in the warmup: a G that has barely trained maps every z to nearly one image.
    """
    if _warming_up(history, config):
        return None
    reasons = []
    for prefix in config.collapse_prefixes:
        dup = _values(history, f"{prefix}duplicate_share", config)
        ratio = _values(history, f"{prefix}pairwise_distance_ratio", config)
        of = f"{prefix.rstrip('_')}: " if prefix else ""
        if dup is not None and dup[1][-1] > config.max_duplicate_share:
            reasons.append(f"{of}{dup[1][-1]:.0%} of samples are near-duplicates")
        if ratio is not None and ratio[1][-1] < config.min_distance_ratio:
            reasons.append(f"{of}samples are {ratio[1][-1]:.2f}x as far apart as the data")
    if reasons:
        return Flag("mode_collapse", "mode collapse: " + "; ".join(reasons))
    return None


CHECKS: dict[str, Callable[[History, MonitorConfig], Flag | None]] = {
    "d_loss_zero": d_loss_zero,
    "grad_explosion": grad_explosion,
    "vanishing_gradients": vanishing_gradients,
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

    def check(self, history: History, evaluated: Mapping[str, float] | None = None) -> list[Flag]:
        """The flags raised by ``history`` (``{name: recent values}``), in :data:`CHECKS` order.

        ``evaluated``: the values of the evaluations made since the last check (``duplicate_share``, ...),
        each read as a history of one value; the live hook and :func:`replay` both pass them this way.
        """
        history = {**history, **{name: np.array([value]) for name, value in (evaluated or {}).items()}}
        flags = (check(history, self.config) for check in CHECKS.values())
        return [flag for flag in flags if flag is not None]

    def should_stop(self, flags: list[Flag]) -> list[Flag]:
        """The flags among ``flags`` that ``config.stop_on`` names (empty: keep training)."""
        return [flag for flag in flags if flag.name in self.config.stop_on]


def stack_history(window: list[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A list of per-step metrics dicts -> ``{name: (T, ...) array}``, the history the checks read.

    The names are the last step's, each stacked over the steps that have it: a
    run resumed with another objective may drop a metric (a penalty) or add one.
    """
    if not window:
        return {}
    return {name: np.stack([np.asarray(m[name]) for m in window if name in m]) for name in window[-1]}


def replay(
    metrics: Mapping[str, np.ndarray],
    every: int,
    config: MonitorConfig = MonitorConfig(),
    evaluations: Mapping[int, Mapping[str, float]] | None = None,
) -> list[tuple[int, list[Flag]]]:
    """The flags a run's monitor raises at each logging step, replayed from the run's per-step metrics.

    Checks as ``ganjax.run.Watch`` does in a run that logs every ``every``
    steps: at each multiple of ``every`` and at the last step, on the last
    ``config.kept`` steps (:meth:`MonitorConfig.reads`: fewer after a restart), with the evaluations made since the
    previous check.

    Args:
      metrics: ``{name: (T,) values}``, entry ``i`` being step ``i + 1``'s.
      every: steps between checks (``run.log_every``).
      config: the monitor's settings.
      evaluations: ``{step: {name: value}}``, e.g. ``duplicate_share`` at the evaluation steps.

    Returns:
      ``(step, flags)`` per check, in step order.

    Raises:
      ValueError: naming ``every`` below 1, or ``metrics`` of unequal lengths.
    """
    if every < 1:
        raise ValueError(f"replay: every must be at least 1, got {every}")
    lengths = {len(np.asarray(values).reshape(-1)) for values in metrics.values()}
    if len(lengths) > 1:
        raise ValueError(f"replay: metrics have different lengths {sorted(lengths)}")
    steps = lengths.pop() if lengths else 0
    checked = [*range(every, steps + 1, every), *([steps] if steps % every else [])]
    monitor, evaluations, flags = Monitor(config), evaluations or {}, []
    for before, step in zip([0, *checked], checked):
        history = {
            name: np.asarray(values)[max(step - config.reads(step), 0) : step] for name, values in metrics.items()
        }
        evaluated = {}
        for at in sorted(at for at in evaluations if before < at <= step):
            evaluated.update(evaluations[at])
        flags.append((step, monitor.check(history, evaluated)))
    return flags
