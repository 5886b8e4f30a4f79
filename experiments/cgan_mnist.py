"""Conditional DCGAN on MNIST: ``python -m experiments.cgan_mnist``.

G takes the digit through a small embedding concatenated with z; D takes it as
extra image channels (``--model.d-conditioning channels``, the default),
through the projection of Miyato and Koyama 2018 (``projection``), or predicts
it with a class head (``auxiliary`` with ``--conditioning.aux-class-weight 1``,
the AC-GAN of ``experiments.acgan_mnist``); see :mod:`ganjax.models.conditional`.
Past-opponent swaps (:mod:`ganjax.swaps`) are on with ``--swaps.every N --swaps.duration M``.

Writes under ``--run.workdir``: ``config.json``, ``samples/step_*.png`` (row
``r`` is digit ``r``, one fixed z per column; EMA params when
``--state.ema-decay`` is set), ``samples.gif``, ``training.png``,
``metrics.jsonl``, ``tb/``, ``checkpoints/`` and, when the MNIST classifier is
found in ``--class-accuracy.classifier-dir``, ``class_accuracy.json``: per
class ``c``, the share of G's class-``c`` samples that the classifier labels
``c`` (also logged as ``class_accuracy_min`` every ``eval_every`` steps).
Every ``--class-accuracy.eval-every`` steps, with or without the classifier,
``duplicate_share`` and ``pairwise_distance_ratio`` of ``eval_per_class``
samples of each class (1,000 at most) against the digits are logged too
(``ema_`` ones for the moving average of G); the failure monitor's
``mode_collapse`` check reads them.
"""

from __future__ import annotations

import dataclasses

from ganjax.run import ConditionalGAN, ConditionalRecipe, GANSchedule, Latent, Run, StateOptions, Swaps
from ganjax.run import main as run_main


@dataclasses.dataclass(frozen=True)
class Config(ConditionalGAN):
    """Conditional DCGAN on MNIST."""

    latent: Latent = Latent(dim=64)
    state: StateOptions = StateOptions(ema_decay=0.999)
    """What the state keeps: samples and class accuracy come from the moving average of G."""
    schedule: GANSchedule = GANSchedule(steps=6000)
    run: Run = Run(workdir="runs/cgan_mnist")
    swaps: Swaps = Swaps()


RECIPE = ConditionalRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
