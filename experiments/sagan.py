"""SAGAN on MNIST: ``python -m experiments.sagan [--part.field value ...]``.

Zhang et al. 2019: residual G and D with spectral norm everywhere and
self-attention at a middle resolution (:mod:`ganjax.models.sagan`), the hinge
loss, and TTUR: Adam with lr_D 4e-4, lr_G 1e-4, b1 0, b2 0.9. Writes under
``--run.workdir``: ``config.json``, ``samples/step_*.png`` (one fixed z),
``samples.gif``, ``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
Every ``--diversity.eval-every`` steps it logs ``duplicate_share`` and
``pairwise_distance_ratio`` of ``--diversity.eval-samples`` samples against the
digits (``ema_`` too for a moving average of G), which the failure monitor's
``mode_collapse`` check reads.

``--model.num-classes 10`` trains the class-conditional SAGAN: conditional
BatchNorm in G and the projection D; sample row ``r`` is then digit ``r``, and the
samples evaluated go round every class.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from ganjax import data, evaluation, validate
from ganjax.evaluation import Diversity
from ganjax.models import sagan
from ganjax.nn import precision
from ganjax.run import (
    Conditioning,
    GANRecipe,
    GANSchedule,
    Generator,
    Latent,
    Objective,
    Optimizers,
    Run,
    UnconditionalGAN,
    run_keys,
)
from ganjax.run import main as run_main


@dataclasses.dataclass(frozen=True)
class Model:
    """SAGAN's G and D (ganjax.models.sagan)."""

    g_width: int = 16
    """G's base channels."""
    d_width: int = 16
    """D's base channels."""
    num_classes: int = 0
    """> 0: class-conditional G (conditional BatchNorm) and projection D; batches then need labels."""
    compute_dtype: precision.ComputeDtype = "auto"
    """G's and D's activations, convolutions and attention: float32, bfloat16 (params, optimizer state, losses,
    softmax and BatchNorm statistics stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        validate.known_dtype(self, "compute_dtype")
        for field in ("g_width", "d_width", "num_classes"):
            if getattr(self, field) < (0 if field == "num_classes" else 1):
                validate.refuse(self, field, f"must be at least {0 if field == 'num_classes' else 1}")


@dataclasses.dataclass(frozen=True)
class Config(UnconditionalGAN):
    """SAGAN on MNIST."""

    model: Model = Model()
    latent: Latent = Latent(dim=128)
    objective: Objective = Objective(loss="hinge")
    optim: Optimizers = Optimizers(lr_g=1e-4, lr_d=4e-4, b1=0.0, b2=0.9)
    schedule: GANSchedule = GANSchedule(steps=1500)
    run: Run = Run(workdir="runs/sagan")
    num_samples: int = 100
    """images in each sample grid (rows of 10; row r is class r when conditional)."""
    diversity: Diversity = Diversity()


def players(config: Config, bn_axis_name: str | None = None) -> tuple[sagan.Generator, sagan.Discriminator]:
    """``(G, D)``; G's BatchNorm synchronized over ``bn_axis_name``."""
    image, m = config.data, config.model
    dtype = precision.compute_dtype(m.compute_dtype)
    return (
        sagan.Generator(
            image.image_size, image.channels, m.g_width, config.latent.dim, m.num_classes, bn_axis_name, dtype
        ),
        sagan.Discriminator(image.image_size, m.d_width, m.num_classes, dtype),
    )


class SAGANRecipe(GANRecipe):
    """SAGAN's G and D; when conditional, the grid's image ``i`` of ``n`` is of class ``i * num_classes // n``
    and the samples evaluated go round every class."""

    def models(self, config, bn_axis_name=None):
        return players(config, bn_axis_name)

    def gan(self, config):
        return config.make_gan(Conditioning(num_classes=config.model.num_classes))

    def generator(self, config) -> Generator:
        n, classes = config.num_samples, config.model.num_classes
        return Generator(
            players(config)[0],
            draw=config.latent.sample,
            key=run_keys(config.run.seed).sample,
            num=n,
            nrow=10,
            labels=jnp.arange(n) * classes // n if classes else None,
            num_classes=classes,
            latent=config.latent,
        )

    def evaluations(self, config, dataset: data.ImageDataset) -> list:
        """The mode-collapse signals of G (and its moving average, when kept) against ``dataset``
        (:func:`ganjax.evaluation.generator_diversity`)."""
        part = config.diversity
        return evaluation.generator_diversity(config, part.eval_every, part.eval_samples, config.model.num_classes)(
            dataset
        )


RECIPE = SAGANRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
