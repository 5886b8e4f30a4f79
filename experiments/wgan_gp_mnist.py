"""WGAN-GP on MNIST: ``python -m experiments.wgan_gp_mnist``.

Gulrajani et al. 2017: the Wasserstein loss with a two-sided gradient penalty
of weight 10 on random interpolates, several critic updates per G update (each
on its own batch; 3 here, the paper's 5 cost more than they gain in a
15-minute run, docs/results.md), Adam with b1=0.5, b2=0.9, and no BatchNorm in
the critic (the penalty is per example). The DCGAN architecture; writes what
``experiments.dcgan_mnist`` writes. Samples and the ``ema_`` metrics come from
a moving average of G's weights (with BatchNorm statistics recomputed for it).
G and the critic are conditioned on 50 balanced k-means clusters of the
images, no labels used (the projection critic of Miyato and Koyama 2018; each
fake takes the cluster of the real it is paired with, so the penalty's
interpolates join two images of one cluster); ``--clusters.k 0`` for the
plain WGAN-GP.
"""

from __future__ import annotations

import dataclasses

from ganjax.evaluation import Evaluation
from ganjax.run import (
    ClassHeadGAN,
    Clusters,
    DCGANModel,
    DCGANRecipe,
    GANSchedule,
    Objective,
    Optimizers,
    Run,
    StateOptions,
)
from ganjax.run import main as run_main


@dataclasses.dataclass(frozen=True)
class Config(ClassHeadGAN):
    """WGAN-GP on MNIST."""

    model: DCGANModel = DCGANModel(g_width=32, d_width=16, d_norm="none")
    """The DCGAN G and a critic without BatchNorm, both narrow: more G steps a minute (docs/results.md)."""
    objective: Objective = Objective(loss="wasserstein", penalty="wgan_gp", penalty_weight=10.0)
    optim: Optimizers = Optimizers(lr_g=3e-4, lr_d=3e-4, b1=0.5, b2=0.9)
    """Adam at 3e-4 rather than the paper's 1e-4: a short run learns far faster (docs/results.md)."""
    state: StateOptions = StateOptions(ema_decay=0.999)
    """G's moving average, sampled with statistics recomputed for it (docs/results.md)."""
    clusters: Clusters = Clusters(k=50, d_conditioning="projection", fake_classes="reals")
    """G and the critic conditioned on clusters of the digits, each fake beside a real of its cluster, so the
    penalty's interpolates join two images of one cluster (docs/results.md)."""
    schedule: GANSchedule = GANSchedule(steps=18000, batch_size=16, n_critic=3)
    """How long, on how much data and with how many critic updates each step trains: a small batch and 3 critic
    updates buy more G steps a minute (docs/results.md)."""
    run: Run = Run(workdir="runs/wgan_gp_mnist")
    evaluation: Evaluation = Evaluation(eval_every=6000)


RECIPE = DCGANRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
