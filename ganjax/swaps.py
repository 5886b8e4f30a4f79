"""Past-opponent swaps: now and then, train for a few steps against an old G or D.

The current G and D (params and BatchNorm statistics) are pushed to a ring of
the last ``history`` snapshots (a :class:`ganjax.replay.ReplayBuffer` in the
state's buffers), after step ``duration`` and then every ``every`` steps (as
each swap window closes, so a snapshot is never the player it replaces). Every
``every`` steps a swap window of ``duration`` steps opens: the swapped player
is replaced by a snapshot drawn uniformly from the ring, and its opponent
trains against it; when the window closes the swapped player's current self
(params, statistics and optimizer state, stashed when the window opened) is put
back exactly. Whatever the old opponent learned during the window is dropped.
(ganhacks #8 "Use stability tricks from RL": "Keep checkpoints from the past of G
and D and occassionaly swap them out for a few iterations"; fictitious play over
past policies, as in Pfau and Vinyals 2016.)

The swaps wrap any train step ``(TrainState, batch) -> (TrainState, metrics)``
and take no gradients themselves; what they keep lives in the state's
``buffers`` (:data:`SNAPSHOTS` and :data:`STASH`), so the state stays a
:class:`ganjax.training.state.TrainState` that checkpoints and samples as usual.

Usage::

    config = swaps.SwapConfig(every=500, duration=50)
    state = swaps.init(state, config)
    step = swaps.with_opponent_swaps(make_step(gan.phases()), config)
    state, metrics = step(state, batch)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ganjax import rng
from ganjax.replay import ReplayBuffer
from ganjax.training.state import Player, TrainState

PyTree = Any
PLAYERS = ("g", "d")
SWAPPED = ("d", "g", "either")
# The names of what the swaps keep in ``TrainState.buffers``.
SNAPSHOTS = "swap_snapshots"
STASH = "swap_stash"


@dataclasses.dataclass(frozen=True)
class SwapConfig:
    """When and whom to swap; hashable, so it can be static under jit.

    Attributes:
      every: a swap window opens at every positive multiple of ``every`` steps (0: no swaps).
      duration: steps a window lasts, fewer than ``every``.
      history: how many past snapshots are kept (k); one is taken every ``every`` steps.
      swapped: the player replaced by its past self: ``'d'`` (G trains against an
        old D), ``'g'`` (D trains against an old G) or ``'either'`` (a fair coin per window).
    """

    every: int = 0
    duration: int = 0
    history: int = 5
    swapped: str = "d"

    def __post_init__(self):
        if self.swapped not in SWAPPED:
            raise ValueError(f"SwapConfig.swapped: unknown player {self.swapped!r}; choose one of {SWAPPED}")
        if self.every < 0:
            raise ValueError(f"SwapConfig.every: must be >= 0, got {self.every}")
        if self.history < 1:
            raise ValueError(f"SwapConfig.history: must be >= 1, got {self.history}")
        if self.every and not 0 < self.duration < self.every:
            raise ValueError(f"SwapConfig.duration: must be in [1, every={self.every}), got {self.duration}")


class Stash(struct.PyTreeNode):
    """The current players put aside while a window plays a past one.

    Attributes:
      players: ``{'g': Player, 'd': Player}`` as they were when the last window opened.
      swapped: booleans ``(2,)``: whether G and D are past snapshots now.
    """

    players: dict[str, Player]
    swapped: jax.Array


def _weights(player: Player) -> dict[str, PyTree]:
    """What a snapshot of a player holds: its params and BatchNorm statistics."""
    return {"params": player.params, "batch_stats": player.batch_stats}


def init(state: TrainState, config: SwapConfig) -> TrainState:
    """``state`` with an empty ring of ``config.history`` snapshots and a stash; unchanged when swaps are off."""
    if not config.every:
        return state
    players = {name: state.players[name] for name in PLAYERS}
    snapshots = ReplayBuffer.like({name: _weights(p) for name, p in players.items()}, config.history)
    # A copy, so that the wrapped step may donate the state.
    stash = Stash(players=jax.tree.map(jnp.copy, players), swapped=jnp.zeros((len(PLAYERS),), bool))
    return state.replace(buffers={**state.buffers, SNAPSHOTS: snapshots, STASH: stash})


def _select(pred: jax.Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _open_window(state: TrainState, config: SwapConfig) -> TrainState:
    """Stashes the current players and loads a past snapshot into the swapped one (when a window opens now)."""
    t, snapshots, stash = state.step, state.buffers[SNAPSHOTS], state.buffers[STASH]
    key = rng.step_key(state.key, t)
    opens = (t > 0) & (t % config.every == 0) & (snapshots.size > 0)
    if config.swapped == "either":
        swap_d = jax.random.bernoulli(rng.named(key, "swap_player"))
        which = jnp.stack([~swap_d, swap_d])
    else:
        which = jnp.array([name == config.swapped for name in PLAYERS])
    which = which & opens
    past = snapshots.sample(rng.named(key, "swap_snapshot"), 1)
    players = dict(state.players)
    for i, name in enumerate(PLAYERS):
        player = players[name]
        loaded = player.replace(**jax.tree.map(lambda a: a[0], past[name]))
        players[name] = _select(which[i], loaded, player)
    current = {name: state.players[name] for name in PLAYERS}
    stash = Stash(players=_select(opens, current, stash.players), swapped=_select(opens, which, stash.swapped))
    return state.replace(players=players, buffers={**state.buffers, STASH: stash})


def _close_window(state: TrainState, config: SwapConfig) -> TrainState:
    """After a window's last step: puts the stashed current players back, then snapshots them."""
    snapshots, stash = state.buffers[SNAPSHOTS], state.buffers[STASH]
    closes = state.step % config.every == config.duration  # steps completed
    players = dict(state.players)
    for i, name in enumerate(PLAYERS):
        players[name] = _select(closes & stash.swapped[i], stash.players[name], players[name])
    current = {name: _weights(players[name]) for name in PLAYERS}
    snapshots = _select(closes, snapshots.push_one(current), snapshots)
    stash = stash.replace(swapped=stash.swapped & ~closes)
    return state.replace(players=players, buffers={**state.buffers, SNAPSHOTS: snapshots, STASH: stash})


def with_opponent_swaps(
    step_fn: Callable[[TrainState, Any], tuple[TrainState, dict]], config: SwapConfig
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """``step_fn(state, batch)`` with past-opponent swap windows around it; jitted, state donated.

    Args:
      step_fn: a train step ``(TrainState, batch) -> (TrainState, metrics)``, e.g.
        ``make_step(gan.phases())``; it sees the swapped-in player as ``state.players[name]``.
      config: when and whom to swap; ``every=0`` runs ``step_fn`` unchanged. The
        state must come from :func:`init` with the same config.

    Returns:
      ``step(state, batch) -> (state, metrics)``; metrics gain ``'swapped_g'`` and
      ``'swapped_d'`` (1.0 while that player is a past snapshot during this step).
    """

    def step(state: TrainState, batch) -> tuple[TrainState, dict]:
        if not config.every:
            state, metrics = step_fn(state, batch)
            return state, {**metrics, "swapped_g": jnp.float32(0), "swapped_d": jnp.float32(0)}
        if SNAPSHOTS not in state.buffers:
            raise ValueError(
                "with_opponent_swaps: the state keeps no snapshots; start it with swaps.init(state, config)"
            )
        state = _open_window(state, config)
        swapped = state.buffers[STASH].swapped.astype(jnp.float32)
        state, metrics = step_fn(state, batch)
        state = _close_window(state, config)
        return state, {**metrics, "swapped_g": swapped[0], "swapped_d": swapped[1]}

    return jax.jit(step, donate_argnums=0)
