"""DCGAN on any image folder: ``python -m experiments.dcgan --data.dir FOLDER [--part.field value ...]``.

Radford et al. 2015 with the ganhacks defaults: images in [-1, 1] and a tanh
output, separate all-real and all-fake batches for D, the non-saturating G
loss, Adam, one-sided label smoothing (Salimans et al. 2016); a D half as wide
as G, and a moving average of G's weights, sampled with BatchNorm statistics
recomputed for it, for the grids and the ``ema_`` metrics. G and D are
conditioned on balanced k-means clusters of the images, no labels used (Sage
et al. 2018, Liu et al. 2020): one cluster per 200 images, at most 50, none
for fewer than 400 images (``--clusters.k N`` sets them, 0 for the plain
DCGAN). The images' size and channels are the data's own unless given
(``--data.image-size 64 --data.channels 3``). FID and the other sample metrics
use the MNIST feature network for 28x28 grey images and InceptionV3 for others
(``--evaluation.fid-weights``). Without ``--data.dir`` it trains on the embedded
MNIST digits; ``experiments.dcgan_mnist`` is its MNIST variant.

Writes under ``--run.workdir``: ``config.json``, ``samples/step_*.png`` (one
fixed z), ``samples.gif``, ``interpolation.png`` (great-circle paths between
codes), ``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
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
    Monitor,
    Objective,
    Optimizers,
    Run,
    StateOptions,
)
from ganjax.run import main as run_main


@dataclasses.dataclass(frozen=True)
class Config(ClassHeadGAN):
    """DCGAN on an image folder."""

    model: DCGANModel = DCGANModel(d_width=32)
    """G of width 64, D of 32: D is most of a step's cost, so a narrow D buys more steps a minute (docs/results.md)."""
    objective: Objective = Objective(d_labels="one_sided")
    """The non-saturating loss with D's real targets at 0.9, which keeps D from overpowering G late in the run."""
    optim: Optimizers = Optimizers(lr_g=1e-3, lr_d=1e-3)
    """G's and D's optimizers: Adam at 1e-3 rather than the paper's 2e-4 (docs/results.md)."""
    state: StateOptions = StateOptions(ema_decay=0.999)
    """G's moving average, which the grids and the ema_ metrics sample (docs/results.md)."""
    clusters: Clusters = Clusters(k=None)
    """G and D conditioned on clusters of the images, as many as the data's size calls for (docs/results.md)."""
    schedule: GANSchedule = GANSchedule(steps=6000, batch_size=32)
    """6,000 steps of 32 reals: half the cost of batch 64 for a little less per step (docs/results.md)."""
    run: Run = Run(workdir="runs/dcgan")
    evaluation: Evaluation = Evaluation(eval_every=3000)
    monitor: Monitor = Monitor(max_grad_norm=250.0)
    """The failure monitor; D's BatchNorm makes its gradient norm large in healthy runs (docs/results.md)."""


RECIPE = DCGANRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
