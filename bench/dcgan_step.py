"""Images/s of the full DCGAN train step (D step + G step, Adam): ganjax against PyTorch.

The PyTorch side is written as in the PyTorch examples' DCGAN (``netG``/``netD``,
one G forward per iteration, BCE on logits, Adam(2e-4, b1=0.5)), with the same
layers, widths and biases as ``ganjax.models.dcgan``. The two run alternately,
``--repeats`` times each, in one process; medians are reported. The ganjax
step's FLOPs come from XLA's cost analysis of the compiled step and are shown
as a share of a dense f32 matmul's measured FLOP/s.

Run: python -m bench.dcgan_step [--sizes 32 64] [--batch 64] [--repeats 7] [--steps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import torch
from torch import nn as tnn

from ganjax.models import dcgan
from ganjax.training import gan
from ganjax.training.phases import make_step

CHANNELS, WIDTH, LATENT = 3, 64, 100


# ----------------------------------------------------------------------------- ganjax


def ganjax_step(size: int, batch: int):
    """A ``() -> None`` running one jitted ganjax train step, and that step's FLOPs."""
    objective = gan.GAN(gan.Latent(dim=LATENT))
    state = gan.create_state(
        jax.random.key(0),
        objective,
        dcgan.Generator(size, CHANNELS, WIDTH, LATENT),
        dcgan.Discriminator(size, WIDTH),
        (size, size, CHANNELS),
    )
    images = {"image": jax.random.uniform(jax.random.key(1), (batch, size, size, CHANNELS), minval=-1, maxval=1)}
    step = jax.jit(make_step(objective.phases()), donate_argnums=0)
    flops = step.lower(state, images).compile().cost_analysis()["flops"]
    holder = [state]

    def run():
        holder[0], metrics = step(holder[0], images)
        jax.block_until_ready(metrics)

    return run, flops


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


def torch_step(size: int, batch: int):
    """A ``() -> None`` running one PyTorch DCGAN iteration as in the PyTorch example."""
    _, n = dcgan.layout(size)
    net_g, net_d = NetG(n), NetD(n)
    net_g.apply(weights_init)
    net_d.apply(weights_init)
    criterion = tnn.BCEWithLogitsLoss()
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real = torch.rand(batch, CHANNELS, size, size) * 2 - 1
    ones, zeros = torch.ones(batch), torch.zeros(batch)

    def run():
        net_d.zero_grad()
        err_real = criterion(net_d(real), ones)
        err_real.backward()
        fake = net_g(torch.randn(batch, LATENT, 1, 1))
        err_fake = criterion(net_d(fake.detach()), zeros)
        err_fake.backward()
        opt_d.step()
        net_g.zero_grad()
        err_g = criterion(net_d(fake), ones)
        err_g.backward()
        opt_g.step()

    return run


# ----------------------------------------------------------------------------- timing


def seconds_per_call(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def matmul_step(n: int = 2048):
    """A ``() -> None`` running a jitted dense f32 ``n x n`` matmul, and its FLOPs."""
    a = jax.random.normal(jax.random.key(0), (n, n))
    matmul = jax.jit(lambda x: x @ x)
    return lambda: matmul(a).block_until_ready(), 2 * n**3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed repeat")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=os.cpu_count(),
        help="torch intra-op threads (default: all cores, as XLA:CPU uses)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    run_matmul, matmul_flops = matmul_step()
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} cores; batch {args.batch}"
    )
    print("size  ganjax img/s  torch img/s  ganjax/torch  GFLOP/step  GFLOP/s  matmul GFLOP/s  share of matmul")
    for size in args.sizes:
        run_jax, flops = ganjax_step(size, args.batch)
        run_torch = torch_step(size, args.batch)
        for fn in (run_jax, run_torch, run_matmul):  # warm-up: compile, allocate
            fn(), fn()
        times = {"ganjax": [], "torch": [], "matmul": []}
        for _ in range(args.repeats):  # alternate, so that load from elsewhere hits all three alike
            times["ganjax"].append(seconds_per_call(run_jax, args.steps))
            times["torch"].append(seconds_per_call(run_torch, args.steps))
            times["matmul"].append(seconds_per_call(run_matmul, 3))
        t_jax, t_torch, t_matmul = (statistics.median(times[name]) for name in ("ganjax", "torch", "matmul"))
        achieved, peak = flops / t_jax, matmul_flops / t_matmul
        print(
            f"{size:4d}  {args.batch / t_jax:12.1f}  {args.batch / t_torch:11.1f}  {t_torch / t_jax:12.2f}"
            f"  {flops / 1e9:10.2f}  {achieved / 1e9:7.1f}  {peak / 1e9:14.1f}  {achieved / peak:15.1%}"
        )


if __name__ == "__main__":
    main()
