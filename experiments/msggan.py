"""MSG-GAN on MNIST: ``python -m experiments.msggan [--part.field value ...]``.

Karnewar and Wang 2020 (:mod:`ganjax.models.msggan`): G emits 7, 14 and 28
pixel images (4 to 32 for 32x32 data), D reads each at its own depth; reals
are average-pooled to the same scales inside the step (packed along channels).
The relativistic average loss and Adam(3e-4, b1 0, b2 0.99) by default.
Writes under ``--run.workdir``: ``config.json``, ``samples/step_*.png`` (the
finest scale of one fixed z), ``scales.png`` (every scale of a few z, one row
each), ``samples.gif``, ``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
Every ``--diversity.eval-every`` steps it logs ``duplicate_share`` and
``pairwise_distance_ratio`` of ``--diversity.eval-samples`` samples at the finest
scale against the full-size images (``ema_`` too for a moving average of G),
which the failure monitor's ``mode_collapse`` check reads.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import data, evaluation, images, validate
from ganjax.evaluation import Diversity
from ganjax.models import msggan
from ganjax.nn import precision
from ganjax.nn.resample import nearest_upsample
from ganjax.run import Devices, GANRecipe, GANSchedule, Generator, Latent, Objective, Optimizers, Run, UnconditionalGAN
from ganjax.run import main as run_main
from ganjax.training import devices
from ganjax.training.phases import batches_per_step, make_step


@dataclasses.dataclass(frozen=True)
class Model:
    """MSG-GAN's G and D (ganjax.models.msggan)."""

    g_width: int = 16
    """G's base channels."""
    d_width: int = 16
    """D's base channels."""
    compute_dtype: precision.ComputeDtype = "auto"
    """G's and D's activations and convolutions: float32, bfloat16 (params, optimizer state, losses and the
    minibatch statistic stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        for field in ("g_width", "d_width"):
            validate.at_least(self, field, 1)
        validate.known_dtype(self, "compute_dtype")


@dataclasses.dataclass(frozen=True)
class Config(UnconditionalGAN):
    """MSG-GAN on MNIST."""

    model: Model = Model()
    latent: Latent = Latent(dim=64)
    objective: Objective = Objective(loss="relativistic_average")
    optim: Optimizers = Optimizers(lr_g=3e-4, lr_d=3e-4, b1=0.0, b2=0.99)
    schedule: GANSchedule = GANSchedule(steps=1500, batch_size=32)
    run: Run = Run(workdir="runs/msggan")
    devices: Devices = Devices()
    """The devices a run uses (the models have no BatchNorm to synchronize)."""
    diversity: Diversity = Diversity()

    def __post_init__(self):
        super().__post_init__()
        if self.augment.kind != "none":  # D's input is every scale packed along channels, not one image
            validate.refuse(self.augment, "kind", "MSG-GAN's D sees all scales packed along channels; augment none")


def all_scales(packed: jax.Array, sides: list[int]) -> jax.Array:
    """Every scale nearest-upsampled to the finest, interleaved per example: ``(N * n_scales, S, S, C)``."""
    scaled = [nearest_upsample(x, sides[-1] // x.shape[1]) for x in msggan.unpack(packed, sides)]
    stacked = jnp.stack(scaled, axis=1)
    return stacked.reshape(-1, *stacked.shape[2:])


def finest(packed: jax.Array, sides: list[int]) -> jax.Array:
    """The finest of the scales G packs along channels."""
    return msggan.unpack(packed, sides)[-1]


class MSGGANRecipe(GANRecipe):
    """MSG-GAN's G (every scale packed along channels) and D (reading them all); grids show the finest scale,
    and ``scales.png`` every scale of eight samples at the end."""

    def models(self, config, bn_axis_name=None):
        dtype = precision.compute_dtype(config.model.compute_dtype)
        return (
            msggan.Generator(
                config.data.image_size, config.data.channels, config.model.g_width, config.latent.dim, dtype
            ),
            msggan.Discriminator(config.data.image_size, config.model.d_width, dtype),
        )

    def example_shape(self, config) -> tuple[int, ...]:
        sides = msggan.scales(config.data.image_size)
        return sides[-1], sides[-1], len(sides) * config.data.channels

    def step(self, config, phases, mesh):
        """The step with each device's real batch taken to every scale (:func:`ganjax.models.msggan.real_scales`)."""
        inner = make_step(phases)
        step = lambda state, batch, axis_name=None: inner(
            state, {**batch, "image": msggan.real_scales(batch["image"])}, axis_name
        )
        return devices.data_parallel(step, mesh, batches_per_step(phases))

    def view(self, config, images):
        return finest(images, msggan.scales(config.data.image_size))

    def generator(self, config) -> Generator:
        """G's finest scale, z from the run's sample key."""
        g = super().generator(config)
        sides = msggan.scales(config.data.image_size)
        module = g.module
        return dataclasses.replace(
            g, apply=lambda variables, inputs, key, step: finest(module.apply(variables, *inputs, train=False), sides)
        )

    def evaluations(self, config, dataset: data.ImageDataset) -> list:
        """The mode-collapse signals of G's finest scale (and its moving average's, when kept) against
        ``dataset``'s full-size images (:func:`ganjax.evaluation.generator_diversity`)."""
        sides, part = msggan.scales(config.data.image_size), config.diversity
        view = lambda packed: finest(packed, sides)
        return evaluation.generator_diversity(config, part.eval_every, part.eval_samples, view=view)(dataset)

    def finish(self, config, state, grid, dataset):
        """``scales.png``: every scale of the grid's first eight samples, and ``interpolation.png``."""
        sides = msggan.scales(config.data.image_size)
        g = self.generator(config)
        (z,) = g.grid(g.key)
        packed = self.sampler(config)(state, np.asarray(z[:8]))
        if jax.process_index() == 0:
            picture = np.asarray(all_scales(packed, sides))
            images.save_grid(picture, pathlib.Path(config.run.workdir) / "scales.png", nrow=len(sides), scale=2)
        return super().finish(config, state, grid, dataset)


RECIPE = MSGGANRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
