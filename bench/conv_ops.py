"""Per-op times of the largest DCGAN 32x32 conv layers: ganjax (XLA) against PyTorch.

For D's stride-2 conv (64 -> 128 channels, 16x16 -> 8x8) and G's stride-2
transposed conv (128 -> 64 channels, 8x8 -> 16x16), batch 64: the forward, the
input gradient and the kernel gradient in JAX, and forward and forward+backward
in PyTorch. Medians over repeats, in milliseconds.

Run: python -m bench.conv_ops [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import torch
from jax import lax

from ganjax.nn.conv import conv_transpose

BATCH = 64


def median_ms(fn, repeats: int) -> float:
    fn(), fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def jax_products(op, x_shape, k_shape, repeats):
    """Milliseconds of ``op(x, k)``, its input gradient and its kernel gradient, each jitted alone."""
    x = jax.random.normal(jax.random.key(0), x_shape)
    k = 0.02 * jax.random.normal(jax.random.key(1), k_shape)
    g = jnp.ones_like(op(x, k))
    fns = {
        "forward": jax.jit(op),
        "input grad": jax.jit(lambda x, k, g: jax.vjp(lambda x: op(x, k), x)[1](g)[0]),
        "kernel grad": jax.jit(lambda x, k, g: jax.vjp(lambda k: op(x, k), k)[1](g)[0]),
    }
    args = {"forward": (x, k), "input grad": (x, k, g), "kernel grad": (x, k, g)}
    return {
        name: median_ms(lambda fn=fn, name=name: fn(*args[name]).block_until_ready(), repeats)
        for name, fn in fns.items()
    }


def torch_products(layer, x_shape, repeats):
    """Milliseconds of ``layer``'s forward and of forward + backward (input and weight gradients)."""
    x = torch.randn(*x_shape, requires_grad=True)

    def forward():
        with torch.no_grad():
            layer(x)

    def forward_backward():
        out = layer(x)
        out.backward(torch.ones_like(out))

    return {"forward": median_ms(forward, repeats), "forward+backward": median_ms(forward_backward, repeats)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--torch-threads", type=int, default=None)
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    dn = ("NHWC", "HWIO", "NHWC")
    cases = {
        "D conv 64->128 16->8": (
            jax_products(
                lambda x, k: lax.conv_general_dilated(x, k, (2, 2), "SAME", dimension_numbers=dn),
                (BATCH, 16, 16, 64),
                (4, 4, 64, 128),
                args.repeats,
            ),
            torch_products(torch.nn.Conv2d(64, 128, 4, 2, 1, bias=False), (BATCH, 64, 16, 16), args.repeats),
        ),
        "G convT 128->64 8->16": (
            jax_products(
                lambda x, k: conv_transpose(x, k, (2, 2), "SAME"), (BATCH, 8, 8, 128), (4, 4, 128, 64), args.repeats
            ),
            torch_products(torch.nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=False), (BATCH, 128, 8, 8), args.repeats),
        ),
    }
    for name, (ours, theirs) in cases.items():
        total = sum(ours.values())
        print(
            f"{name}: jax " + ", ".join(f"{k} {v:.1f}" for k, v in ours.items()) + f" (sum {total:.1f}) ms; "
            "torch " + ", ".join(f"{k} {v:.1f}" for k, v in theirs.items()) + " ms"
        )


if __name__ == "__main__":
    main()
