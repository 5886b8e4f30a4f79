"""A train step as a list of phases, and the one player update every phase runs.

A :class:`Phase` is a pure loss over ``(params, inputs)`` that names the
player(s) it updates and how often it runs: every step, every ``every``-th step
(lazy regularization, as StyleGAN2-ADA's ``Dreg``/``Greg`` phases, Karras et
al. 2020), or ``repeat`` times per step, each on its own real batch (WGAN's
``n_critic`` critic updates, Arjovsky et al. 2017). :func:`make_step` runs the
phases in order, each seeing the players the earlier ones updated::

    phases = (
        Phase("d", ("d",), d_main_loss, repeat=n_critic),
        Phase("d_reg", ("d",), r1_loss, every=16),
        Phase("g", ("g",), g_main_loss),
    )
    step = jax.jit(make_step(phases), donate_argnums=0)
    state, metrics = step(state, batch)   # batch: n_critic real batches, one after another

:func:`update_players` is the only place where gradients are taken and
applied: value and gradient of the loss, mean over the device axis, the
optimizer update, the new BatchNorm statistics, the moving average of the
player's params when the state keeps one, and the gradient norm as a metric.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from ganjax import rng
from ganjax.training.state import TrainState

PyTree = Any
Metrics = dict[str, jax.Array]


class PhaseInputs(NamedTuple):
    """What a phase's loss sees besides the params it differentiates.

    Attributes:
      state: the state before this phase's update (players updated by earlier phases of the step are new).
      batch: this repetition's real batch, this device's rows.
      key: this step's (and repetition's) key; take named keys with :func:`ganjax.rng.named`.
      axis_name: the mapped device axis when run per device, or None.
      shared: what earlier phases of this step published (:attr:`PhaseOutput.shared`).
    """

    state: TrainState
    batch: Mapping[str, jax.Array]
    key: jax.Array
    axis_name: str | None
    shared: Mapping[str, Any]


class PhaseOutput(NamedTuple):
    """What a phase's loss returns beside its value (the ``aux`` of its gradient).

    Attributes:
      metrics: scalars to report (averaged over repetitions and devices).
      batch_stats: the new BatchNorm statistics of the players it updates, by name
        (a player left out keeps its statistics).
      buffers: ring buffers of the state it replaces (e.g. a replay pool with this batch pushed).
      shared: values for the later phases of this step (e.g. CycleGAN's fakes, made before G's update).
    """

    metrics: Mapping[str, jax.Array] = {}
    batch_stats: Mapping[str, PyTree] = {}
    buffers: Mapping[str, Any] = {}
    shared: Mapping[str, Any] = {}


LossFn = Callable[[dict[str, PyTree], PhaseInputs], tuple[jax.Array | dict[str, jax.Array], PhaseOutput]]


@dataclasses.dataclass(frozen=True)
class Phase:
    """One update of one or more players, and when it runs.

    Attributes:
      name: names its metrics (a one-player phase reports ``{name}_grad_norm``).
      players: the players it updates; its loss gets their params as ``{name: params}``.
      loss: ``(params, inputs) -> (value, PhaseOutput)``. ``value`` is one scalar that
        every player of the phase minimises, or ``{player: scalar}`` when they
        minimise different losses of one forward pass (VAE-GAN's encoder and decoder).
      every: runs at steps ``0, every, 2 * every, ...`` (lazy regularization: scale its weight by ``every``).
      repeat: updates per step, each on its own real batch (WGAN's critic: ``n_critic``).
    """

    name: str
    players: tuple[str, ...]
    loss: LossFn
    every: int = 1
    repeat: int = 1

    def __post_init__(self):
        if not self.players:
            raise ValueError(f"Phase {self.name!r}: names no player to update")
        if self.every < 1 or self.repeat < 1:
            raise ValueError(
                f"Phase {self.name!r}: every and repeat must be at least 1, got {self.every}, {self.repeat}"
            )


def batches_per_step(phases: tuple[Phase, ...]) -> int:
    """How many real batches one step takes: the most repetitions of any phase."""
    return max(phase.repeat for phase in phases)


def _grads(loss: LossFn, params: dict[str, PyTree], inputs: PhaseInputs):
    """``(values, grads, output)``; a per-player loss gives each player the gradient of its own scalar."""
    values, pullback, output = jax.vjp(lambda p: loss(p, inputs), params, has_aux=True)
    if isinstance(values, Mapping):
        zeros = {name: jnp.zeros_like(v) for name, v in values.items()}
        grads = {name: pullback({**zeros, name: jnp.ones_like(values[name])})[0][name] for name in params}
    else:
        (grads,) = pullback(jnp.ones_like(values))
    return values, grads, output


def update_players(phase: Phase, inputs: PhaseInputs) -> tuple[TrainState, Metrics, Mapping[str, Any]]:
    """Runs ``phase`` once: the one update of every player.

    Returns:
      The state with the phase's players updated (and their moving averages and
      the buffers it replaced), its metrics with each player's gradient norm,
      and what it shares with later phases.
    """
    state = inputs.state
    params = {name: state.players[name].params for name in phase.players}
    _, grads, output = _grads(phase.loss, params, inputs)
    grads, stats = rng.mean_over_devices((grads, dict(output.batch_stats)), inputs.axis_name)
    players, ema = dict(state.players), dict(state.ema)
    metrics = dict(output.metrics)
    for name in phase.players:
        players[name] = players[name].apply_gradients(grads[name], stats.get(name, players[name].batch_stats))
        if name in ema:
            ema[name] = ema[name].update(players[name].params)
        norm_name = phase.name if len(phase.players) == 1 else name
        metrics[f"{norm_name}_grad_norm"] = optax.tree.norm(grads[name])
    state = state.replace(players=players, ema=ema, buffers={**state.buffers, **output.buffers})
    return state, metrics, output.shared


def _repetitions(
    phase: Phase, state: TrainState, chunks: PyTree, total: int, axis_name: str | None, shared: Mapping[str, Any]
) -> tuple[TrainState, Metrics, Mapping[str, Any]]:
    """``phase.repeat`` updates on the last ``repeat`` chunks; the last one draws from the step's own key.

    Unrolled: XLA:CPU runs convolutions inside a while loop (``lax.scan``) about 50 times slower.
    """
    key = rng.step_key(state.key, state.step)
    runs = []
    for j in range(phase.repeat):
        last = j == phase.repeat - 1
        rep_key = key if last else jax.random.fold_in(rng.named(key, f"{phase.name}/repeat"), j)
        batch = jax.tree.map(operator.itemgetter(total - phase.repeat + j), chunks)
        state, metrics, out = update_players(phase, PhaseInputs(state, batch, rep_key, axis_name, shared))
        runs.append(metrics)
    metrics = jax.tree.map(lambda *values: sum(values) / len(values), *runs)
    return state, metrics, {**shared, **out}


def _now_and_then(
    phase: Phase, state: TrainState, chunks: PyTree, total: int, axis_name: str | None, shared: Mapping[str, Any]
) -> tuple[TrainState, Metrics]:
    """``phase`` at multiples of ``phase.every`` (``lax.cond``), its metrics 0 on the other steps.

    A phase that runs now and then shares nothing with the phases after it.
    """
    run = lambda s: _repetitions(phase, s, chunks, total, axis_name, shared)[:2]
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), jax.eval_shape(run, state)[1])
    return lax.cond(state.step % phase.every == 0, run, lambda s: (s, zeros), state)


def make_step(phases: tuple[Phase, ...]) -> Callable[..., tuple[TrainState, Metrics]]:
    """``step(state, batch, axis_name=None) -> (state, metrics)`` running ``phases`` in order.

    ``batch`` holds :func:`batches_per_step` real batches one after another
    along its first axis; a phase repeated ``r`` times uses the last ``r`` of
    them, so every other phase sees the last. A phase with ``every > 1`` runs
    only at multiples of ``every`` (``lax.cond``); on the other steps its
    metrics are 0. Metrics are averaged over devices. Wrap the step in
    ``jax.jit(..., donate_argnums=0)`` or :func:`ganjax.training.devices.data_parallel`.
    """
    phases = tuple(phases)
    total = batches_per_step(phases)

    def step(state: TrainState, batch: Mapping[str, jax.Array], axis_name: str | None = None):
        rows = jax.tree.leaves(batch)[0].shape[0]
        if rows % total:
            raise ValueError(f"train step: a batch of {rows} rows does not split into {total} real batches")
        chunks = jax.tree.map(lambda a: a.reshape(total, -1, *a.shape[1:]), dict(batch))
        metrics: Metrics = {}
        shared: Mapping[str, Any] = {}
        for phase in phases:
            if phase.every == 1:
                state, phase_metrics, shared = _repetitions(phase, state, chunks, total, axis_name, shared)
            else:
                state, phase_metrics = _now_and_then(phase, state, chunks, total, axis_name, shared)
            metrics.update(phase_metrics)
        return state.replace(step=state.step + 1), rng.mean_over_devices(metrics, axis_name)

    return step
