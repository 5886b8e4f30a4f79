"""Training a state on a dataset, and the image GAN's run from start to end."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax

from ganjax import data
from ganjax.run.grids import write_animation
from ganjax.training import devices
from ganjax.training.gan import (
    GAN,
    create_state,
)
from ganjax.training.loop import Hook, train_loop
from ganjax.training.state import TrainState

PyTree = Any


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
    state = train_loop(
        devices.replicate(state, mesh),
        step,
        lambda start: batcher.iterate(start, put=lambda batch: devices.shard_batch(batch, mesh)),
        config.schedule.steps,
        hooks,
    )
    write_animation(config.run.workdir)
    return state
