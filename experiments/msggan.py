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
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from ganjax import data, evaluation, images, sample, validate
from ganjax.evaluation import Diversity
from ganjax.models import msggan
from ganjax.nn import precision
from ganjax.nn.resample import nearest_upsample
from ganjax.run import Devices, GANSchedule, Latent, Objective, Optimizers, Run, UnconditionalGAN, train_image_gan
from ganjax.run import main as run_main
from ganjax.training.state import TrainState


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


def generator(config: Config) -> sample.Generator:
    """G as the run samples it (for :mod:`ganjax.sample`): its finest scale, z from the second of two keys split
    from ``run.seed``."""
    dtype = precision.compute_dtype(config.model.compute_dtype)
    module = msggan.Generator(
        config.data.image_size, config.data.channels, config.model.g_width, config.latent.dim, dtype
    )
    sides = msggan.scales(config.data.image_size)
    return sample.Generator(
        module,
        draw=config.latent.sample,
        key=jax.random.split(jax.random.key(config.run.seed))[1],
        num=config.num_samples,
        nrow=10,
        latent=config.latent,
        apply=lambda variables, inputs, key, step: finest(module.apply(variables, *inputs, train=False), sides),
    )


def diversity_hooks(config: Config, dataset: data.ImageDataset) -> list:
    """The Evaluate hooks of the mode-collapse signals of G's finest scale (and its moving average's, when kept)
    against ``dataset``'s full-size images (:func:`experiments.evaluation.generator_diversity`)."""
    sides, part = msggan.scales(config.data.image_size), config.diversity
    view = lambda packed: finest(packed, sides)
    return evaluation.generator_diversity(config, part.eval_every, part.eval_samples, view=view)(dataset)


def train_and_evaluate(config: Config) -> TrainState:
    """Trains MSG-GAN; returns the final state. Samples come from one fixed z throughout (EMA params if kept)."""
    init_key, sample_key = jax.random.split(jax.random.key(config.run.seed))
    sides = msggan.scales(config.data.image_size)
    g = generator(config)
    dtype = precision.compute_dtype(config.model.compute_dtype)
    models = lambda _: (g.module, msggan.Discriminator(config.data.image_size, config.model.d_width, dtype))
    fixed = g.grid(sample_key)
    state, sample_fn = train_image_gan(
        config,
        config.make_gan(),
        models,
        init_key,
        fixed,
        sample_key,
        example_shape=(sides[-1], sides[-1], len(sides) * config.data.channels),
        view=lambda packed: finest(packed, sides),
        inputs=lambda batch: {**batch, "image": msggan.real_scales(batch["image"])},
        evaluations=functools.partial(diversity_hooks, config),
    )
    grid = np.asarray(all_scales(sample_fn(state, np.asarray(fixed[0][:8])), sides))
    if jax.process_index() == 0:
        images.save_grid(grid, pathlib.Path(config.run.workdir) / "scales.png", nrow=len(sides), scale=2)
    return state


def main(argv=None):
    return run_main(Config, train_and_evaluate, argv)


if __name__ == "__main__":
    main()
