"""The MNIST feature network's train step with flax's max-pooling and with :func:`ganjax.nn.max_pool`.

Every MNIST evaluation first trains the feature network once
(:func:`ganjax.evaluation.train_classifier`, 1,500 steps of batch 128), a
share of a fresh clone's first run. Both variants run the same step
(:func:`ganjax.evaluation.make_classifier_step`: its one phase over the classifier player) on the same batches,
alternately (``--repeats`` rounds of ``--steps`` steps, after two warm-up
steps); each figure is the median over rounds. The variants must end at the
same params, bit for bit, or the script says so. The 1-minute load average is
printed before and after.

Run: python -m bench.feature_network [--steps 20] [--repeats 5] [--batch-size 128]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import time
from unittest import mock

import flax.linen as nn
import jax

from bench import trees
from ganjax import data, evaluation
from ganjax.evaluation import ClassifierTraining, mnist_classifier


def flax_max_pool(x, size):
    return nn.max_pool(x, (size, size), strides=(size, size))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    settings = dataclasses.replace(ClassifierTraining(), batch_size=args.batch_size)
    digits = data.load(str(data.PACKAGED_MNIST))
    batcher = data.Batcher(digits, args.batch_size, settings.seed)
    batches = [batcher.batch(i) for i in range(args.steps)]
    variants = {}
    for name, pool in (("flax max_pool", flax_max_pool), ("ganjax.nn.max_pool", mnist_classifier.max_pool)):
        with mock.patch.object(mnist_classifier, "max_pool", pool):
            step = evaluation.make_classifier_step(settings)  # traced here, with this pooling
            state = evaluation.classifier_state(settings)
            for i in range(2):
                state, _ = step(state, batches[i])
        variants[name] = {"step": step, "state": state, "times": []}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for variant in variants.values():
            state = variant["state"]
            start = time.perf_counter()
            for batch in batches:
                state, _ = variant["step"](state, batch)
            jax.block_until_ready(state)
            variant["times"].append(1e3 * (time.perf_counter() - start) / args.steps)
            variant["state"] = state
    load_after = os.getloadavg()[0]
    medians = {name: statistics.median(variant["times"]) for name, variant in variants.items()}
    for name, ms in medians.items():
        print(f"{name:20s} {ms:7.1f} ms/step")
    flax_ms, ganjax_ms = medians.values()
    same = trees.equal_bit_for_bit(*(variant["state"].players["classifier"].params for variant in variants.values()))
    print(f"speed-up {flax_ms / ganjax_ms:.2f}x; params equal bit for bit: {same}")
    print(f"load (1 min) {load_before:.2f} -> {load_after:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
