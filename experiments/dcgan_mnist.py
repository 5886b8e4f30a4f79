"""DCGAN on MNIST: ``python -m experiments.dcgan_mnist [--part.field value ...]``.

The MNIST variant of ``experiments.dcgan`` (Radford et al. 2015 with the
ganhacks defaults, G and D conditioned on k-means clusters of the images, a
moving average of G sampled for the grids and the ``ema_`` metrics): 50
clusters of the embedded 10,000 MNIST test digits, no labels used (``--clusters.k
0`` for the plain DCGAN), MNIST FID with the MNIST feature network. Every
option of the objective (``--objective.*``, ``--noise.*``), the optimizers
(``--optim.*``) and the state (``--state.*``) is a flag; ``--help`` lists them.
Writes what ``experiments.dcgan`` writes, under ``--run.workdir``.
"""

from __future__ import annotations

import dataclasses

from experiments import dcgan
from ganjax.run import Clusters, Run
from ganjax.run import main as run_main


@dataclasses.dataclass(frozen=True)
class Config(dcgan.Config):
    """DCGAN on MNIST."""

    clusters: Clusters = Clusters(k=50)
    """G and D conditioned on 50 clusters of the digits, so G draws few in-between digits (docs/results.md)."""
    run: Run = Run(workdir="runs/dcgan_mnist")


RECIPE = dcgan.RECIPE


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
