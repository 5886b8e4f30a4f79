"""Where the DCGAN step's milliseconds go, layer by layer: ganjax (XLA:CPU) next to PyTorch (oneDNN).

For the DCGAN of :mod:`bench.dcgan_step` (batch 64, 3 channels, width 64) at
each ``--sizes``: every layer's forward, input gradient and kernel gradient,
each run alone (a ``jax.jit`` of one product; a torch forward under
``no_grad``, or one ``torch.autograd.grad`` through a recorded forward), and
the Adam updates of both players. Each product is counted as often as each
framework's step runs it:

- ganjax's step (``ganjax.training.gan``): D forward 3x (real, fake, and the fake
  again in G's phase), D's kernel gradients 2x (D's phase), D's input gradients
  3x, but 1x for its first layer (only G's phase needs the images' gradient);
  G forward, input and kernel gradients 1x each (no input gradient for the
  dense first layer, whose input is z).
- the PyTorch example's step: the same, except that G's backward pass also
  computes D's kernel gradients (they are zeroed before D's next update), so
  D's kernel gradients run 3x.

The counted sum is set against the whole step (:func:`bench.dcgan_step.ganjax_step`,
:func:`bench.dcgan_step.torch_step`), measured in the same alternating rounds;
the difference is the rest of the step: BatchNorm, activations, losses and
each framework's overhead. Milliseconds are medians over ``--repeats``.

Run: python -m bench.step_profile [--sizes 32 64] [--repeats 7] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
import torch
from torch import nn as tnn

from bench import dcgan_step
from ganjax.models import dcgan
from ganjax.nn.conv import conv, conv_transpose

PRODUCTS = ("forward", "input grad", "kernel grad")


class Layer(NamedTuple):
    """One layer of the DCGAN and how often each framework's step runs each of its products.

    ``kind``: ``'conv'`` (4x4, stride 2), ``'convT'`` (4x4 transposed, stride 2) or ``'dense'``:
    ganjax's matmul between z and G's first 4x4 map, or between D's last 4x4 map and its logit,
    which the PyTorch example writes as a 4x4 transposed conv on a 1x1 map and a 4x4 valid conv.
    Channels and sides are those of the PyTorch layer. ``ganjax``/``torch``: the counts of forward,
    input gradient and kernel gradient per step.
    """

    name: str
    kind: str
    c_in: int
    c_out: int
    side_in: int
    bias: bool
    ganjax: tuple[int, int, int]
    torch: tuple[int, int, int]


def layers(size: int) -> list[Layer]:
    """G's layers then D's, as :class:`ganjax.models.dcgan.Generator`/``Discriminator`` build them."""
    base, n_up = dcgan.layout(size)
    if base != 4:
        raise ValueError(f"--sizes: the PyTorch example's DCGAN starts from a 4x4 map (sizes 4 * 2^k), got {size}")
    g_counts = (1, 1, 1)
    out, features = [], dcgan_step.WIDTH * 2 ** (n_up - 1)
    out.append(Layer(f"G dense z -> 4x4x{features}", "dense", dcgan_step.LATENT, features, 1, False,
                     (1, 0, 1), (1, 0, 1)))  # fmt: skip
    side = base
    for _ in range(n_up - 1):
        out.append(Layer(f"G convT {features}->{features // 2}, {side}->{2 * side}", "convT", features,
                         features // 2, side, False, g_counts, g_counts))  # fmt: skip
        side, features = 2 * side, features // 2
    out.append(Layer(f"G convT {features}->3, {side}->{2 * side}", "convT", features, dcgan_step.CHANNELS, side,
                     True, g_counts, g_counts))  # fmt: skip
    channels, side = dcgan_step.CHANNELS, size
    for i in range(dcgan.downsamplings(size)):
        first = i == 0
        width = dcgan_step.WIDTH * 2**i
        out.append(Layer(f"D conv {channels}->{width}, {side}->{side // 2}", "conv", channels, width, side, first,
                         (3, 1 if first else 3, 2), (3, 1 if first else 3, 3)))  # fmt: skip
        channels, side = width, side // 2
    out.append(Layer(f"D dense 4x4x{channels} -> 1", "dense", channels, 1, side, True, (3, 3, 2), (3, 3, 3)))
    return out


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


# ----------------------------------------------------------------------------- ganjax


def jax_products(layer: Layer, batch: int) -> dict[str, Callable[[], object]]:
    """``{product: () -> result}``, each product of ``layer`` jitted alone, as ganjax's models compute it."""
    if layer.kind == "dense":
        op = lambda x, k: x @ k
        flat_in, flat_out = layer.c_in * layer.side_in**2, layer.c_out * (16 if layer.side_in == 1 else 1)
        x_shape, k_shape = (batch, flat_in), (flat_in, flat_out)
    else:
        op = (
            (lambda x, k: conv(x, k, (2, 2), "SAME"))
            if layer.kind == "conv"
            else (lambda x, k: conv_transpose(x, k, (2, 2), "SAME"))
        )
        x_shape, k_shape = (batch, layer.side_in, layer.side_in, layer.c_in), (4, 4, layer.c_in, layer.c_out)
    x = jax.random.normal(jax.random.key(0), x_shape)
    k = 0.02 * jax.random.normal(jax.random.key(1), k_shape)
    g = jnp.ones_like(op(x, k))
    forward = jax.jit(op)
    input_grad = jax.jit(lambda x, k, g: jax.vjp(lambda x: op(x, k), x)[1](g)[0])
    kernel_grad = jax.jit(lambda x, k, g: jax.vjp(lambda k: op(x, k), k)[1](g)[0])
    return {
        "forward": lambda: forward(x, k).block_until_ready(),
        "input grad": lambda: input_grad(x, k, g).block_until_ready(),
        "kernel grad": lambda: kernel_grad(x, k, g).block_until_ready(),
    }


def jax_adam(size: int) -> Callable[[], object]:
    """Adam's update of both players' params (``optax.adam``, jitted, state donated), as in ganjax's step."""
    g = dcgan.Generator(size, dcgan_step.CHANNELS, dcgan_step.WIDTH, dcgan_step.LATENT)
    d = dcgan.Discriminator(size, dcgan_step.WIDTH)
    params = {
        "g": g.init(jax.random.key(0), jnp.zeros((2, dcgan_step.LATENT)))["params"],
        "d": d.init(jax.random.key(1), jnp.zeros((2, size, size, dcgan_step.CHANNELS)))["params"],
    }
    tx = optax.adam(2e-4, b1=0.5)
    grads = jax.tree.map(jnp.ones_like, params)

    def update(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    update = jax.jit(update, donate_argnums=(0, 1))
    holder = [params, tx.init(params)]

    def run():
        holder[:] = update(*holder, grads)
        jax.block_until_ready(holder)

    return run


# ----------------------------------------------------------------------------- PyTorch


def torch_layer(layer: Layer) -> tuple[tnn.Module, tuple[int, ...]]:
    """The PyTorch example's module for ``layer`` and its NCHW input shape (batch left out)."""
    if layer.kind == "dense" and layer.side_in == 1:
        return tnn.ConvTranspose2d(layer.c_in, layer.c_out, 4, 1, 0, bias=layer.bias), (layer.c_in, 1, 1)
    if layer.kind == "dense":
        return tnn.Conv2d(layer.c_in, layer.c_out, 4, 1, 0, bias=layer.bias), (layer.c_in, 4, 4)
    module = tnn.Conv2d if layer.kind == "conv" else tnn.ConvTranspose2d
    return module(layer.c_in, layer.c_out, 4, 2, 1, bias=layer.bias), (layer.c_in, layer.side_in, layer.side_in)


def torch_products(layer: Layer, batch: int) -> dict[str, Callable[[], object]]:
    """``{product: () -> result}``: the forward without autograd, and each gradient alone through a recorded forward."""
    module, shape = torch_layer(layer)
    x = torch.randn(batch, *shape, requires_grad=True)
    with torch.no_grad():
        g = torch.ones_like(module(x))
    out = module(x)

    @torch.no_grad()
    def forward():
        return module(x)

    return {
        "forward": forward,
        "input grad": lambda: torch.autograd.grad(out, x, g, retain_graph=True),
        "kernel grad": lambda: torch.autograd.grad(out, module.weight, g, retain_graph=True),
    }


def torch_adam(size: int) -> Callable[[], object]:
    """``torch.optim.Adam.step`` of both players' params, with their gradients set, as in the example."""
    _, n = dcgan.layout(size)
    nets = dcgan_step.NetG(n), dcgan_step.NetD(n)
    optimizers = [torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999)) for net in nets]
    for net in nets:
        for p in net.parameters():
            p.grad = torch.ones_like(p)
    return lambda: [opt.step() for opt in optimizers]


# ----------------------------------------------------------------------------- the profile


def profile(size: int, batch: int, repeats: int) -> list[dict]:
    """One row per (layer, product) and per whole-step item, with both frameworks' ms and counts per step."""
    rows = []
    for layer in layers(size):
        ours, theirs = jax_products(layer, batch), torch_products(layer, batch)
        for i, product in enumerate(PRODUCTS):
            if layer.ganjax[i] or layer.torch[i]:
                rows.append({"item": f"{layer.name}: {product}", "runs": (ours[product], theirs[product]),
                             "counts": (layer.ganjax[i], layer.torch[i])})  # fmt: skip
    rows.append({"item": "Adam, both players", "runs": (jax_adam(size), torch_adam(size)), "counts": (1, 1)})
    ganjax_step, _ = dcgan_step.ganjax_step(size, batch)
    steps = {"item": "whole step", "runs": (ganjax_step, dcgan_step.torch_step(size, batch)), "counts": (1, 1)}
    for row in (*rows, steps):  # warm-up: compile, allocate
        for run in row["runs"]:
            run(), run()
    times = [([], []) for _ in (*rows, steps)]
    for _ in range(repeats):  # alternate, so that load from elsewhere hits all alike
        for row, row_times in zip((*rows, steps), times, strict=True):
            for run, samples in zip(row["runs"], row_times, strict=True):
                samples.append(median_ms(run, 1))
    for row, row_times in zip((*rows, steps), times, strict=True):
        row["ms"] = tuple(statistics.median(t) for t in row_times)
    return [*rows, steps]


def report(size: int, rows: list[dict]) -> str:
    """The markdown table of :func:`profile`: per-step milliseconds of each item, the counted sum and the rest."""
    *items, step = rows
    lines = [
        f"### {size}x{size}",
        "",
        "| item | ganjax ms | torch ms | ganjax/torch | runs per step (ganjax, torch) "
        "| ganjax ms/step | torch ms/step |",
        "|---|---|---|---|---|---|---|",
    ]
    totals = [0.0, 0.0]
    for row in items:
        per_step = [ms * n for ms, n in zip(row["ms"], row["counts"], strict=True)]
        totals = [t + p for t, p in zip(totals, per_step, strict=True)]
        lines.append(
            f"| {row['item']} | {row['ms'][0]:.2f} | {row['ms'][1]:.2f} | {row['ms'][0] / row['ms'][1]:.2f} | "
            f"{row['counts'][0]}, {row['counts'][1]} | {per_step[0]:.1f} | {per_step[1]:.1f} |"
        )
    rest = [s - t for s, t in zip(step["ms"], totals, strict=True)]
    lines += [
        f"| **sum of the above** | | | {totals[0] / totals[1]:.2f} | | {totals[0]:.1f} | {totals[1]:.1f} |",
        f"| **whole step, measured** | | | {step['ms'][0] / step['ms'][1]:.2f} | | {step['ms'][0]:.1f} | "
        f"{step['ms'][1]:.1f} |",
        f"| rest: BatchNorm, activations, losses, overhead | | | | | {rest[0]:.1f} | {rest[1]:.1f} |",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--torch-threads", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.torch_threads)
    torch.manual_seed(0)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), {os.cpu_count()} cores; batch {args.batch}, {args.repeats} repeats"
    )
    for size in args.sizes:
        before = os.getloadavg()[0]
        rows = profile(size, args.batch, args.repeats)
        after = os.getloadavg()[0]
        verdict = dcgan_step.load_verdict((before, after), os.cpu_count())
        print(report(size, rows))
        print(f"\nload {before:.2f} -> {after:.2f}" + (f": {verdict}" if verdict else "") + "\n", flush=True)


if __name__ == "__main__":
    main()
