"""Progressive growing GAN on MNIST padded to 32x32: ``python -m experiments.pggan [--data-dir ../shared/data/mnist]``.

Karras et al. 2018 (:mod:`ganjax.models.pggan`, :mod:`ganjax.progressive`):
stages 4, 8, 16 and 32 pixels, each new stage faded in over ``--fade-images``
images then trained for ``--stable-images``; pixel norm, equalized learning
rate, minibatch stddev; WGAN-GP (weight 10) with the drift term (0.001);
Adam(1e-3, b1 0, b2 0.99) as in the paper; samples from an EMA of G (decay
0.99). Each stage's step compiles once; ``--resume`` continues mid-stage at the
same fade-in weight. Writes under ``--workdir``: ``samples/step_*.png`` (one
fixed z, upsampled to the final size), ``samples.gif``, ``training.png``,
``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from experiments import common
from ganjax import data, progressive, train
from ganjax.training import devices as parallel
from ganjax.models import pggan
from ganjax.nn.resample import nearest_upsample


@dataclasses.dataclass
class Config(common.GANConfig):
    """Progressive growing GAN on MNIST padded to 32x32."""

    workdir: str = "runs/pggan"
    image_size: int = 32
    steps: int = 0  # 0: until the last stage has faded in and trained stable_images
    batch_size: int = 32
    latent_dim: int = 64
    loss: str = "wasserstein"  # the step's loss is always WGAN-GP; this tells the failure monitor so
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    b1: float = 0.0
    b2: float = 0.99
    ema_decay: float = 0.99  # the paper's 0.999 averages over ~1000 steps, longer than a stage of this short run
    penalty_weight: float = 10.0
    drift: float = 0.001
    # 500 steps per fade-in and per stable period: at 6,000 images (188 steps) the 16x16 and 32x32 stages
    # ended in noise; at 16,000 they end in clean strokes, most of them readable digits.
    fade_images: int = 16000
    stable_images: int = 16000
    g_width: int = 16
    d_width: int = 16
    max_width: int = 64
    num_samples: int = 64


def schedule(config: Config) -> progressive.Schedule:
    """The stages from 4x4 up to ``image_size`` (a power of two times 4)."""
    num_stages = int(math.log2(config.image_size // 4)) + 1
    if pggan.resolution(num_stages - 1) != config.image_size:
        raise ValueError(f"pggan: image_size must be 4 * 2^k, got {config.image_size}")
    return progressive.Schedule(num_stages, config.batch_size, config.fade_images, config.stable_images)


def step_config(config: Config, stage: int) -> progressive.StepConfig:
    return progressive.StepConfig(schedule(config), stage, config.latent_dim, config.penalty_weight, config.drift)


def load_data(config: Config) -> data.ImageDataset:
    """The dataset, with smaller images (MNIST's 28x28) padded with black to ``image_size``."""
    dataset = data.load(config.data_dir or f"tfds:{config.tfds_name}", image_size=config.image_size,
                        channels=config.channels, split=config.split)
    pad = config.image_size - dataset.images.shape[1]
    if pad < 0 or pad % 2 or dataset.images.shape[1:] != (dataset.images.shape[1],) * 2 + (config.channels,):
        raise data.DataError(f"{dataset.name}: images {dataset.images.shape[1:]} do not pad to "
                             f"{config.image_size}x{config.image_size}x{config.channels}")
    padded = np.pad(dataset.images, ((0, 0), (pad // 2,) * 2, (pad // 2,) * 2, (0, 0)))
    return data.ImageDataset(padded, dataset.labels, f"{dataset.name} padded to {config.image_size}")


def create_state(config: Config, key: jax.Array) -> train.GANState:
    """G and D with the params of every stage, their optimizers and G's EMA."""
    num_stages = schedule(config).num_stages
    generator = pggan.Generator(num_stages, config.channels, config.g_width, config.max_width, config.latent_dim)
    discriminator = pggan.Discriminator(num_stages, config.d_width, config.max_width)
    init_key, noise_key = jax.random.split(key)
    tx = common.optimizers(config, noise_key)
    return progressive.create_state(init_key, generator, discriminator, config.channels, tx.g, tx.d,
                                    config.ema_decay)


def sampler(config: Config, z: jax.Array):
    """``state -> images`` at the stage and fade-in weight of the state's last step, upsampled to full size."""
    plan = schedule(config)
    generate = jax.jit(progressive.generate, static_argnames=("stage", "use_ema"))

    def sample(state: train.GANState) -> jax.Array:
        step = max(int(state.step) - 1, 0)
        stage = plan.stage(step)
        images = generate(state, z, stage, plan.alpha(step, stage), use_ema=config.ema_decay > 0)
        return nearest_upsample(images, config.image_size // images.shape[1])

    return sample


def train_and_evaluate(config: Config) -> train.GANState:
    """Trains through every stage; returns the final state."""
    config = dataclasses.replace(config, steps=config.steps or schedule(config).total_steps())
    mesh = common.start(config)
    dataset = load_data(config)
    init_key, sample_key = jax.random.split(jax.random.key(config.seed))
    state = create_state(config, init_key)
    step = progressive.staged(lambda stage: parallel.data_parallel(progressive.train_step, mesh,
                                                                   step_config(config, stage)), schedule(config))
    fixed_z = parallel.replicate(jax.random.normal(sample_key, (config.num_samples, config.latent_dim)), mesh)
    state = common.fit(config, state, step, dataset, common.sample_writer(config, sampler(config, fixed_z), nrow=8))
    common.write_animation(config)
    return state


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
