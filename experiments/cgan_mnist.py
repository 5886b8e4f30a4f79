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

import jax

from ganjax import evaluation, sample
from ganjax.run import ConditionalGAN, GANSchedule, Latent, Run, StateOptions, Swaps, train_image_gan
from ganjax.run import main as run_main
from ganjax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Config(ConditionalGAN):
    """Conditional DCGAN on MNIST."""

    latent: Latent = Latent(dim=64)
    state: StateOptions = StateOptions(ema_decay=0.999)
    """What the state keeps: samples and class accuracy come from the moving average of G."""
    schedule: GANSchedule = GANSchedule(steps=6000)
    run: Run = Run(workdir="runs/cgan_mnist")
    swaps: Swaps = Swaps()


def keys(config: ConditionalGAN) -> jax.Array:
    """The run's three keys, split from ``run.seed``: the players' init, the sample grid's, the class checks'."""
    return jax.random.split(jax.random.key(config.run.seed), 3)


def generator(config: ConditionalGAN) -> sample.Generator:
    """G as the run samples it (for :mod:`ganjax.sample`): row ``c`` of its grid is class ``c``, one z per image."""
    labels = evaluation.class_labels(config.conditioning.num_classes, config.samples_per_class)
    return sample.Generator(
        config.models()[0],
        draw=config.latent.sample,
        key=keys(config)[1],
        num=len(labels),
        nrow=config.samples_per_class,
        labels=labels,
        num_classes=config.conditioning.num_classes,
        latent=config.latent,
    )


def train_and_evaluate(config: Config) -> tuple[TrainState, list[float] | None]:
    """Trains the conditional GAN; returns the final state and the per-class accuracy (None without classifier)."""
    init_key, sample_key, eval_key = keys(config)
    state, _ = train_image_gan(
        config,
        config.make_gan(config.conditioning),
        config.models,
        init_key,
        generator(config).grid(sample_key),
        sample_key,
        nrow=config.samples_per_class,
        evaluations=evaluation.conditional_hooks(config, eval_key),
        prepare=config.swaps.prepare,
        wrap_step=config.swaps.wrap,
    )
    return state, evaluation.write_class_accuracy(config, state, eval_key)


def main(argv=None):
    return run_main(Config, train_and_evaluate, argv)


if __name__ == "__main__":
    main()
