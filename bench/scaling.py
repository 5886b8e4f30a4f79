"""Data-parallel DCGAN train steps per second on 1, 2, 4 and 8 devices (one global batch, split over them).

On a CPU the devices are simulated (``--xla_force_host_platform_device_count=8``,
set here unless XLA_FLAGS is already set) and share the same cores, so this
measures the overhead of ``ganjax.parallel`` (splitting, collectives, cross-replica
BatchNorm), not a speed-up. On GPUs or TPUs it uses the real devices it finds.
One device runs the plain jitted step, as ``parallel.data_parallel`` does there.

Run: python -m bench.scaling [--devices 1 2 4 8] [--batch 64] [--width 64] [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402  (after XLA_FLAGS)
import numpy as np  # noqa: E402

from ganjax import parallel, train  # noqa: E402
from ganjax.models import dcgan  # noqa: E402

SIZE, LATENT = 28, 100


def measure(num_devices: int, batch: int, width: int, steps: int, repeats: int) -> dict:
    """Compile time, and the median over ``repeats`` of ``steps`` steps' throughput, on ``num_devices``."""
    mesh = parallel.make_mesh(num_devices)
    config = train.StepConfig(latent_dim=LATENT)
    bn_axis = parallel.bn_axis_name("auto", batch, mesh)
    state = train.create_state(jax.random.key(0), dcgan.Generator(SIZE, 1, width, LATENT, bn_axis_name=bn_axis),
                               dcgan.Discriminator(SIZE, width, bn_axis_name=bn_axis), (SIZE, SIZE, 1), config)
    state = parallel.replicate(state, mesh)
    images = np.random.default_rng(0).uniform(-1, 1, (batch, SIZE, SIZE, 1)).astype(np.float32)
    batch_arrays = parallel.shard_batch({"image": images}, mesh)
    step = parallel.data_parallel(train.train_step, mesh, config)
    start = time.perf_counter()
    state, metrics = step(state, batch_arrays)
    jax.block_until_ready(metrics)
    compile_s = time.perf_counter() - start
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            state, metrics = step(state, batch_arrays)
        jax.block_until_ready((state, metrics))
        rates.append(steps / (time.perf_counter() - start))
    rate = statistics.median(rates)
    return {"devices": num_devices, "per_device": batch // num_devices, "sync_bn": bn_axis is not None,
            "compile_s": compile_s, "steps_s": rate, "images_s": rate * batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{jax.devices()[0].device_kind} x{jax.local_device_count()}, jax {jax.__version__}, "
          f"DCGAN {SIZE}x{SIZE} width {args.width}, global batch {args.batch}")
    print("| devices | per device | cross-replica BN | compile s | steps/s | images/s | vs 1 device |")
    print("| ---: | ---: | :---: | ---: | ---: | ---: | ---: |")
    base = None
    for n in (n for n in args.devices if n <= jax.local_device_count()):
        r = measure(n, args.batch, args.width, args.steps, args.repeats)
        base = base or r["steps_s"]
        print(f"| {n} | {r['per_device']} | {'on' if r['sync_bn'] else 'off'} | {r['compile_s']:.1f} | "
              f"{r['steps_s']:.2f} | {r['images_s']:.0f} | {r['steps_s'] / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
