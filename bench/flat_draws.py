"""Seconds to initialise image models with JAX's Threefry keys and with :func:`ganjax.rng.flat_draws`.

A model's first init compiles one random draw per parameter shape; XLA:CPU
compiles a 4-D draw's counters slowly. Each round clears JAX's caches and
initialises every model twice, once per key kind, alternating which goes
first; each figure is the median over rounds of the time to the params on
the host. Both kinds must give the same params, bit for bit, or the script
says so. The 1-minute load average is printed before and after. Keep the
persistent compilation cache off (JAX's default) or the second round measures
the cache.

Run: python -m bench.flat_draws [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from bench import trees
from ganjax import rng
from ganjax.models import cyclegan, dcgan

MODELS = {
    "DCGAN G (MNIST)": (dcgan.Generator(), jnp.zeros((2, 100))),
    "DCGAN D (MNIST)": (dcgan.Discriminator(), jnp.zeros((2, 28, 28, 1))),
    "CycleGAN G (64 px RGB)": (cyclegan.ResnetGenerator(channels=3), jnp.zeros((1, 64, 64, 3))),
    "CycleGAN D (64 px RGB)": (cyclegan.PatchDiscriminator(), jnp.zeros((1, 64, 64, 3))),
}


def init_seconds(module, example, key) -> tuple[float, list[np.ndarray]]:
    start = time.perf_counter()
    params = [np.asarray(leaf) for leaf in jax.tree.leaves(module.init(key, example, train=False))]
    return time.perf_counter() - start, params


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load before: {os.getloadavg()[0]:.2f}")
    key = jax.random.key(0)
    kinds = {"threefry": key, "flat_draws": rng.flat_draws(key)}
    times = {(name, kind): [] for name in MODELS for kind in kinds}
    equal = True
    for round_ in range(args.repeats):
        order = list(kinds) if round_ % 2 == 0 else list(reversed(kinds))
        for name, (module, example) in MODELS.items():
            params = {}
            for kind in order:
                jax.clear_caches()
                seconds, params[kind] = init_seconds(module, example, kinds[kind])
                times[name, kind].append(seconds)
            equal &= trees.equal_bit_for_bit(*params.values())
    for name in MODELS:
        plain, flat = (statistics.median(times[name, kind]) for kind in kinds)
        print(f"{name}: threefry {plain:.2f} s, flat_draws {flat:.2f} s ({plain / flat:.1f}x)")
    print(f"params equal bit for bit: {equal}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
