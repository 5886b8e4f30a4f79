"""AC-GAN on MNIST: ``python -m experiments.acgan_mnist [--data-dir ../shared/data/mnist] [--field value ...]``.

Odena, Olah and Shlens 2017: G takes the digit (embedded, concatenated with
z); D takes no label but has a class head beside its real/fake logit, and both
players add the cross-entropy of that head on the true labels of reals and the
drawn labels of fakes (``StepConfig.aux_class_weight``; seed items 001 §12,
004 §10). Everything else, and what it writes, is ``experiments.cgan_mnist``'s.
"""

from __future__ import annotations

import dataclasses

from experiments import cgan_mnist, common


@dataclasses.dataclass
class Config(cgan_mnist.Config):
    """AC-GAN on MNIST."""

    workdir: str = "runs/acgan_mnist"
    conditioning: str = "auxiliary"
    aux_class_weight: float = 1.0
    # D learns classes from real digits only: with the fakes' term too (Odena et al.), digits 3 and 4
    # reached only 0.34 and 0.70 per-class accuracy at the defaults (docs/results.md).
    aux_fake_class_weight: float = 0.0


create_state = cgan_mnist.create_state
train_and_evaluate = cgan_mnist.train_and_evaluate


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
