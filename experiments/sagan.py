"""SAGAN on MNIST: ``python -m experiments.sagan [--data-dir ../shared/data/mnist] [--field value ...]``.

Zhang et al. 2019: residual G and D with spectral norm everywhere and
self-attention at a middle resolution (:mod:`ganjax.models.sagan`), the hinge
loss, and TTUR: Adam with lr_D 4e-4, lr_G 1e-4, b1 0, b2 0.9. Every trick of
``ganjax.train.StepConfig`` and ``ganjax.optim`` is a flag. Writes under
``--workdir``: ``samples/step_*.png`` (one fixed z), ``samples.gif``,
``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.

``--num-classes 10`` trains the class-conditional SAGAN: conditional BatchNorm
in G and the projection D; sample row ``r`` is then digit ``r``.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from experiments import common
from ganjax import latent, train
from ganjax.training import devices as parallel
from ganjax.models import sagan


@dataclasses.dataclass
class Config(common.GANConfig):
    """SAGAN on MNIST."""

    workdir: str = "runs/sagan"
    steps: int = 1500
    latent_dim: int = 128
    loss: str = "hinge"
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    b1: float = 0.0
    b2: float = 0.9
    num_classes: int = 0  # > 0: class-conditional G (conditional BatchNorm) and projection D
    g_width: int = 16
    d_width: int = 16
    num_samples: int = 100


def create_state(config: Config, key: jax.Array, bn_axis_name: str | None = None) -> train.GANState:
    """G, D and their optimizers (TTUR Adam by default) from ``key``."""
    generator = sagan.Generator(config.image_size, config.channels, config.g_width, config.latent_dim,
                                config.num_classes, bn_axis_name)
    discriminator = sagan.Discriminator(config.image_size, config.d_width, config.num_classes)
    return common.gan_state(config, key, generator, discriminator)


def train_and_evaluate(config: Config) -> train.GANState:
    """Trains SAGAN; returns the final state. Samples come from one fixed z (and labels) throughout."""
    mesh = common.start(config)
    dataset = common.load_data(config)
    init_key, sample_key = jax.random.split(jax.random.key(config.seed))
    state = create_state(config, init_key, parallel.bn_axis_name(config.cross_replica_bn, config.batch_size, mesh))
    step = parallel.data_parallel(train.train_step, mesh, common.step_config(config), stacked=config.n_critic)
    fixed_z = parallel.replicate(latent.LATENTS[config.latent](sample_key, (config.num_samples, config.latent_dim)),
                                 mesh)
    labels = parallel.replicate(jnp.arange(config.num_samples) * config.num_classes // config.num_samples, mesh)
    sample = jax.jit(functools.partial(train.generate, use_ema=config.ema_decay > 0))
    sample_fn = lambda s: sample(s, fixed_z, labels if config.num_classes else None)
    state = common.fit(config, state, step, dataset, common.sample_writer(config, sample_fn))
    common.write_animation(config)
    return state


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
