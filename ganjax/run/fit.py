"""Training a state on a dataset, and the image GAN's run from start to end."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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
from ganjax.training.phases import Phase, batches_per_step, make_step
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
