"""VAE-GAN on MNIST: ``python -m experiments.vaegan_mnist [--data-dir ../shared/data/mnist] [--field value ...]``.

Larsen et al. 2016 (:mod:`ganjax.vaegan`): a DCGAN-shaped encoder, G as the
decoder and D (LayerNorm by default) whose hidden layer measures the
reconstruction. The last ``holdout`` digits are held out (the MNIST
classifier's test digits, with the default of both); the rest train it.

Writes under ``--workdir``: ``samples/step_*.png`` (held-out originals on odd
rows, their reconstructions below them, then samples from the prior on the last
two rows), ``reconstructions.png`` (the final such grid of originals and
reconstructions), ``samples.gif``, ``training.png``, ``metrics.jsonl``, ``tb/``,
``checkpoints/`` and, when the MNIST classifier is found in
``--classifier-dir``, ``reconstruction_accuracy.json``: per digit, the share of
held-out digits whose reconstruction the classifier labels as the source digit
(also logged as ``reconstruction_accuracy`` every ``eval_every`` steps).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from experiments import cgan_mnist, common
from ganjax import data, images, train, vaegan
from ganjax.models import vaegan as models


@dataclasses.dataclass
class Config(common.GANConfig):
    """VAE-GAN on MNIST."""

    workdir: str = "runs/vaegan_mnist"
    steps: int = 1500
    latent_dim: int = 32
    width: int = 32
    encoder_norm: str = "batch"
    g_norm: str = "batch"
    d_norm: str = "layer"
    gamma: float = 1.0
    kl_weight: float = 1.0
    holdout: int = 2000
    grid_columns: int = 10
    grid_pairs: int = 4  # rows of originals (each followed by its reconstructions) in the grids
    classifier_dir: str = "runs/mnist_classifier"  # '' or a missing folder: no reconstruction accuracy


def vaegan_config(config: Config) -> vaegan.VAEGANConfig:
    return vaegan.VAEGANConfig(gan=common.step_config(config), gamma=config.gamma, kl_weight=config.kl_weight)


def create_state(config: Config, key: jax.Array) -> vaegan.VAEGANState:
    """Encoder, decoder, D and their optimizers (the encoder's is G's recipe) from ``key``."""
    encoder, decoder, discriminator = models.players(config.image_size, config.channels, config.latent_dim,
                                                     config.width, config.encoder_norm, config.g_norm, config.d_norm)
    init_key, noise_key, enc_noise_key = jax.random.split(key, 3)
    tx = common.optimizers(config, noise_key)
    enc_tx = common.optimizers(config, enc_noise_key).g
    return vaegan.create_state(init_key, encoder, decoder, discriminator,
                               (config.image_size, config.image_size, config.channels), vaegan_config(config),
                               enc_tx=enc_tx, g_tx=tx.g, d_tx=tx.d)


def originals_and_reconstructions(state: vaegan.VAEGANState, originals: jax.Array, columns: int) -> jax.Array:
    """Rows of ``columns`` originals, each row followed by a row of their reconstructions."""
    rebuilt = vaegan.reconstruct(state, originals)
    pair = lambda a: a.reshape(-1, 1, columns, *a.shape[1:])
    return jnp.concatenate([pair(originals), pair(rebuilt)], axis=1).reshape(-1, *originals.shape[1:])


def reconstruction_accuracy(state: vaegan.VAEGANState, held_out: data.ImageDataset, classify, num_classes: int = 10,
                            batch_size: int = 500) -> list[float]:
    """Per digit: the share of ``held_out`` whose reconstruction ``classify`` labels as the source digit."""
    rebuild = jax.jit(vaegan.reconstruct)
    predictions = [np.asarray(classify(rebuild(state, data.to_float(held_out.images[i:i + batch_size]))))
                   for i in range(0, len(held_out), batch_size)]
    return cgan_mnist.per_class_accuracy(np.concatenate(predictions), held_out.labels, num_classes)


def train_and_evaluate(config: Config) -> tuple[vaegan.VAEGANState, list[float] | None]:
    """Trains the VAE-GAN on all but the held-out digits; returns the state and the per-digit accuracy (or None)."""
    common.start(config)
    dataset = common.load_data(config)
    train_set, held_out = dataset.split(1.0 - config.holdout / len(dataset))
    init_key, sample_key = jax.random.split(jax.random.key(config.seed))
    state = create_state(config, init_key)
    step = functools.partial(train.jit_step(vaegan.train_step), config=vaegan_config(config))
    originals = jnp.asarray(data.to_float(held_out.images[:config.grid_pairs * config.grid_columns]))
    prior_z = jax.random.normal(sample_key, (2 * config.grid_columns, config.latent_dim))
    grid = jax.jit(lambda s: jnp.concatenate([originals_and_reconstructions(s, originals, config.grid_columns),
                                              vaegan.generate(s, prior_z)]))
    classifier = cgan_mnist.load_classifier(config)
    accuracy = None if classifier is None else functools.partial(reconstruction_accuracy, held_out=held_out,
                                                                 classify=classifier.class_fn())

    def evaluate(state, step):
        return {"reconstruction_accuracy": float(np.mean(accuracy(state)))}

    state = common.fit(config, state, step, train_set, common.sample_writer(config, grid, nrow=config.grid_columns),
                       evaluate if accuracy else None)
    common.write_animation(config)
    workdir = pathlib.Path(config.workdir)
    if jax.process_index() == 0:
        images.save_grid(np.asarray(originals_and_reconstructions(state, originals, config.grid_columns)),
                         workdir / "reconstructions.png", nrow=config.grid_columns, scale=2)
    if accuracy is None:
        return state, None
    shares = accuracy(state)
    if jax.process_index() == 0:
        counts = np.bincount(held_out.labels, minlength=10).tolist()
        result = {"per_class": shares, "min": min(shares), "overall": float(np.dot(shares, counts) / sum(counts)),
                  "held_out_per_class": counts, "classifier_dir": config.classifier_dir}
        (workdir / "reconstruction_accuracy.json").write_text(json.dumps(result, indent=1))
    return state, shares


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
