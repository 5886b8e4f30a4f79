"""Images/s of the full DCGAN train step (D step + G step, Adam): ganjax against PyTorch, on CPU, GPU or TPU.

The PyTorch side is written as in the PyTorch examples' DCGAN (``netG``/``netD``,
one G forward per iteration, BCE on logits, Adam(2e-4, b1=0.5)), with the same
layers, widths and biases as ``ganjax.models.dcgan``. The variants run
alternately, ``--repeats`` times each, in one process; medians are reported.

Every row gives images/s, milliseconds per step, the step's FLOPs (XLA's cost
analysis of the compiled ganjax f32 step, the same maths for every variant),
the achieved TFLOP/s and its share of a reference: the device's dense peak
(MFU, :data:`PEAK_TFLOPS` by ``device_kind``, or ``--peak-tflops``) on an
accelerator, and on CPU the FLOP/s of a dense f32 2048x2048 matmul measured in
the same repeats. Memory is the peak of one step: for ganjax XLA's compiled
memory analysis (arguments + outputs - aliased (donated) + temporaries); for
PyTorch on CPU the rise of the peak resident set size (``VmHWM``) over two steps
in a fresh subprocess, from its size after the imports (so it includes the
allocator's and oneDNN's own buffers); for PyTorch on CUDA
``torch.cuda.max_memory_allocated`` over one step.

The load average (``os.getloadavg``) is read before and after each size's
timing; when either 1-minute value is above :data:`MAX_LOAD_PER_CORE` per core,
the size's rows are marked as not a result instead of giving ganjax/torch.

Run: python -m bench.dcgan_step [--sizes 32 64] [--batch 64] [--repeats 7] [--steps 5]
     python -m bench.dcgan_step --device gpu --sizes 64 128 --population 8
"""

from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import torch
from torch import nn as tnn

from ganjax.latent import Latent
from ganjax.models import dcgan
from ganjax.training import devices, gan
from ganjax.training import population as pop
from ganjax.training.phases import make_step

CHANNELS, WIDTH, LATENT = 3, 64, 100
ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_LOAD_PER_CORE = 1.5
VARIANTS = ("ganjax-f32", "ganjax-bf16", "ganjax-f32-dp", "torch-eager", "torch-compile")
# XLA:CPU with one thread per operation (the Eigen thread pool off).
SINGLE_THREADED = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
DEFAULT_VARIANTS = {
    "cpu": ("ganjax-f32", "torch-eager"),
    "gpu": VARIANTS,
    "tpu": ("ganjax-f32", "ganjax-bf16"),
}
# Dense peak TFLOP/s per chip, (bf16, f32), by a substring of jax's ``device_kind``; the first match wins.
# f32 is what XLA's default precision runs f32 convolutions at: TF32 tensor cores on NVIDIA (Ampere and
# later), one bf16 pass on TPU. Vendors' data sheets (NVIDIA H100/H200, A100, L40S, L4; Google Cloud TPU).
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0, 378.0),
    ("H100", 989.4, 494.7),
    ("H200", 989.4, 494.7),
    ("A100", 312.0, 156.0),
    ("L40S", 362.1, 183.2),
    ("L4", 121.0, 60.0),
    ("TPU v6 lite", 918.0, 918.0),
    ("TPU v5 lite", 197.0, 197.0),
    ("TPU v5", 459.0, 459.0),
    ("TPU v4", 275.0, 275.0),
)


def peak_tflops(device_kind: str, dtype: str, given: tuple[float, float] | None = None) -> float:
    """The dense peak TFLOP/s for ``dtype`` ('bfloat16' or 'float32') on ``device_kind``, or from ``given``.

    Raises:
      ValueError: naming ``--peak-tflops`` when the device kind is not in :data:`PEAK_TFLOPS` and none is given.
    """
    if given is None:
        match = next((row for row in PEAK_TFLOPS if row[0] in device_kind), None)
        if match is None:
            known = ", ".join(row[0] for row in PEAK_TFLOPS)
            raise ValueError(
                f"--peak-tflops: the peak of device kind {device_kind!r} is unknown (known: {known}); "
                "give its dense bf16 and f32 TFLOP/s as --peak-tflops BF16 F32"
            )
        given = match[1:]
    return given[0] if dtype == "bfloat16" else given[1]


def load_verdict(loads: tuple[float, float], cores: int) -> str | None:
    """None when both 1-minute loads are at most :data:`MAX_LOAD_PER_CORE` per core, else the mark for the rows."""
    per_core = max(loads) / cores
    return f"LOADED (load {per_core:.1f} per core): not a result" if per_core > MAX_LOAD_PER_CORE else None


# ----------------------------------------------------------------------------- ganjax


def xla_peak_bytes(compiled) -> int:
    """Bytes XLA's buffers take in one call: arguments + outputs - aliased (donated) + temporaries."""
    stats = compiled.memory_analysis()
    return (
        stats.argument_size_in_bytes + stats.output_size_in_bytes - stats.alias_size_in_bytes + stats.temp_size_in_bytes
    )


def ganjax_step(size: int, batch: int, dtype: str = "float32", device=None, mesh=None):
    """``(run, compiled)``: a ``() -> None`` running one ganjax train step, the state donated, and its program.

    With a ``mesh``, the step is data parallel over its devices (:mod:`ganjax.training.devices`), with
    BatchNorm statistics averaged over them: the maths of the one-device step.
    """
    device = device or jax.devices()[0]
    compute = jnp.dtype(dtype)
    objective = gan.GAN(Latent(dim=LATENT))
    axis = devices.DATA_AXIS if mesh is not None else None
    with jax.default_device(device):
        state = gan.create_state(
            jax.random.key(0),
            objective,
            dcgan.Generator(size, CHANNELS, WIDTH, LATENT, bn_axis_name=axis, dtype=compute),
            dcgan.Discriminator(size, WIDTH, bn_axis_name=axis, dtype=compute),
            (size, size, CHANNELS),
        )
        images = {"image": jax.random.uniform(jax.random.key(1), (batch, size, size, CHANNELS), minval=-1, maxval=1)}
    if mesh is None:
        step = jax.jit(make_step(objective.phases()), donate_argnums=0)
    else:
        step = devices.data_parallel(make_step(objective.phases()), mesh)
        state, images = devices.replicate(state, mesh), devices.shard_batch(images, mesh)
    compiled = step.lower(state, images).compile()
    holder = [state]

    def run():
        holder[0], metrics = compiled(holder[0], images)
        jax.block_until_ready(metrics)

    return run, compiled


def population_step(size: int, batch: int, members: int, device=None):
    """A ``() -> None`` running one step of ``members`` DCGANs in one vmapped program (one batch for all)."""
    device = device or jax.devices()[0]
    objective = gan.GAN(Latent(dim=LATENT))
    g, d = dcgan.Generator(size, CHANNELS, WIDTH, LATENT), dcgan.Discriminator(size, WIDTH)
    with jax.default_device(device):
        make_state = lambda key: gan.create_state(key, objective, g, d, (size, size, CHANNELS))
        holder = [pop.init_population(make_state, jax.random.split(jax.random.key(0), members))]
        images = {"image": jax.random.uniform(jax.random.key(1), (batch, size, size, CHANNELS), minval=-1, maxval=1)}
    step = pop.population_step(pop.gan_step(objective), shared_batch=True, lowering="vmap")

    def run():
        holder[0], metrics = step(holder[0], images)
        jax.block_until_ready(metrics)

    return run


# ----------------------------------------------------------------------------- PyTorch (examples/dcgan style)


class NetG(tnn.Module):
    def __init__(self, n_up: int):
        super().__init__()
        ngf = WIDTH * 2 ** (n_up - 1)
        layers = [tnn.ConvTranspose2d(LATENT, ngf, 4, 1, 0, bias=False), tnn.BatchNorm2d(ngf), tnn.ReLU(True)]
        for _ in range(n_up - 1):
            layers += [
                tnn.ConvTranspose2d(ngf, ngf // 2, 4, 2, 1, bias=False),
                tnn.BatchNorm2d(ngf // 2),
                tnn.ReLU(True),
            ]
            ngf //= 2
        layers += [tnn.ConvTranspose2d(ngf, CHANNELS, 4, 2, 1), tnn.Tanh()]
        self.main = tnn.Sequential(*layers)

    def forward(self, z):
        return self.main(z)


class NetD(tnn.Module):
    def __init__(self, n_down: int):
        super().__init__()
        layers, channels = [], CHANNELS
        for i in range(n_down):
            layers.append(tnn.Conv2d(channels, WIDTH * 2**i, 4, 2, 1, bias=i == 0))
            if i > 0:
                layers.append(tnn.BatchNorm2d(WIDTH * 2**i))
            layers.append(tnn.LeakyReLU(0.2, inplace=True))
            channels = WIDTH * 2**i
        layers.append(tnn.Conv2d(channels, 1, 4, 1, 0))
        self.main = tnn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).view(-1)


def weights_init(m):
    if "Conv" in type(m).__name__:
        tnn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in type(m).__name__:
        tnn.init.normal_(m.weight, 1.0, 0.02)
        tnn.init.zeros_(m.bias)


def torch_step(size: int, batch: int, device: str = "cpu", compiled: bool = False):
    """A ``() -> None`` running one PyTorch DCGAN iteration as in the PyTorch example (``torch.compile``d nets)."""
    _, n = dcgan.layout(size)
    net_g, net_d = NetG(n).to(device), NetD(n).to(device)
    net_g.apply(weights_init)
    net_d.apply(weights_init)
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    if compiled:
        net_g, net_d = torch.compile(net_g), torch.compile(net_d)
    criterion = tnn.BCEWithLogitsLoss()
    real = torch.rand(batch, CHANNELS, size, size, device=device) * 2 - 1
    ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)

    def run():
        net_d.zero_grad()
        err_real = criterion(net_d(real), ones)
        err_real.backward()
        fake = net_g(torch.randn(batch, LATENT, 1, 1, device=device))
        err_fake = criterion(net_d(fake.detach()), zeros)
        err_fake.backward()
        opt_d.step()
        net_g.zero_grad()
        err_g = criterion(net_d(fake), ones)
        err_g.backward()
        opt_g.step()
        if device == "cuda":
            torch.cuda.synchronize()

    return run


def _status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), in KiB."""
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def torch_cpu_peak_child(size: int, batch: int, threads: int) -> int:
    """In a fresh process: bytes the peak RSS rises by while building and running two PyTorch steps.

    A step at 8x8, batch 2, runs first, so that loading torch's kernels is not counted; then the peak is
    reset (``/proc/self/clear_refs``) and measured from the resident size at that point.
    """
    torch.set_num_threads(threads)
    warm_up = torch_step(8, 2)
    warm_up()
    del warm_up
    pathlib.Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    run = torch_step(size, batch)
    run(), run()
    return (_status_kib("VmHWM") - before) * 1024


def torch_peak_bytes(size: int, batch: int, device: str, threads: int) -> int:
    """Peak memory of the PyTorch step: RSS rise in a subprocess on CPU, ``max_memory_allocated`` on CUDA."""
    if device == "cuda":
        run = torch_step(size, batch, device)
        run()
        torch.cuda.reset_peak_memory_stats()
        run()
        return torch.cuda.max_memory_allocated()
    code = f"from bench.dcgan_step import torch_cpu_peak_child; print(torch_cpu_peak_child({size}, {batch}, {threads}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return int(out.stdout.split()[-1])


# ----------------------------------------------------------------------------- timing


def seconds_per_call(fn: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def matmul_step(n: int = 2048):
    """A ``() -> None`` running a jitted dense f32 ``n x n`` matmul, and its FLOPs."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    matmul = jax.jit(lambda x: x @ x)
    return lambda: matmul(a).block_until_ready(), 2 * n**3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--device", choices=tuple(DEFAULT_VARIANTS), default="cpu", help="the JAX platform to run on")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=None,
        help="what to time (default: ganjax-f32 and torch-eager on cpu, all four on gpu, ganjax on tpu)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=os.cpu_count(),
        help="torch intra-op threads on cpu (default: all cores, as XLA:CPU uses)",
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        nargs=2,
        metavar=("BF16", "F32"),
        default=None,
        help="the device's dense peak TFLOP/s, for MFU (default: PEAK_TFLOPS by device kind; on cpu: none, "
        "the measured f32 matmul is the reference)",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=1,
        help="on cpu, how many XLA devices the cores are split into (ganjax-f32-dp runs data parallel over them)",
    )
    parser.add_argument(
        "--xla-threads",
        choices=("all", "1"),
        default="all",
        help="XLA:CPU's threads per operation: all cores (the default) or one",
    )
    parser.add_argument(
        "--population",
        type=int,
        default=0,
        metavar="K",
        help="also time K DCGANs as one vmapped program (ganjax.training.population), in members/s (0: off)",
    )
    args = parser.parse_args(argv)
    args.variants = tuple(args.variants or DEFAULT_VARIANTS[args.device])
    if args.cpu_devices < 1:
        parser.error(f"--cpu-devices: must be at least 1, got {args.cpu_devices}")
    if "ganjax-f32-dp" in args.variants and args.device == "cpu" and args.cpu_devices < 2:
        parser.error("--variants: ganjax-f32-dp needs several devices; on cpu give --cpu-devices 2 or more")
    if args.cpu_devices > 1:  # both act only before JAX's backend starts (jax refuses the first when late)
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    if args.xla_threads == "1":
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREADED}".strip()
    try:
        args.jax_device = jax.devices(args.device)[0]
    except RuntimeError as e:
        parser.error(f"--device {args.device}: JAX has no such device here ({e})")
    args.torch_device = "cuda" if args.device == "gpu" else "cpu"
    torch_variants = [v for v in args.variants if v.startswith("torch")]
    if args.device == "tpu" and torch_variants:
        parser.error(f"--variants: {', '.join(torch_variants)} do not run on tpu")
    if args.population < 0:
        parser.error(f"--population: must be at least 0, got {args.population}")
    if args.device != "cpu" or args.peak_tflops is not None:
        try:
            for dtype in ("bfloat16", "float32"):
                peak_tflops(args.jax_device.device_kind, dtype, args.peak_tflops)
        except ValueError as e:
            parser.error(str(e))
    return args


def _variants(args, size: int) -> tuple[dict[str, Callable[[], None]], dict[str, int], float]:
    """``({variant: run}, {variant: peak bytes}, FLOPs of the f32 step)``; skips a torch variant that cannot run."""
    runs, memory, programs = {}, {}, {}
    for variant in args.variants:
        if variant == "ganjax-f32-dp":
            mesh = devices.make_mesh()
            runs[variant], program = ganjax_step(size, args.batch, "float32", args.jax_device, mesh)
            memory[variant] = xla_peak_bytes(program)  # per device
        elif variant.startswith("ganjax"):
            dtype = "bfloat16" if variant == "ganjax-bf16" else "float32"
            runs[variant], programs[dtype] = ganjax_step(size, args.batch, dtype, args.jax_device)
            memory[variant] = xla_peak_bytes(programs[dtype])
        elif args.torch_device == "cuda" and not torch.cuda.is_available():
            print(f"{variant}: skipped, this torch ({torch.__version__}) has no CUDA")
        else:
            runs[variant] = torch_step(size, args.batch, args.torch_device, compiled=variant == "torch-compile")
            if variant == "torch-eager":
                memory[variant] = torch_peak_bytes(size, args.batch, args.torch_device, args.torch_threads)
    if args.population:
        runs[f"population x{args.population}"] = population_step(size, args.batch, args.population, args.jax_device)
    if "float32" not in programs:
        programs["float32"] = ganjax_step(size, args.batch, "float32", args.jax_device)[1]
    return runs, memory, programs["float32"].cost_analysis()["flops"]


def _share(args, name: str, tflops: float, matmul_tflops: float | None) -> str:
    """The achieved TFLOP/s as a share of the device's peak (MFU) or, on CPU, of the measured matmul."""
    if matmul_tflops is not None:
        return f"{tflops / matmul_tflops:.1%}"
    dtype = "bfloat16" if name.endswith("bf16") else "float32"
    return f"{tflops / peak_tflops(args.jax_device.device_kind, dtype, args.peak_tflops):.1%}"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    cores = os.cpu_count()
    print(
        f"jax {jax.__version__} on {args.device} ({args.jax_device.device_kind}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {cores} cores; batch {args.batch}, "
        f"{args.repeats} repeats x {args.steps} steps; load before {os.getloadavg()}"
    )
    on_matmul = args.device == "cpu" and args.peak_tflops is None
    print(
        "memory: ganjax = XLA memory analysis (arguments + outputs - aliased + temporaries); torch = "
        + ("max_memory_allocated" if args.torch_device == "cuda" else "peak RSS rise in a subprocess")
    )
    reference = "share of f32 matmul" if on_matmul else "MFU"
    columns = (
        "size",
        "variant",
        "img/s",
        "ms/step",
        "GFLOP/step",
        "TFLOP/s",
        reference,
        "peak MiB",
        "vs best torch / members/s",
    )
    print("| " + " | ".join((*columns, "load")) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for size in args.sizes:
        runs, memory, flops = _variants(args, size)
        if on_matmul:
            runs["matmul"], matmul_flops = matmul_step()
        for fn in runs.values():  # warm-up: compile, allocate
            fn(), fn()
        times = {name: [] for name in runs}
        loads = [os.getloadavg()[0]]
        for _ in range(args.repeats):  # alternate, so that load from elsewhere hits all alike
            for name, fn in runs.items():
                times[name].append(seconds_per_call(fn, 3 if name == "matmul" else args.steps))
        loads.append(os.getloadavg()[0])
        seconds = {name: statistics.median(t) for name, t in times.items()}
        matmul_tflops = matmul_flops / seconds.pop("matmul") / 1e12 if on_matmul else None
        verdict = load_verdict((loads[0], loads[1]), cores)
        torch_best = min((t for name, t in seconds.items() if name.startswith("torch")), default=None)
        for name, t in seconds.items():
            members = args.population if name.startswith("population") else 1
            tflops = members * flops / t / 1e12
            if verdict:
                ratio = verdict
            elif name.startswith("population"):
                ratio = f"{members / t:.1f} members/s"
            elif name.startswith("ganjax") and torch_best:
                ratio = f"{torch_best / t:.2f}"
            else:
                ratio = ""
            mib = f"{memory[name] / 2**20:.3g}" if name in memory else ""
            print(
                f"| {size} | {name} | {members * args.batch / t:.1f} | {1e3 * t:.1f} | {members * flops / 1e9:.3g} | "
                f"{tflops:.3f} | {_share(args, name, tflops, matmul_tflops)} | {mib} | {ratio} | "
                f"{loads[0]:.2f} -> {loads[1]:.2f} |",
                flush=True,
            )
    print(f"load after {os.getloadavg()}")


if __name__ == "__main__":
    main()
