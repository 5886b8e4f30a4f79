"""Past-opponent swaps: now and then, train for a few steps against an old G or D.

The current G and D (params and BatchNorm statistics) are pushed to a ring of
the last ``history`` snapshots, kept in memory inside the jitted state, after
step ``duration`` and then every ``every`` steps (as each swap window closes,
so a snapshot is never the player it replaces). Every ``every`` steps a swap window of
``duration`` steps opens: the swapped player is replaced by a snapshot drawn
uniformly from the ring, and its opponent trains against it; when the window
closes the swapped player's current self (params, statistics and optimizer
state, stashed when the window opened) is put back exactly. Whatever the old
opponent learned during the window is dropped. (ganhacks trick 7, seed 000 §7:
"every now and then, swap in past checkpoints of G and D for a few
iterations"; fictitious play over past policies, as in Pfau and Vinyals 2016.)

Usage::

    step = swaps.with_opponent_swaps(train_step, swaps.SwapConfig(every=500, duration=50))
    state = swaps.SwapState.create(gan_state, swap_config)
    state, metrics = step(state, batch)   # state.gan is the GANState
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ganjax.train import GANState, Player, step_keys

PyTree = Any
PLAYERS = ("g", "d")
SWAPPED = ("d", "g", "either")


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
        if self.every < 0 or self.history < 1:
            raise ValueError(f"SwapConfig: every must be >= 0 and history >= 1, got {self}")
        if self.every and not 0 < self.duration < self.every:
            raise ValueError(f"SwapConfig.duration: must be in [1, every={self.every}), got {self.duration}")


class Snapshots(struct.PyTreeNode):
    """The last ``capacity`` snapshots of a pytree, stacked along a leading axis (a FIFO ring).

    Attributes:
      items: the pytree with every leaf ``(capacity, *leaf_shape)``; slot ``i % capacity`` holds push ``i``.
      count: how many snapshots were pushed in all.
    """

    items: PyTree
    count: jax.Array

    @classmethod
    def create(cls, like: PyTree, capacity: int) -> Snapshots:
        """An empty ring for snapshots shaped like ``like``."""
        items = jax.tree.map(lambda a: jnp.zeros((capacity, *jnp.shape(a)), jnp.result_type(a)), like)
        return cls(items=items, count=jnp.zeros((), jnp.int32))

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.items)[0].shape[0]

    @property
    def size(self) -> jax.Array:
        return jnp.minimum(self.count, self.capacity)

    def push(self, tree: PyTree) -> Snapshots:
        slot = self.count % self.capacity
        return self.replace(items=jax.tree.map(lambda s, a: s.at[slot].set(a), self.items, tree),
                            count=self.count + 1)

    def get(self, index: jax.Array) -> PyTree:
        return jax.tree.map(lambda s: s[index], self.items)

    def sample(self, key: jax.Array) -> PyTree:
        """A stored snapshot drawn uniformly (slot 0 while the ring is empty)."""
        return self.get(jax.random.randint(key, (), 0, jnp.maximum(self.size, 1)))


def _weights(player: Player) -> dict[str, PyTree]:
    """What a snapshot of a player holds: its params and BatchNorm statistics."""
    return {"params": player.params, "batch_stats": player.batch_stats}


class SwapState(struct.PyTreeNode):
    """A :class:`ganjax.train.GANState` with its past snapshots and, during a window, the stashed current players.

    Attributes:
      gan: the GAN state the wrapped step trains.
      snapshots: past ``{'g': weights, 'd': weights}`` (see :class:`Snapshots`).
      stash: the current ``{'g': Player, 'd': Player}`` as they were when the window opened.
      swapped: booleans ``(2,)``: whether G and D are swapped out now.
    """

    gan: GANState
    snapshots: Snapshots
    stash: dict[str, Player]
    swapped: jax.Array

    @classmethod
    def create(cls, gan: GANState, config: SwapConfig) -> SwapState:
        players = {name: getattr(gan, name) for name in PLAYERS}
        # A copy, so that the wrapped step may donate the state.
        return cls(gan=gan, snapshots=Snapshots.create({k: _weights(p) for k, p in players.items()}, config.history),
                   stash=jax.tree.map(jnp.copy, players), swapped=jnp.zeros((len(PLAYERS),), bool))

    @property
    def step(self) -> jax.Array:
        return self.gan.step


def _select(pred: jax.Array, on_true: PyTree, on_false: PyTree) -> PyTree:
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def _open_window(state: SwapState, config: SwapConfig) -> SwapState:
    """Stashes the current players and loads a past snapshot into the swapped one (when a window opens now)."""
    t = state.gan.step
    keys = step_keys(state.gan, "swap_snapshot", "swap_player")
    opens = (t > 0) & (t % config.every == 0) & (state.snapshots.size > 0)
    if config.swapped == "either":
        swap_d = jax.random.bernoulli(keys["swap_player"])
        which = jnp.stack([~swap_d, swap_d])
    else:
        which = jnp.array([name == config.swapped for name in PLAYERS])
    which = which & opens
    past = state.snapshots.sample(keys["swap_snapshot"])
    gan = state.gan
    for i, name in enumerate(PLAYERS):
        player = getattr(gan, name)
        gan = gan.replace(**{name: _select(which[i], player.replace(**past[name]), player)})
    stash = {name: getattr(state.gan, name) for name in PLAYERS}
    return state.replace(gan=gan, stash=_select(opens, stash, state.stash), swapped=_select(opens, which,
                                                                                            state.swapped))


def _close_window(state: SwapState, config: SwapConfig) -> SwapState:
    """After a window's last step: puts the stashed current players back, then snapshots them."""
    closes = state.gan.step % config.every == config.duration  # steps completed
    gan = state.gan
    for i, name in enumerate(PLAYERS):
        gan = gan.replace(**{name: _select(closes & state.swapped[i], state.stash[name], getattr(gan, name))})
    swapped = state.swapped & ~closes
    current = {name: _weights(getattr(gan, name)) for name in PLAYERS}
    snapshots = _select(closes, state.snapshots.push(current), state.snapshots)
    return state.replace(gan=gan, swapped=swapped, snapshots=snapshots)


def with_opponent_swaps(step_fn: Callable[[GANState, Any], tuple[GANState, dict]],
                        config: SwapConfig) -> Callable[[SwapState, Any], tuple[SwapState, dict]]:
    """``step_fn(gan_state, batch)`` on a :class:`SwapState`, with past-opponent swap windows; jitted, state donated.

    Args:
      step_fn: a step ``(GANState, batch) -> (GANState, metrics)``, e.g.
        ``functools.partial(train.train_step, config=step_config)``.
      config: when and whom to swap; ``every=0`` runs ``step_fn`` unchanged.

    Returns:
      ``step(state, batch) -> (state, metrics)``; metrics gain ``'swapped_g'`` and
      ``'swapped_d'`` (1.0 while that player is a past snapshot during this step).
    """

    def step(state: SwapState, batch) -> tuple[SwapState, dict]:
        if config.every:
            state = _open_window(state, config)
        swapped = state.swapped.astype(jnp.float32)
        gan, metrics = step_fn(state.gan, batch)
        state = state.replace(gan=gan)
        if config.every:
            state = _close_window(state, config)
        return state, {**metrics, "swapped_g": swapped[0], "swapped_d": swapped[1]}

    return jax.jit(step, donate_argnums=0)
