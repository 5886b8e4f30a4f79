"""DCGAN on MNIST: ``python -m experiments.dcgan_mnist --data.dir ../shared/data/mnist [--part.field value ...]``.

Radford et al. 2015 with the ganhacks defaults: images in [-1, 1] and a tanh
output, separate all-real and all-fake batches for D, the non-saturating G
loss, Adam. Every option of the objective (``--objective.*``, ``--noise.*``),
the optimizers (``--optim.*``) and the state (``--state.*``) is a flag;
``--help`` lists them. Writes under ``--run.workdir``: ``config.json``,
``samples/step_*.png`` (one fixed z), ``samples.gif``, ``interpolation.png``
(great-circle paths between codes), ``training.png``, ``metrics.jsonl``,
``tb/`` and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses

import jax

from experiments import config as configs
from experiments import evaluation, runner
from ganjax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Config(configs.ImageGAN):
    """DCGAN on MNIST."""

    model: configs.DCGANModel = configs.DCGANModel()
    optim: configs.Optimizers = configs.Optimizers(lr_g=1e-3, lr_d=1e-3)
    """G's and D's optimizers: Adam at 1e-3 rather than the paper's 2e-4 (docs/results.md)."""
    schedule: configs.GANSchedule = configs.GANSchedule(steps=3600)
    """How long and on how much data each step trains (docs/results.md has the runs behind the defaults)."""
    run: configs.Run = configs.Run(workdir="runs/dcgan_mnist")
    evaluation: configs.Evaluation = configs.Evaluation(eval_every=1200)
    monitor: configs.Monitor = configs.Monitor(max_grad_norm=250.0)
    """The failure monitor; D's BatchNorm makes its gradient norm large in healthy runs (docs/results.md)."""
    num_samples: int = 100
    """images in each sample grid (rows of 10)."""


def train_and_evaluate(config: Config) -> TrainState:
    """Trains the GAN; returns the final state. Samples come from one fixed z throughout (EMA params if kept)."""
    init_key, sample_key, path_key = jax.random.split(jax.random.key(config.run.seed), 3)
    # G's always-on dropout (if any) draws from fixed keys, so the grids are comparable across steps.
    state, sample = runner.train_image_gan(
        config,
        config.make_gan(),
        lambda bn: config.model.build(config.data, config.latent.dim, bn),
        init_key,
        (config.latent.sample(sample_key, config.num_samples),),
        rngs={"dropout": jax.random.fold_in(sample_key, 1)},
        evaluations=evaluation.quality_hooks(config),
    )
    runner.write_interpolation(config.run.workdir, state, sample, path_key, config.latent)
    return state


def main(argv=None):
    train_and_evaluate(configs.parse(Config, argv))


if __name__ == "__main__":
    main()
