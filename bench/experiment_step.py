"""Milliseconds per train step of an experiment's config, on random batches: what a step count costs.

Builds the state and the jitted step exactly as ``experiments.dcgan_mnist`` (and
the experiments that reuse it, such as ``wgan_gp_mnist``) do, from the same
flags, and times ``--repeats`` x ``--steps`` steps after two warm-up steps.
Thread settings come from XLA_FLAGS as usual; pin a run to one core with
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" taskset -c 0``.

Run: python -m bench.experiment_step wgan_gp_mnist [--batch-size 16 --g-width 64 ...]
"""

from __future__ import annotations

import argparse
import importlib
import time

import jax
import numpy as np

from experiments import common, dcgan_mnist
from ganjax import train


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", help="a module of experiments/ whose Config extends dcgan_mnist.Config")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    args, flags = parser.parse_known_args(argv)
    config_cls = importlib.import_module(f"experiments.{args.experiment}").Config
    config = common.parse_config(config_cls, flags)
    state = dcgan_mnist.create_state(config, jax.random.key(0))
    step_config = common.step_config(config)
    step = train.jit_step(train.train_step)
    shape = (config.batch_size * config.n_critic, config.image_size, config.image_size, config.channels)
    batch = {"image": np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32)}
    for _ in range(2):
        state, metrics = step(state, batch, config=step_config)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for _ in range(args.steps):
            state, metrics = step(state, batch, config=step_config)
        jax.block_until_ready(metrics)
        times.append(1e3 * (time.perf_counter() - start) / args.steps)
    print(f"{args.experiment} {' '.join(flags)}: ms/step {' '.join(f'{t:.1f}' for t in times)} "
          f"(median {np.median(times):.1f})")


if __name__ == "__main__":
    main()
