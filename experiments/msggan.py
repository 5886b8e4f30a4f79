"""MSG-GAN on MNIST: ``python -m experiments.msggan [--data-dir ../shared/data/mnist] [--field value ...]``.

Karnewar and Wang 2020 (:mod:`ganjax.models.msggan`): G emits 7, 14 and 28
pixel images (4 to 32 for 32x32 data), D reads each at its own depth; reals
are average-pooled to the same scales inside the step. The relativistic
average loss and Adam(3e-4, b1 0, b2 0.99) by default; every trick of
``ganjax.train.StepConfig`` and ``ganjax.optim`` is a flag. Writes under
``--workdir``: ``samples/step_*.png`` (the finest scale of one fixed z),
``scales.png`` (every scale of a few z, one row each), ``samples.gif``,
``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from ganjax import images, latent, train
from ganjax.training import devices as parallel
from ganjax.models import msggan
from ganjax.nn.resample import nearest_upsample


@dataclasses.dataclass
class Config(common.GANConfig):
    """MSG-GAN on MNIST."""

    workdir: str = "runs/msggan"
    steps: int = 1500
    batch_size: int = 32
    latent_dim: int = 64
    loss: str = "relativistic_average"
    lr_g: float = 3e-4
    lr_d: float = 3e-4
    b1: float = 0.0
    b2: float = 0.99
    g_width: int = 16
    d_width: int = 16
    num_samples: int = 100


def train_step(state: train.GANState, batch: dict[str, jax.Array],
               config: train.StepConfig) -> tuple[train.GANState, train.Metrics]:
    """:func:`ganjax.train.train_step` on the reals of ``batch['image']`` brought to every scale (packed)."""
    return train.train_step(state, {**batch, "image": msggan.real_scales(batch["image"])}, config)


def create_state(config: Config, key: jax.Array) -> train.GANState:
    """G, D and their optimizers from ``key``; D's input is the packed scales."""
    sides = msggan.scales(config.image_size)
    generator = msggan.Generator(config.image_size, config.channels, config.g_width, config.latent_dim)
    discriminator = msggan.Discriminator(config.image_size, config.d_width)
    return common.gan_state(config, key, generator, discriminator, (sides[-1], sides[-1], len(sides) * config.channels))


def all_scales(packed: jax.Array, sides: list[int]) -> jax.Array:
    """Every scale nearest-upsampled to the finest, interleaved per example: ``(N * n_scales, S, S, C)``."""
    scaled = [nearest_upsample(x, sides[-1] // x.shape[1]) for x in msggan.unpack(packed, sides)]
    stacked = jnp.stack(scaled, axis=1)
    return stacked.reshape(-1, *stacked.shape[2:])


def train_and_evaluate(config: Config) -> train.GANState:
    """Trains MSG-GAN; returns the final state. Samples come from one fixed z throughout (EMA params if kept)."""
    mesh = common.start(config)
    dataset = common.load_data(config)
    sides = msggan.scales(config.image_size)
    init_key, sample_key = jax.random.split(jax.random.key(config.seed))
    state = create_state(config, init_key)
    step = parallel.data_parallel(train_step, mesh, common.step_config(config), stacked=config.n_critic)
    fixed_z = parallel.replicate(latent.LATENTS[config.latent](sample_key, (config.num_samples, config.latent_dim)),
                                 mesh)
    sample = jax.jit(functools.partial(train.generate, use_ema=config.ema_decay > 0))
    finest = lambda s: msggan.unpack(sample(s, fixed_z), sides)[-1]
    state = common.fit(config, state, step, dataset, common.sample_writer(config, finest))
    common.write_animation(config)
    grid = np.asarray(all_scales(sample(state, fixed_z[:8]), sides))
    if jax.process_index() == 0:
        images.save_grid(grid, pathlib.Path(config.workdir) / "scales.png", nrow=len(sides), scale=2)
    return state


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
