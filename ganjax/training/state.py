"""The run state: players (each with its own params, statistics and optimizer) and the state's options.

A :class:`Player` is one trained network: G, D, an encoder, one of CycleGAN's
four. A :class:`TrainState` holds the players by name, the step count and the
run's key, plus two options that the one player update
(:func:`ganjax.training.phases.update_players`) honours without any switch in
the step: an exponential moving average kept for some players (``ema``) and
ring buffers that phases read and push (``buffers``, e.g. replayed fakes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from ganjax import rng
from ganjax.nn.names import FEATURES
from ganjax.optim import EMA

PyTree = Any


class Player(struct.PyTreeNode):
    """One trained network: its params, BatchNorm statistics, optimizer and optimizer state."""

    params: PyTree
    batch_stats: PyTree
    opt_state: optax.OptState
    apply_fn: Callable = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(cls, module: nn.Module, tx: optax.GradientTransformation, key: jax.Array, *inputs, **kwargs) -> Player:
        """Initialises ``module`` on ``inputs`` (with ``train=False``) and ``tx`` on its params.

        The init draws through :func:`ganjax.rng.flat_draws`: the params of ``key``, compiled faster.
        """
        params_key, noise_key, dropout_key = jax.random.split(rng.flat_draws(key), 3)
        variables = module.init(
            {"params": params_key, "noise": noise_key, "dropout": dropout_key}, *inputs, train=False, **kwargs
        )
        return cls.from_variables(variables, module.apply, tx)

    @classmethod
    def from_variables(
        cls, variables: Mapping[str, PyTree], apply_fn: Callable, tx: optax.GradientTransformation
    ) -> Player:
        """A player of existing ``{'params', 'batch_stats'?}`` variables, its optimizer state fresh."""
        params = variables["params"]
        return cls(
            params=params,
            batch_stats=variables.get("batch_stats", {}),
            opt_state=tx.init(params),
            apply_fn=apply_fn,
            tx=tx,
        )

    def _variables(self, params: PyTree) -> dict[str, PyTree]:
        return {"params": params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}

    def __call__(self, params: PyTree, *inputs, train: bool, rngs=None, **kwargs) -> tuple[Any, PyTree]:
        """Applies the module with ``params``; returns ``(output, batch_stats)``.

        In training mode the returned statistics are updated by this call; in
        evaluation mode the running statistics are used and returned unchanged.
        """
        if train and self.batch_stats:
            out, updates = self.apply_fn(
                self._variables(params), *inputs, train=True, rngs=rngs, mutable=["batch_stats"], **kwargs
            )
            return out, updates["batch_stats"]
        return self.apply_fn(self._variables(params), *inputs, train=train, rngs=rngs, **kwargs), self.batch_stats

    def with_features(self, params: PyTree, *inputs, train: bool = True) -> tuple[Any, jax.Array, PyTree]:
        """``(output, features, batch_stats)``: also the features the module sows (:data:`ganjax.nn.names.FEATURES`).

        Raises:
          ValueError: if the module sows none.
        """
        mutable = ["intermediates", "batch_stats"] if train and self.batch_stats else ["intermediates"]
        out, updates = self.apply_fn(self._variables(params), *inputs, train=train, mutable=mutable)
        sown = updates.get("intermediates", {}).get(FEATURES)
        if sown is None:
            raise ValueError(
                f"the module sows no 'intermediates/{FEATURES}': call "
                f"self.sow('intermediates', '{FEATURES}', h) on its hidden layer"
            )
        return out, sown[0], updates.get("batch_stats", self.batch_stats)

    def apply_gradients(self, grads: PyTree, batch_stats: PyTree) -> Player:
        """One optimizer update; also stores the new BatchNorm statistics."""
        updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
        return self.replace(
            params=optax.apply_updates(self.params, updates), opt_state=opt_state, batch_stats=batch_stats
        )


class TrainState(struct.PyTreeNode):
    """Everything a run carries from step to step.

    Attributes:
      step: the number of completed train steps.
      players: the trained networks by name (``'g'`` and ``'d'`` in a GAN).
      key: the run's base key; step ``t`` draws from ``fold_in(key, t)``.
      ema: moving averages of some players' params, by player name; each is
        updated right after its player's update (Yazıcı et al. 2019).
      buffers: ring buffers by name that phases read and push (replayed fakes,
        CycleGAN's pools of past fakes, past snapshots of the players).
    """

    step: jax.Array
    players: dict[str, Player]
    key: jax.Array
    ema: dict[str, EMA] = struct.field(default_factory=dict)
    buffers: dict[str, Any] = struct.field(default_factory=dict)

    @classmethod
    def create(
        cls,
        key: jax.Array,
        players: Mapping[str, Player],
        ema_decay: Mapping[str, float] | None = None,
        buffers: Mapping[str, Any] | None = None,
    ) -> TrainState:
        """A state at step 0; ``ema_decay`` names the players to average and their decays (0: none)."""
        ema = {name: EMA.create(players[name].params, decay) for name, decay in (ema_decay or {}).items() if decay}
        return cls(step=jnp.zeros((), jnp.int32), players=dict(players), key=key, ema=ema, buffers=dict(buffers or {}))

    def params(self, name: str, use_ema: bool = False) -> PyTree:
        """Player ``name``'s params, or their moving average with ``use_ema``."""
        if use_ema:
            if name not in self.ema:
                raise ValueError(f"player {name!r} keeps no moving average (its ema decay is 0)")
            return self.ema[name].params
        return self.players[name].params
