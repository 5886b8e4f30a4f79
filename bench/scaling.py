"""Data-parallel DCGAN train steps per second on 1, 2, 4 and 8 devices (one global batch, split over them).

On a CPU the devices are simulated (``--xla_force_host_platform_device_count=8``,
set here unless XLA_FLAGS is already set) and share the same cores, so this
measures the overhead of ``ganjax.training.devices`` (splitting, collectives, cross-replica
BatchNorm), not a speed-up. On GPUs or TPUs it uses the real devices it finds.
One device runs the plain jitted step, as ``devices.data_parallel`` does there.
The device counts take turns within each repeat; medians are reported, with
the CPU time the process spends per step (all its threads), which a busy
machine disturbs less than the wall-clock rate.

Run: python -m bench.scaling [--devices 1 2 4 8] [--batch 64] [--width 64] [--steps 5] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax
import numpy as np

from ganjax.latent import Latent
from ganjax.models import dcgan
from ganjax.training import devices, gan
from ganjax.training.phases import make_step

SIZE, LATENT = 28, 100


def setup(num_devices: int, batch: int, width: int) -> dict:
    """The data-parallel step on ``num_devices``, its replicated state and split batch, and its compile time."""
    mesh = devices.make_mesh(num_devices)
    objective = gan.GAN(Latent(dim=LATENT))
    bn_axis = devices.bn_axis_name("auto", batch, mesh)
    state = gan.create_state(
        jax.random.key(0),
        objective,
        dcgan.Generator(SIZE, 1, width, LATENT, bn_axis_name=bn_axis),
        dcgan.Discriminator(SIZE, width, bn_axis_name=bn_axis),
        (SIZE, SIZE, 1),
    )
    images = np.random.default_rng(0).uniform(-1, 1, (batch, SIZE, SIZE, 1)).astype(np.float32)
    run = {
        "step": devices.data_parallel(make_step(objective.phases()), mesh),
        "state": devices.replicate(state, mesh),
        "batch": devices.shard_batch({"image": images}, mesh),
        "sync_bn": bn_axis is not None,
        "rates": [],
        "cpu_s": [],
    }
    start = time.perf_counter()
    steps_per_second(run, 1)
    run["compile_s"] = time.perf_counter() - start
    return run


def steps_per_second(run: dict, steps: int) -> float:
    """Runs ``steps`` steps; returns steps per wall-clock second, and keeps the CPU seconds per step in ``run``."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        run["state"], metrics = run["step"](run["state"], run["batch"])
    jax.block_until_ready((run["state"], metrics))
    run["cpu_s"].append((time.process_time() - cpu) / steps)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--batch", type=int, default=64, help="global batch")
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    counts = [n for n in args.devices if n <= jax.local_device_count()]
    runs = {n: setup(n, args.batch, args.width) for n in counts}
    for _ in range(args.repeats):  # device counts take turns, so a change in the machine's load hits them alike
        for n in counts:
            runs[n]["rates"].append(steps_per_second(runs[n], args.steps))
    print(
        f"{jax.devices()[0].device_kind} x{jax.local_device_count()}, jax {jax.__version__}, "
        f"DCGAN {SIZE}x{SIZE} width {args.width}, global batch {args.batch}, "
        f"median of {args.repeats} x {args.steps} steps"
    )
    print(
        "| devices | per device | cross-replica BN | compile s | steps/s | range | images/s | vs 1 device "
        "| CPU ms/step |"
    )
    print("| ---: | ---: | :---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = statistics.median(runs[counts[0]]["rates"])
    for n, run in runs.items():
        rate = statistics.median(run["rates"])
        print(
            f"| {n} | {args.batch // n} | {'on' if run['sync_bn'] else 'off'} | {run['compile_s']:.1f} | "
            f"{rate:.2f} | {min(run['rates']):.2f}-{max(run['rates']):.2f} | {rate * args.batch:.0f} | "
            f"{rate / base:.2f}x | {1e3 * statistics.median(run['cpu_s'][1:]):.0f} |"
        )


if __name__ == "__main__":
    main()
