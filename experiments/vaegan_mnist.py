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

Of the run's keys (:func:`ganjax.run.run_keys`) the players' init key makes the
state and seeds every step, and the sample key draws the prior's z of the grids'
last two rows (which ``python -m ganjax.sample RUN_DIR`` draws again).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
from collections.abc import Callable
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ganjax import data, evaluation, images, validate
from ganjax.evaluation import mnist_classifier as mc
from ganjax.models import dcgan, vaegan
from ganjax.nn import precision
from ganjax.run import (
    BatchNormDevices,
    Data,
    Evaluate,
    GANSchedule,
    Generator,
    Grid,
    InputNoise,
    Latent,
    Monitor,
    Objective,
    Optimizers,
    Run,
    data_parallel_step,
    run_keys,
)
from ganjax.run import main as run_main
from ganjax.training import devices
from ganjax.training.gan import GAN
from ganjax.training.phases import Phase
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


def split(config: Config, dataset: data.ImageDataset) -> tuple[data.ImageDataset, data.ImageDataset]:
    """``(the training digits, the last config.holdout digits)``.

    Raises:
      DataError: when the holdout leaves no digit to train on.
    """
    if config.holdout >= len(dataset):
        raise data.DataError(
            f"{dataset.name}: holds {len(dataset)} digits; holdout={config.holdout} leaves none to train"
        )
    return dataset.split(1.0 - config.holdout / len(dataset))


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


def reconstruction_check(config: Config, held_out: data.ImageDataset) -> Callable[[TrainState], list[float]] | None:
    """``state -> per-digit accuracy`` of ``held_out``'s reconstructions by the MNIST classifier in
    ``reconstruction.classifier_dir`` (:func:`reconstruction_accuracy`); None without one for the config's images."""
    classifier_dir = config.reconstruction.classifier_dir
    saved = mc.saved_config(classifier_dir)
    if saved is None or saved.shape != config.data.shape:
        return None
    classify = mc.load_mnist_classifier(classifier_dir).class_fn()
    return functools.partial(reconstruction_accuracy, held_out=held_out, classify=classify)


def diversity_hooks(config: Config, reals: data.ImageDataset) -> list:
    """The mode-collapse signals (:func:`ganjax.evaluation.diversity_hooks`) of up to 1,000 of the decoder's
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


class VAEGANRecipe:
    """The VAE-GAN's recipe (:class:`ganjax.run.Recipe`): the encoder, decoder and D trained on all but the
    held-out digits; grids of held-out originals, their reconstructions and samples from the prior; the
    reconstruction accuracy and the prior's mode-collapse signals as evaluations."""

    def phases(self, config: Config) -> tuple[Phase, ...]:
        return config.make_model().phases(config.schedule.n_critic)

    def load(self, config: Config) -> data.ImageDataset:
        return config.data.load()

    def training_data(self, config: Config, dataset: data.ImageDataset) -> data.ImageDataset:
        """All but the held-out digits."""
        return split(config, dataset)[0]

    def init(self, config: Config, key: jax.Array, dataset, bn_axis_name: str | None) -> TrainState:
        """Encoder, decoder, D and their optimizers (the encoder's is the decoder's recipe) from ``key``."""
        encoder, decoder, discriminator = players(config, bn_axis_name)
        init_key, noise_key, enc_noise_key = jax.random.split(key, 3)
        tx = config.optim.build(noise_key, config.schedule.steps, config.schedule.n_critic)
        enc_tx = config.optim.build(enc_noise_key, config.schedule.steps).g
        return vaegan.create_state(
            init_key,
            config.make_model(),
            encoder,
            decoder,
            discriminator,
            config.data.shape,
            enc_tx=enc_tx,
            g_tx=tx.g,
            d_tx=tx.d,
        )

    def step(self, config: Config, phases: tuple[Phase, ...], mesh: jax.sharding.Mesh):
        return data_parallel_step(phases, mesh)

    def originals(self, config: Config, dataset: data.ImageDataset) -> np.ndarray:
        """The grids' held-out originals of ``dataset``, ``grid_pairs`` rows of ``grid_columns``, in [-1, 1]."""
        held_out = split(config, dataset)[1]
        return data.to_float(held_out.images[: config.grid_pairs * config.grid_columns])

    def grid(self, config: Config, mesh: jax.sharding.Mesh, dataset: data.ImageDataset) -> Grid:
        """Rows of held-out originals, each followed by their reconstructions, then the decoder's samples from
        the prior (:meth:`generator`'s grid)."""
        columns, g = config.grid_columns, self.generator(config)
        fixed = devices.replicate((self.originals(config, dataset), *g.grid(g.key)), mesh)
        draw = jax.jit(
            lambda state, originals, z: jnp.concatenate(
                [originals_and_reconstructions(state, originals, columns), vaegan.generate(state, z)]
            )
        )
        return Grid(lambda state: draw(state, *fixed), columns, draw)

    def generator(self, config: Config) -> Generator:
        """The decoder from the prior, as the run samples it: the last two rows of its grids, z from the run's
        sample key."""
        return Generator(
            players(config)[1],
            draw=config.latent.sample,
            key=run_keys(config.run.seed).sample,
            num=2 * config.grid_columns,
            nrow=config.grid_columns,
            latent=config.latent,
        )

    def evaluations(self, config: Config, dataset: data.ImageDataset) -> list:
        """The prior's mode-collapse signals against the training digits and, with the classifier, the
        reconstruction accuracy of the held-out digits, every ``reconstruction.eval_every`` steps."""
        train_set, held_out = split(config, dataset)
        hooks = diversity_hooks(config, train_set)
        accuracy = reconstruction_check(config, held_out)
        if accuracy is not None and config.reconstruction.eval_every:
            evaluate = lambda state, step: {"reconstruction_accuracy": float(np.mean(accuracy(state)))}
            hooks.append(Evaluate(config.reconstruction.eval_every, evaluate))
        return hooks

    def monitor(self, config: Config):
        return config.monitor.build(config.objective)

    def finish(self, config: Config, state: TrainState, grid: Grid, dataset: data.ImageDataset) -> dict:
        """``reconstructions.png`` and, with the classifier, ``reconstruction_accuracy.json``; the per-digit
        accuracy as ``reconstruction_accuracy`` (None without the classifier)."""
        workdir, columns = pathlib.Path(config.run.workdir), config.grid_columns
        if jax.process_index() == 0:
            images.save_grid(
                np.asarray(originals_and_reconstructions(state, jnp.asarray(self.originals(config, dataset)), columns)),
                workdir / "reconstructions.png",
                nrow=columns,
                scale=2,
            )
        held_out = split(config, dataset)[1]
        accuracy = reconstruction_check(config, held_out)
        if accuracy is None:
            return {"reconstruction_accuracy": None}
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
        return {"reconstruction_accuracy": shares}


RECIPE = VAEGANRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
