"""DCGAN on MNIST: ``python -m experiments.dcgan_mnist [--data-dir ../shared/data/mnist] [--field value ...]``.

Radford et al. 2015 with the ganhacks defaults: images in [-1, 1] and a tanh
output, separate all-real and all-fake batches for D, the non-saturating G
loss, Adam(2e-4, b1=0.5). Writes under ``--workdir``: ``samples/step_*.png``
(one fixed z), ``samples.gif``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import optax

from experiments import common
from ganjax import train
from ganjax.models import dcgan


@dataclasses.dataclass
class Config(common.GANConfig):
    """DCGAN on MNIST."""

    workdir: str = "runs/dcgan_mnist"
    steps: int = 3000
    g_width: int = 64
    d_width: int = 64
    num_samples: int = 100


def create_state(config: Config, key: jax.Array) -> train.GANState:
    """G, D and their Adam optimizers, initialised from ``key``."""
    generator = dcgan.Generator(config.image_size, config.channels, config.g_width, config.latent_dim)
    discriminator = dcgan.Discriminator(config.image_size, config.d_width)
    return train.create_state(key, generator, discriminator, (config.image_size, config.image_size, config.channels),
                              common.step_config(config),
                              g_tx=optax.adam(config.lr_g, b1=config.b1, b2=config.b2),
                              d_tx=optax.adam(config.lr_d, b1=config.b1, b2=config.b2))


def train_and_evaluate(config: Config) -> train.GANState:
    """Trains the DCGAN; returns the final state. Samples come from one fixed z throughout."""
    dataset = common.load_data(config)
    init_key, sample_key = jax.random.split(jax.random.key(config.seed))
    state = create_state(config, init_key)
    step = functools.partial(train.jit_step(train.train_step), config=common.step_config(config))
    fixed_z = jax.random.normal(sample_key, (config.num_samples, config.latent_dim))
    sample = jax.jit(train.generate)
    state = common.fit(config, state, step, dataset, common.sample_writer(config, lambda s: sample(s, fixed_z)))
    common.write_animation(config)
    return state


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
