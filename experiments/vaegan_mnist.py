"""VAE-GAN on MNIST: ``python -m experiments.vaegan_mnist [--part.field value ...]``.

Larsen et al. 2016 (:mod:`ganjax.models.vaegan`): a DCGAN-shaped encoder, G as
the decoder and D (LayerNorm by default) whose hidden layer measures the
reconstruction. The GAN side takes the objective's flags (``--objective.*``,
``--noise.*``; z is Gaussian, the VAE's prior) and D may take several updates
per step (``--schedule.n-critic``). The last ``--holdout`` digits are held out
(the MNIST classifier's test digits, with the default of both); the rest train it.

Writes under ``--run.workdir``: ``config.json``, ``samples/step_*.png``
(held-out originals on odd rows, their reconstructions below them, then
samples from the prior on the last two rows), ``reconstructions.png`` (the
final such grid of originals and reconstructions), ``samples.gif``,
``training.png``, ``metrics.jsonl``, ``tb/``, ``checkpoints/`` and, when the
MNIST classifier is found in ``--reconstruction.classifier-dir``,
``reconstruction_accuracy.json``: per digit, the share of held-out digits whose
reconstruction the classifier labels as the source digit (also logged as
``reconstruction_accuracy`` every ``--reconstruction.eval-every`` steps).
Every ``--reconstruction.eval-every`` steps, with or without the classifier,
``duplicate_share`` and ``pairwise_distance_ratio`` of 1,000 samples from the
prior against the training digits are logged too; the failure monitor's
``mode_collapse`` check reads them.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ganjax import data, evaluation, images, sample, validate
from ganjax.models import dcgan, vaegan
from ganjax.nn import precision
from ganjax.run import (
    BatchNormDevices,
    Data,
    Evaluate,
    GANSchedule,
    InputNoise,
    Latent,
    Monitor,
    Objective,
    Optimizers,
    Run,
    fit_gan,
    grid_writer,
    run_hooks,
    start,
    to_dict,
)
from ganjax.run import main as run_main
from ganjax.training import devices
from ganjax.training.gan import GAN
from ganjax.training.phases import batches_per_step
from ganjax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Model:
    """The encoder, decoder and D (ganjax.models.vaegan.players) and the weights of their losses."""

    width: int = 32
    """channels at the image end of each player (doubling towards 4x4)."""
    encoder_norm: Literal[dcgan.D_NORMS] = "batch"
    """the encoder's normalization."""
    g_norm: Literal[dcgan.G_NORMS] = "batch"
    """the decoder's normalization."""
    d_norm: Literal[dcgan.D_NORMS] = "layer"
    """D's normalization; LayerNorm keeps each example's features its own, as the reconstruction compares them."""
    gamma: float = 1.0
    """weight of the feature-space reconstruction in the decoder's loss (the paper's gamma)."""
    kl_weight: float = 1.0
    """weight of the KL term in the encoder's loss."""
    compute_dtype: precision.ComputeDtype = "auto"
    """the three players' activations and convolutions: float32, bfloat16 (params, optimizer state, losses and
    normalization statistics stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        validate.at_least(self, "width", 1)
        validate.known_dtype(self, "compute_dtype")
        validate.at_least(self, "gamma", 0.0)
        validate.at_least(self, "kl_weight", 0.0)


@dataclasses.dataclass(frozen=True)
class Reconstruction:
    """How often the MNIST classifier labels a held-out digit's reconstruction as that digit."""

    classifier_dir: str = "runs/mnist_classifier"
    """the MNIST classifier (experiments.train_mnist_classifier); '' or a missing folder: no accuracy."""
    eval_every: int = 1000
    """steps between checks, logged as reconstruction_accuracy, and duplicate_share and pairwise_distance_ratio of
    the decoder's samples from the prior with or without a classifier (0: none; the final accuracy is written all
    the same)."""

    def __post_init__(self):
        validate.at_least(self, "eval_every", 0)


@dataclasses.dataclass(frozen=True)
class Config:
    """VAE-GAN on MNIST."""

    data: Data = Data()
    model: Model = Model()
    latent: Latent = Latent(dim=32)
    objective: Objective = Objective()
    noise: InputNoise = InputNoise()
    optim: Optimizers = Optimizers()
    """The decoder's and D's optimizers; the encoder gets a copy of the decoder's."""
    schedule: GANSchedule = GANSchedule(steps=1500)
    run: Run = Run(workdir="runs/vaegan_mnist")
    devices: BatchNormDevices = BatchNormDevices()
    monitor: Monitor = Monitor(max_grad_norm=250.0)
    """The failure monitor; D's BatchNorm makes its gradient norm large in healthy runs (docs/monitor.md)."""
    reconstruction: Reconstruction = Reconstruction()
    holdout: int = 2000
    """the last digits of the dataset, held out of training: the grids' originals and the accuracy's digits."""
    grid_columns: int = 10
    """images per grid row."""
    grid_pairs: int = 4
    """rows of held-out originals in each grid, each followed by a row of their reconstructions."""

    def __post_init__(self):
        self.make_model()  # refuses the GAN options the VAE-GAN step does not take, naming them
        for field in ("holdout", "grid_columns", "grid_pairs"):
            validate.at_least(self, field, 1)
        if self.holdout < self.grid_pairs * self.grid_columns:
            validate.refuse(
                self,
                "holdout",
                f"{self.holdout} digits cannot fill {self.grid_pairs} rows of {self.grid_columns} originals",
            )

    def make_model(self) -> vaegan.VAEGAN:
        """The VAE-GAN step's objective."""
        return vaegan.VAEGAN(GAN(self.latent, self.objective, noise=self.noise), self.model.gamma, self.model.kl_weight)


def players(config: Config, bn_axis_name: str | None = None) -> tuple[nn.Module, nn.Module, nn.Module]:
    """The encoder, decoder and D (ganjax.models.vaegan.players); BatchNorm synchronized over ``bn_axis_name``."""
    m = config.model
    return vaegan.players(
        config.data.image_size,
        config.data.channels,
        config.latent.dim,
        m.width,
        m.encoder_norm,
        m.g_norm,
        m.d_norm,
        bn_axis_name,
        precision.compute_dtype(m.compute_dtype),
    )


def create_state(config: Config, model: vaegan.VAEGAN, key: jax.Array, bn_axis_name: str | None = None) -> TrainState:
    """Encoder, decoder, D and their optimizers (the encoder's is the decoder's recipe) from ``key``."""
    encoder, decoder, discriminator = players(config, bn_axis_name)
    init_key, noise_key, enc_noise_key = jax.random.split(key, 3)
    tx = config.optim.build(noise_key, config.schedule.steps, config.schedule.n_critic)
    enc_tx = config.optim.build(enc_noise_key, config.schedule.steps).g
    return vaegan.create_state(
        init_key, model, encoder, decoder, discriminator, config.data.shape, enc_tx=enc_tx, g_tx=tx.g, d_tx=tx.d
    )


def generator(config: Config) -> sample.Generator:
    """The decoder from the prior, as the run samples it (for :mod:`ganjax.sample`): the last two rows of its grids,
    z from the second of two keys split from ``run.seed``."""
    return sample.Generator(
        players(config)[1],
        draw=config.latent.sample,
        key=jax.random.split(jax.random.key(config.run.seed))[1],
        num=2 * config.grid_columns,
        nrow=config.grid_columns,
        latent=config.latent,
    )


def originals_and_reconstructions(state: TrainState, originals: jax.Array, columns: int) -> jax.Array:
    """Rows of ``columns`` originals, each row followed by a row of their reconstructions."""
    rebuilt = vaegan.reconstruct(state, originals)
    pair = lambda a: a.reshape(-1, 1, columns, *a.shape[1:])
    return jnp.concatenate([pair(originals), pair(rebuilt)], axis=1).reshape(-1, *originals.shape[1:])


_reconstruct = jax.jit(vaegan.reconstruct)  # compiled once for every check


def reconstruction_accuracy(
    state: TrainState, held_out: data.ImageDataset, classify, num_classes: int = 10, batch_size: int = 500
) -> list[float]:
    """Per digit: the share of ``held_out`` whose reconstruction ``classify`` labels as the source digit."""
    predictions = [
        np.asarray(classify(_reconstruct(state, data.to_float(held_out.images[i : i + batch_size]))))
        for i in range(0, len(held_out), batch_size)
    ]
    return evaluation.per_class_accuracy(np.concatenate(predictions), held_out.labels, num_classes)


def diversity_hooks(config: Config, reals: data.ImageDataset) -> list:
    """The mode-collapse signals (:func:`experiments.evaluation.diversity_hooks`) of up to 1,000 of the decoder's
    samples from the prior against ``reals``, every ``reconstruction.eval_every`` steps."""
    batch = config.schedule.batch_size
    draw = jax.jit(lambda state, key: vaegan.generate(state, config.latent.sample(key, batch)))
    return evaluation.diversity_hooks(
        config.reconstruction.eval_every,
        evaluation.DIVERSITY_SAMPLES,
        reals,
        lambda state, key, stats: draw(state, key),
        batch,
        config.run.seed,
    )


def train_and_evaluate(config: Config) -> tuple[TrainState, list[float] | None]:
    """Trains the VAE-GAN on all but the held-out digits; returns the state and the per-digit accuracy (or None)."""
    model = config.make_model()
    phases = model.phases(config.schedule.n_critic)
    mesh = start(config, batches_per_step(phases))
    dataset = config.data.load()
    if config.holdout >= len(dataset):
        raise data.DataError(
            f"{dataset.name}: holds {len(dataset)} digits; holdout={config.holdout} leaves none to train"
        )
    train_set, held_out = dataset.split(1.0 - config.holdout / len(dataset))
    init_key, sample_key = jax.random.split(jax.random.key(config.run.seed))
    bn = devices.bn_axis_name(config.devices.cross_replica_bn, config.schedule.batch_size, mesh)
    state = create_state(config, model, init_key, bn)
    columns = config.grid_columns
    originals = jnp.asarray(data.to_float(held_out.images[: config.grid_pairs * columns]))
    (prior_z,) = generator(config).grid(sample_key)
    grid = jax.jit(
        lambda s: jnp.concatenate([originals_and_reconstructions(s, originals, columns), vaegan.generate(s, prior_z)])
    )
    classifier = evaluation.find_classifier(config.reconstruction.classifier_dir, config.data.shape)
    accuracy = (
        None
        if classifier is None
        else functools.partial(reconstruction_accuracy, held_out=held_out, classify=classifier.class_fn())
    )
    extra = diversity_hooks(config, train_set)
    if accuracy is not None and config.reconstruction.eval_every:
        evaluate = lambda state, step: {"reconstruction_accuracy": float(np.mean(accuracy(state)))}
        extra.append(Evaluate(config.reconstruction.eval_every, evaluate))
    hooks = run_hooks(
        config.run,
        to_dict(config),
        extra,
        config.monitor.build(config.objective),
        grid_writer(config.run.workdir, grid, nrow=columns),
    )
    state = fit_gan(config, state, phases, train_set, mesh, hooks)
    workdir = pathlib.Path(config.run.workdir)
    if jax.process_index() == 0:
        images.save_grid(
            np.asarray(originals_and_reconstructions(state, originals, columns)),
            workdir / "reconstructions.png",
            nrow=columns,
            scale=2,
        )
    if accuracy is None:
        return state, None
    shares = accuracy(state)
    if jax.process_index() == 0:
        counts = np.bincount(held_out.labels, minlength=10).tolist()
        result = {
            "per_class": shares,
            "min": min(shares),
            "overall": float(np.dot(shares, counts) / sum(counts)),
            "held_out_per_class": counts,
            "classifier_dir": config.reconstruction.classifier_dir,
        }
        (workdir / "reconstruction_accuracy.json").write_text(json.dumps(result, indent=1))
    return state, shares


def main(argv=None):
    return run_main(Config, train_and_evaluate, argv)


if __name__ == "__main__":
    main()
