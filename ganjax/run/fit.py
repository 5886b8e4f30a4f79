"""Training a state on a dataset, and the image GAN's run from start to end."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax

from ganjax import data
from ganjax.run.config_json import to_dict
from ganjax.run.folder import start
from ganjax.run.generator import Generator
from ganjax.run.grids import grid_writer, write_animation, write_interpolation
from ganjax.run.hooks import run_hooks
from ganjax.training import devices
from ganjax.training.gan import (
    GAN,
    create_state,
    ema_stats,
    generate,
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


def train_image_gan(
    config,
    gan: GAN,
    models: Callable[[str | None], tuple[nn.Module, nn.Module]],
    init_key: jax.Array,
    fixed: tuple,
    sample_key: jax.Array,
    *,
    example_shape: tuple[int, ...] | None = None,
    view: Callable[[jax.Array], jax.Array] | None = None,
    nrow: int = 10,
    rngs: dict | None = None,
    evaluations: Callable[[data.ImageDataset], Sequence[Hook]] | None = None,
    prepare: Callable[[TrainState], TrainState] | None = None,
    wrap_step: Callable[[Callable], Callable] | None = None,
    inputs: Callable[[Mapping[str, jax.Array]], Mapping[str, jax.Array]] | None = None,
    training_data: Callable[[data.ImageDataset], data.ImageDataset] | None = None,
):
    """An image GAN experiment from start to end; returns ``(final state, sample)``.

    Starts the run (:func:`start`), loads ``config.data``, builds G and D with
    ``models(bn_axis_name)`` and the state (:func:`gan_state`, then ``prepare``),
    and trains (:func:`fit_gan`) with the hooks of ``evaluations(dataset)``, the
    monitor, logging, sample grids and checkpoints.

    Args:
      config: with ``data``, ``optim``, ``state``, ``schedule``, ``run``, ``devices`` and ``monitor`` parts.
      gan: the objective.
      models: ``bn_axis_name -> (G, D)``; the axis is None unless ``config.devices`` has cross-replica BatchNorm on.
      init_key: the players' and the steps' key.
      fixed: G's inputs for every sample grid (``(z,)`` or ``(z, labels)``).
      sample_key: the key ``fixed`` was drawn from; the moving average of G is sampled with BatchNorm
        statistics recomputed for it from this key (:func:`ganjax.training.gan.ema_stats`), as
        :mod:`ganjax.sample` recomputes them from the run's sample key.
      example_shape: D's input shape (default: ``config.data``'s images).
      view: maps G's output to the grid's images.
      nrow: images per grid row.
      rngs: G's keys for its noise and dropout layers when sampling.
      evaluations: ``dataset -> hooks`` run before the others.
      prepare, wrap_step, inputs: see :func:`fit_gan` (``prepare`` maps the new state, e.g. to add buffers).
      training_data: maps the loaded data to the data G and D train on (e.g. labelled by clusters); the
        evaluations see the data as loaded.

    Returns:
      The last state and ``sample(state, *inputs)``, G's jitted images (its moving average when kept, with its
      recomputed statistics).
    """
    phases = gan.phases(config.schedule.n_critic)
    mesh = start(config, batches_per_step(phases))
    dataset = config.data.load()
    train_set = training_data(dataset) if training_data is not None else dataset
    classes = gan.conditioning.num_classes
    if classes and train_set.labels is None:
        needs = "a conditional GAN needs" if gan.conditioning.g_takes_labels else "D's class head needs"
        hint = "" if gan.conditioning.g_takes_labels else "; --class-head.weight 0 trains without labels"
        raise data.DataError(f"{dataset.name}: {needs} labelled data (for an image folder: --data.folder-labels){hint}")
    if classes and train_set.labels.max() >= classes:
        raise data.DataError(
            f"{dataset.name}: holds {train_set.labels.max() + 1} classes, but the config's num_classes is {classes}"
        )
    mode = getattr(config.devices, "cross_replica_bn", "off")
    generator, discriminator = models(devices.bn_axis_name(mode, config.schedule.batch_size, mesh))
    state = gan_state(init_key, gan, generator, discriminator, example_shape or config.data.shape, config)
    state = prepare(state) if prepare is not None else state
    use_ema, batch_size, g_classes = config.state.keeps_ema, config.schedule.batch_size, gan.conditioning.g_classes

    def draw(state: TrainState, *inputs) -> jax.Array:
        stats = ema_stats(state, sample_key, gan.latent.sample, batch_size, g_classes) if use_ema else None
        return generate(state, *inputs, use_ema=use_ema, rngs=rngs, ema_stats=stats)

    sample = jax.jit(draw)
    fixed = devices.replicate(fixed, mesh)
    view = view or (lambda x: x)
    writer = grid_writer(config.run.workdir, lambda s: view(sample(s, *fixed)), nrow)
    extra = list(evaluations(dataset)) if evaluations is not None else []
    hooks = run_hooks(config.run, to_dict(config), extra, config.monitor.build(gan.objective), writer)
    return fit_gan(config, state, phases, train_set, mesh, hooks, wrap_step, inputs), sample


def dcgan_generator(config) -> Generator:
    """G of an unconditional DCGAN experiment as :func:`train_dcgan` samples it (for :mod:`ganjax.sample`).

    The grid's z comes from the second of three keys split from ``run.seed``, and G's always-on dropout, if any,
    from ``fold_in`` of that key and 1. A G conditioned on clusters takes, for each image, a cluster drawn
    uniformly (:meth:`ganjax.sample.Generator.inputs`), as in training.
    """
    module, _ = config.models()
    classes = config.conditioning.g_classes
    return Generator(
        module,
        draw=config.latent.sample,
        key=jax.random.split(jax.random.key(config.run.seed), 3)[1],
        num=config.num_samples,
        nrow=10,
        num_classes=classes,
        draws_classes=bool(classes),
        latent=config.latent,
        apply=lambda variables, inputs, key, step: module.apply(
            variables, *inputs, train=False, rngs={"dropout": jax.random.fold_in(key, 1)}
        ),
    )


def train_dcgan(config, evaluations: Callable[[data.ImageDataset], Sequence[Hook]] | None = None) -> TrainState:
    """An unconditional GAN of DCGAN players (``config.model.build``) from start to end.

    Samples come from one fixed z throughout (the EMA of G's params if kept) and
    G's always-on dropout, if any, draws from fixed keys, so the grids are
    comparable across steps; ends with ``interpolation.png``.
    """
    init_key, _, path_key = jax.random.split(jax.random.key(config.run.seed), 3)
    g = dcgan_generator(config)
    state, sample = train_image_gan(
        config,
        config.make_gan(),
        config.models,
        init_key,
        g.grid(g.key),
        g.key,
        rngs={"dropout": jax.random.fold_in(g.key, 1)},
        evaluations=evaluations,
        training_data=config.training_data,
    )
    write_interpolation(config.run.workdir, state, sample, path_key, config.latent, num_classes=g.num_classes)
    return state
