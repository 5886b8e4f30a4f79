"""Member steps per second of a population in one program (:mod:`ganjax.training.population`) against its
members run one after another.

Two GANs on XLA:CPU, each step one D update (non-saturating loss) and one G update, Adam on both, under every
lowering of :func:`ganjax.training.population.population_step` and as ``loop`` (the single run's jitted step
called for one member after another):

- a tiny DCGAN (28x28x1, width 16, batch 32) at K = 4: ``vmap`` (every convolution becomes a grouped
  convolution), ``map`` (``lax.map``: a loop over the members inside the program), ``unroll`` and ``loop``;
- the 2D MLP GAN of ``experiments/gaussian_mixture`` (3 x 128, batch 256) at K = 1, 16, 64: ``vmap``,
  ``map`` and ``loop`` (``unroll`` takes minutes to compile at K = 64), ``4 * --steps`` steps a round.

Each row's variants are compiled first, then timed in ``--repeats`` rounds of ``--steps`` steps, the variants
alternating within a round; the table gives the median. The load average (``os.getloadavg``) is printed
before and after, and with every row; a row gives its ratio to ``loop`` only while the 1-minute load is at
most :data:`MAX_LOAD` (this is a shared 2-core machine), and the load otherwise.

On the 2-core machine (jax 0.10.2, 1-minute load 1.9-2.1) the DCGAN took 10.1 ms a member step as
``loop``, 7.4 as ``unroll``, 22.7 as ``vmap`` and 69.7 as ``map``; the MLP 2.3-2.5 ms as ``loop`` at every K,
and as ``vmap`` 2.7 at K = 1, 2.2 at K = 16 and 3.8 at K = 64 (docs/ablation.md).

Run: python -m bench.population [--steps 3 --repeats 3 --models dcgan mlp]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganjax import data
from ganjax.latent import Latent
from ganjax.models import dcgan, mlp
from ganjax.training import population as pop
from ganjax.training.gan import GAN, create_state

MAX_LOAD = 3.0


def _setup(kind: str, k: int):
    """``(gan, make_state, batches)``: the model's GAN, a state maker and one real batch per member."""
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=2e-4, b1=0.5)
    rows = np.random.default_rng(0)
    if kind == "dcgan":
        gan = GAN(Latent(dim=100))
        g, d, shape = dcgan.Generator(width=16), dcgan.Discriminator(width=16), (28, 28, 1)
        batches = {"image": rows.uniform(-1, 1, (k, 32, *shape)).astype(np.float32)}
    else:
        gan = GAN(Latent(dim=2))
        g, d, shape = mlp.Generator(2, 2, (128,) * 3), mlp.Discriminator(2, (128,) * 3), (2,)
        ring = data.MIXTURES["ring"]()
        batches = {
            "image": np.asarray(jax.vmap(lambda key: ring.sample(key, 256))(jax.random.split(jax.random.key(0), k)))
        }
    return gan, lambda key: create_state(key, gan, g, d, shape, g_tx=tx, d_tx=tx), batches


def _variants(kind: str, k: int, names: tuple[str, ...]) -> dict[str, Callable[[int], None]]:
    """``{name: run(steps)}``, each compiled, running ``steps`` steps of all K members."""
    gan, make_state, batches = _setup(kind, k)
    keys = jax.random.split(jax.random.key(0), k)
    runs = {}
    for name in names:
        if name == "loop":
            single = jax.jit(pop.gan_step(gan), donate_argnums=0)
            states = [make_state(key) for key in keys]
            member_batches = [jax.tree.map(lambda x, i=i: jnp.asarray(x[i]), batches) for i in range(k)]

            def run(steps: int, single=single, states=states, member_batches=member_batches) -> None:
                for i in range(k):
                    for _ in range(steps):
                        states[i] = single(states[i], member_batches[i])[0]
                jax.block_until_ready(states)

        else:
            step = pop.population_step(pop.gan_step(gan), lowering=name)
            box = [pop.init_population(make_state, keys)]
            device_batches = jax.tree.map(jnp.asarray, batches)

            def run(steps: int, step=step, box=box, device_batches=device_batches) -> None:
                for _ in range(steps):
                    box[0] = step(box[0], device_batches)[0]
                jax.block_until_ready(box[0])

        run(1)
        runs[name] = run
    return runs


def _row(kind: str, k: int, names: tuple[str, ...], steps: int, repeats: int) -> None:
    """Prints one table line per variant."""
    runs = _variants(kind, k, names)
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run(steps)
            times[name].append(time.perf_counter() - start)
    load = os.getloadavg()[0]
    rate = {name: k * steps / float(np.median(t)) for name, t in times.items()}
    for name in names:
        ratio = f"{rate[name] / rate['loop']:.2f}" if load <= MAX_LOAD else f"(load {load:.1f})"
        print(
            f"| {kind} | {k} | {name} | {1e3 / rate[name]:.1f} | {rate[name]:.1f} | {ratio} | {load:.2f} |", flush=True
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", choices=("dcgan", "mlp"), default=("dcgan", "mlp"))
    args = parser.parse_args(argv)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}, {os.cpu_count()} cores; load before {os.getloadavg()}")
    print("| model | K | lowering | ms per member step | member steps/s | vs loop | load (1 min) |")
    print("|---|---|---|---|---|---|---|")
    if "dcgan" in args.models:
        _row("dcgan", 4, ("vmap", "map", "unroll", "loop"), args.steps, args.repeats)
    for k in (1, 16, 64) if "mlp" in args.models else ():
        _row("mlp", k, ("vmap", "map", "loop"), args.steps * 4, args.repeats)
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
