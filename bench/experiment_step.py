"""Milliseconds per train step of an experiment's config, on random batches: what a step count costs.

Builds the state and the step as :func:`experiments.runner.train_image_gan` does
on one device, for any image GAN experiment whose model part builds G and D
(``dcgan_mnist``, ``wgan_gp_mnist``, ``cgan_mnist``, ``acgan_mnist``), from the
experiment's own flags, and times ``--repeats`` x ``--steps`` steps after two
warm-up steps. Thread settings come from XLA_FLAGS as usual; pin a run to one core with
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" taskset -c 0``.

Run: python -m bench.experiment_step wgan_gp_mnist [--schedule.batch-size 16 --model.g-width 64 ...]
"""

from __future__ import annotations

import argparse
import importlib
import time

import jax
import numpy as np

from ganjax import run
from ganjax.training import devices
from ganjax.training.phases import batches_per_step, make_step


def build(experiment: str, flags: list[str]):
    """``(config, step, state, batch)``: ``experiments.{experiment}``'s config with ``flags``, its jitted step on one
    device, a fresh state and one step's random batch.

    Raises:
      ValueError: if the config has no DCGAN or conditional DCGAN model part.
    """
    config = run.parse(importlib.import_module(f"experiments.{experiment}").Config, flags)
    conditional = isinstance(config, run.ConditionalGAN)
    if not (conditional or isinstance(getattr(config, "model", None), run.DCGANModel)):
        raise ValueError(f"experiments.{experiment}: its config has no DCGAN or conditional DCGAN model part")
    gan = config.make_gan(config.conditioning)  # the class head's or the clusters' for an unconditional experiment
    generator, discriminator = config.models()
    state = run.gan_state(jax.random.key(0), gan, generator, discriminator, config.data.shape, config)
    phases = gan.phases(config.schedule.n_critic)
    step = devices.data_parallel(make_step(phases), devices.make_mesh(1), batches_per_step(phases))
    rows = config.schedule.batch_size * batches_per_step(phases)
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(-1, 1, (rows, *config.data.shape)).astype(np.float32)}
    if gan.conditioning.num_classes:
        batch["label"] = rng.integers(0, config.conditioning.num_classes, rows).astype(np.int32)
    return config, step, state, batch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "experiment",
        help="a module of experiments/ whose Config is an image GAN with a DCGAN or conditional DCGAN model part",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args, flags = parser.parse_known_args(argv)
    try:
        _, step, state, batch = build(args.experiment, flags)
    except ValueError as error:
        parser.error(str(error))
    for _ in range(2):
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)
        times.append(1e3 * (time.perf_counter() - start) / args.steps)
    print(
        f"{args.experiment} {' '.join(flags)}: ms/step {' '.join(f'{t:.1f}' for t in times)} "
        f"(median {np.median(times):.1f})"
    )


if __name__ == "__main__":
    main()
