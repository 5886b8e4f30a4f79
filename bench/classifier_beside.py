"""An experiment's train steps and the MNIST feature network's training, one after the other and at once.

A fresh clone's first MNIST run trains the feature network
(:func:`ganjax.evaluation.train_classifier`) on a background thread beside
the GAN (:func:`ganjax.evaluation.quality_hooks`). This times what that
buys: ``--gan-steps`` of the experiment's step (built as
:mod:`bench.experiment_step` builds it, on random batches) and ``--classifier-steps``
of the feature network's training, first one after the other, then at once (the
classifier on a second thread), alternating for ``--repeats`` rounds after a
warm-up of each. Prints each round's wall times, the 1-minute load average
before and after, and whether every classifier trained (alone or beside the
GAN) ended at the same params, bit for bit.

Run: python -m bench.classifier_beside dcgan_mnist [--gan-steps 300] [--classifier-steps 300] [--repeats 2] [FLAGS]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import threading
import time
from unittest import mock

import jax
from tqdm import tqdm

from bench import experiment_step, trees
from ganjax import evaluation
from ganjax.evaluation import ClassifierTraining
from ganjax.training import loop


def no_bar(*args, **kwargs):
    return tqdm(*args, **{**kwargs, "disable": True})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("experiment", help="an image GAN experiment that bench.experiment_step can build")
    parser.add_argument("--gan-steps", type=int, default=300)
    parser.add_argument("--classifier-steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args, flags = parser.parse_known_args(argv)
    config, step, state, batch = experiment_step.build(args.experiment, flags)
    settings = dataclasses.replace(ClassifierTraining(), steps=args.classifier_steps)
    digits = config.data.load()

    def gan():
        nonlocal state
        for _ in range(args.gan_steps):
            state, metrics = step(state, batch)
        jax.block_until_ready(metrics)

    trained = []

    def classifier():
        with mock.patch.object(loop, "tqdm", no_bar):  # the train loop's progress bar off
            trained.append(jax.block_until_ready(evaluation.train_classifier(settings, digits).params))

    def one_after_the_other() -> float:
        gan()
        gan_done = time.perf_counter()
        classifier()
        return gan_done

    def at_once() -> float:
        thread = threading.Thread(target=classifier)
        thread.start()
        gan()
        gan_done = time.perf_counter()
        thread.join()
        return gan_done

    gan(), classifier()  # compiles both
    print(f"load before: {os.getloadavg()[0]:.2f}")
    for _ in range(args.repeats):
        for name, run in (("one after the other", one_after_the_other), ("at once", at_once)):
            start = time.perf_counter()
            gan_done = run()
            print(
                f"{name}: {args.gan_steps} GAN steps {gan_done - start:.1f} s, "
                f"with {args.classifier_steps} classifier steps {time.perf_counter() - start:.1f} s",
                flush=True,
            )
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print(f"classifier params equal bit for bit: {trees.equal_bit_for_bit(*trained)}")


if __name__ == "__main__":
    main()
