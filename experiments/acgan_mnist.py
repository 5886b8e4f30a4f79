"""AC-GAN on MNIST: ``python -m experiments.acgan_mnist``.

Odena, Olah and Shlens 2017: G takes the digit (embedded, concatenated with
z); D takes no label but has a class head beside its real/fake logit, and both
players add the cross-entropy of that head on the true labels of reals and the
drawn labels of fakes (``--conditioning.aux-class-weight``). It writes and logs
what ``experiments.cgan_mnist`` writes and logs, the mode-collapse signals included.
"""

from __future__ import annotations

import dataclasses

from ganjax.run import (
    ConditionalGAN,
    ConditionalModel,
    ConditionalRecipe,
    Conditioning,
    GANSchedule,
    Latent,
    Run,
    StateOptions,
)
from ganjax.run import main as run_main


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


RECIPE = ConditionalRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
