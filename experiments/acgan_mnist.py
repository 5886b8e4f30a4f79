"""AC-GAN on MNIST: ``python -m experiments.acgan_mnist``.

Odena, Olah and Shlens 2017: G takes the digit (embedded, concatenated with
z); D takes no label but has a class head beside its real/fake logit, and both
players add the cross-entropy of that head on the true labels of reals and the
drawn labels of fakes (``--conditioning.aux-class-weight``). It writes and logs
what ``experiments.cgan_mnist`` writes and logs, the mode-collapse signals included.
"""

from __future__ import annotations

import dataclasses

from experiments import cgan_mnist
from ganjax import evaluation
from ganjax.run import (
    ConditionalGAN,
    ConditionalModel,
    Conditioning,
    GANSchedule,
    Latent,
    Run,
    StateOptions,
    train_image_gan,
)
from ganjax.run import main as run_main
from ganjax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Config(ConditionalGAN):
    """AC-GAN on MNIST."""

    model: ConditionalModel = ConditionalModel(d_conditioning="auxiliary")
    conditioning: Conditioning = Conditioning(num_classes=10, aux_class_weight=1.0, aux_fake_class_weight=0.0)
    """Class conditioning; D learns classes from real digits only, as the fakes' term held back digits 3 and 4
    (docs/results.md)."""
    latent: Latent = Latent(dim=64)
    state: StateOptions = StateOptions(ema_decay=0.999)
    """What the state keeps: samples and class accuracy come from the moving average of G."""
    schedule: GANSchedule = GANSchedule(steps=6000)
    run: Run = Run(workdir="runs/acgan_mnist")


generator = cgan_mnist.generator
"""G as the run samples it (for :mod:`ganjax.sample`): the conditional G, drawn as experiments.cgan_mnist draws it."""


def train_and_evaluate(config: Config) -> tuple[TrainState, list[float] | None]:
    """Trains the AC-GAN; returns the final state and the per-class accuracy (None without classifier)."""
    init_key, sample_key, eval_key = cgan_mnist.keys(config)
    state, _ = train_image_gan(
        config,
        config.make_gan(config.conditioning),
        config.models,
        init_key,
        generator(config).grid(sample_key),
        sample_key,
        nrow=config.samples_per_class,
        evaluations=evaluation.conditional_hooks(config, eval_key),
    )
    return state, evaluation.write_class_accuracy(config, state, eval_key)


def main(argv=None):
    return run_main(Config, train_and_evaluate, argv)


if __name__ == "__main__":
    main()
