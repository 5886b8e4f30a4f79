"""Milliseconds per train step of an experiment's config, on random batches: what a step count costs.

Builds the state and the step as :func:`ganjax.run.train` does on one device,
from the experiment's recipe and its own flags, for any experiment whose recipe
is a GAN of one G and one D (``dcgan_mnist``, ``wgan_gp_mnist``, ``cgan_mnist``,
``acgan_mnist``, ``sagan``, ``msggan``, ``stacked_mnist``), and times ``--repeats`` x ``--steps`` steps after two
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
from ganjax.training.phases import batches_per_step


def build(experiment: str, flags: list[str]):
    """``(config, step, state, batch)``: ``experiments.{experiment}``'s config with ``flags``, its recipe's jitted
    step on one device, a fresh state and one step's random batch.

    Raises:
      ValueError: if the experiment's recipe is not a GAN of one G and one D.
    """
    module = importlib.import_module(f"experiments.{experiment}")
    recipe = getattr(module, "RECIPE", None)
    if not isinstance(recipe, run.GANRecipe):
        raise ValueError(f"experiments.{experiment}: its recipe is not a GAN of one G and one D")
    config = run.parse(module.Config, flags)
    phases = recipe.phases(config)
    state = recipe.init(config, jax.random.key(0), None, None)
    step = recipe.step(config, phases, devices.make_mesh(1))
    rows = config.schedule.batch_size * batches_per_step(phases)
    rng = np.random.default_rng(0)
    batch = {"image": rng.uniform(-1, 1, (rows, *config.data.shape)).astype(np.float32)}
    classes = recipe.gan(config).conditioning.num_classes
    if classes:
        batch["label"] = rng.integers(0, classes, rows).astype(np.int32)
    return config, step, state, batch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument(
        "experiment",
        help="a module of experiments/ whose RECIPE is a GAN of one G and one D",
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
