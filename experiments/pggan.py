"""Progressive growing GAN on MNIST padded to 32x32: ``python -m experiments.pggan``.

Karras et al. 2018 (:mod:`ganjax.models.pggan`): stages 4, 8, 16 and 32
pixels, each new stage faded in over ``--schedule.fade-images`` images then
trained for ``--schedule.stable-images``; pixel norm, equalized learning rate,
minibatch stddev; WGAN-GP (weight 10) with the drift term (0.001);
Adam(1e-3, b1 0, b2 0.99) as in the paper; samples from an EMA of G (decay
0.99). Each stage's step compiles once; ``--run.resume`` continues mid-stage at
the same fade-in weight. Writes under ``--run.workdir``: ``config.json``,
``samples/step_*.png`` (one fixed z, upsampled to the final size),
``samples.gif``, ``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
Every ``--diversity.eval-every`` steps it logs ``duplicate_share`` and
``pairwise_distance_ratio`` of ``--diversity.eval-samples`` samples of G (and
``ema_`` ones of its moving average) at the resolution and fade-in weight of the
stage being trained, against the reals as D sees them there; the failure
monitor's ``mode_collapse`` check reads them.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from ganjax import data, evaluation, validate
from ganjax.evaluation import Diversity, monitor
from ganjax.models import pggan
from ganjax.nn import precision
from ganjax.nn.resample import nearest_upsample
from ganjax.run import Data, Devices, Evaluate, Generator, Grid, Latent, Monitor, Optimizers, Run, run_keys
from ganjax.run import main as run_main
from ganjax.training import devices
from ganjax.training.objective import Objective
from ganjax.training.phases import Phase, make_step
from ganjax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The stages, their fade-ins and the batch (ganjax.models.pggan.Schedule)."""

    steps: int = 0
    """train steps; 0: until the last stage has faded in and trained stable_images."""
    batch_size: int = 32
    """the global batch of real images per step, split evenly over the devices."""
    fade_images: int = 16000
    """images over which each new stage's layers fade in (0: switched in at once)."""
    stable_images: int = 16000
    """images each stage trains after its fade-in."""

    def __post_init__(self):
        validate.at_least(self, "steps", 0)
        validate.at_least(self, "batch_size", 1)
        validate.at_least(self, "fade_images", 0)
        validate.at_least(self, "stable_images", 1)

    def plan(self, image_size: int) -> pggan.Schedule:
        """The stages from 4x4 up to ``image_size``."""
        return pggan.Schedule(num_stages(image_size), self.batch_size, self.fade_images, self.stable_images)


@dataclasses.dataclass(frozen=True)
class Model:
    """PGGAN's G and D (ganjax.models.pggan)."""

    latent_dim: int = 64
    """size of z (Gaussian)."""
    g_width: int = 16
    """G's channels at the finest stage (doubling towards 4x4, up to max_width)."""
    d_width: int = 16
    """D's channels at the finest stage (doubling towards 4x4, up to max_width)."""
    max_width: int = 64
    """the most channels of any stage."""
    compute_dtype: precision.ComputeDtype = "auto"
    """G's and D's activations and convolutions: float32, bfloat16 (params, optimizer state, losses, the
    penalty and the minibatch statistic stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        for field in ("latent_dim", "g_width", "d_width", "max_width"):
            validate.at_least(self, field, 1)
        validate.known_dtype(self, "compute_dtype")


@dataclasses.dataclass(frozen=True)
class Critic:
    """The critic's WGAN-GP loss with the drift term (ganjax.models.pggan.PGGAN)."""

    penalty_weight: float = 10.0
    """the gradient penalty's weight (lambda)."""
    drift: float = 0.001
    """the weight of E[D(x)^2], which keeps the critic's scores near 0."""

    def __post_init__(self):
        validate.at_least(self, "penalty_weight", 0.0)
        validate.at_least(self, "drift", 0.0)


@dataclasses.dataclass(frozen=True)
class Config:
    """Progressive growing GAN on MNIST padded to 32x32."""

    data: Data = Data(image_size=32)
    """The images, padded with black to image_size (a power of two times 4) when smaller."""
    model: Model = Model()
    critic: Critic = Critic()
    optim: Optimizers = Optimizers(lr_g=1e-3, lr_d=1e-3, b1=0.0, b2=0.99)
    schedule: Schedule = Schedule()
    """The stages, their fade-ins and the batch (ganjax.models.pggan.Schedule): 500 steps of 32 per fade-in and per
    stable period, as at 6,000 images (188 steps) the 16x16 and 32x32 stages ended in noise, and at 16,000 in clean
    strokes, most of them readable digits."""
    run: Run = Run(workdir="runs/pggan")
    devices: Devices = Devices()
    """The devices a run uses (the models have no BatchNorm to synchronize)."""
    monitor: Monitor = Monitor()
    ema_decay: float = 0.99
    """samples come from a moving average of G's params with this decay (0: G itself); the paper's 0.999
    averages over ~1000 steps, longer than a stage of this short run."""
    num_samples: int = 64
    """images in each sample grid (rows of 8)."""
    diversity: Diversity = Diversity()
    """The mode-collapse signals, at the resolution and fade-in weight of the stage being trained."""

    def __post_init__(self):
        if pggan.resolution(num_stages(self.data.image_size) - 1) != self.data.image_size:
            validate.refuse(self.data, "image_size", f"must be 4 * 2^k, got {self.data.image_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            validate.refuse(self, "ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        validate.at_least(self, "num_samples", 1)

    def resolved(self) -> Config:
        """With ``schedule.steps`` 0, every stage's steps (:attr:`steps`), as ``config.json`` records them."""
        return dataclasses.replace(self, schedule=dataclasses.replace(self.schedule, steps=self.steps))

    @property
    def plan(self) -> pggan.Schedule:
        return self.schedule.plan(self.data.image_size)

    @property
    def steps(self) -> int:
        """The run's steps: ``schedule.steps``, or every stage's when 0."""
        return self.schedule.steps or self.plan.total_steps()

    def make_model(self) -> pggan.PGGAN:
        return pggan.PGGAN(self.plan, self.model.latent_dim, self.critic.penalty_weight, self.critic.drift)


def num_stages(image_size: int) -> int:
    """Stages from 4x4 up to ``image_size`` (rounded down to a power of two times 4)."""
    return int(math.log2(max(image_size, 4) // 4)) + 1


def players(config: Config) -> tuple[pggan.Generator, pggan.Discriminator]:
    """``(G, D)`` of every stage."""
    stages, m = config.plan.num_stages, config.model
    dtype = precision.compute_dtype(m.compute_dtype)
    return (
        pggan.Generator(stages, config.data.channels, m.g_width, m.max_width, m.latent_dim, dtype),
        pggan.Discriminator(stages, m.d_width, m.max_width, dtype),
    )


def create_state(config: Config, key: jax.Array) -> TrainState:
    """G and D with the params of every stage, their optimizers and G's EMA."""
    generator, discriminator = players(config)
    init_key, noise_key = jax.random.split(key)
    tx = config.optim.build(noise_key, config.steps)
    return pggan.create_state(init_key, generator, discriminator, config.data.channels, tx.g, tx.d, config.ema_decay)


def stage_at(config: Config, step: int) -> tuple[int, jax.Array]:
    """The stage and fade-in weight of a state after ``step`` steps: those its last step trained."""
    last = max(step - 1, 0)
    stage = config.plan.stage(last)
    return stage, config.plan.alpha(last, stage)


def full_size(config: Config, images: jax.Array) -> jax.Array:
    """A stage's images nearest-upsampled to the final size."""
    return nearest_upsample(images, config.data.image_size // images.shape[1])


def diversity_hooks(config: Config, dataset: data.ImageDataset) -> list[Evaluate]:
    """The mode-collapse signals (:func:`experiments.evaluation.diversity_hooks`) of G and, when kept, of its moving
    average, at the stage and fade-in weight of the state's last step, against the reals as D sees them there
    (:func:`ganjax.models.pggan.real_images`)."""
    generate = jax.jit(pggan.generate, static_argnames=("stage", "use_ema"))
    batch = config.schedule.batch_size
    latent = Latent(dim=config.model.latent_dim)

    def draw(state: TrainState, key: jax.Array, stats) -> jax.Array:
        stage, alpha = stage_at(config, int(state.step))
        return generate(state, latent.sample(key, batch), stage, alpha, use_ema=stats is not None)

    def reals(state: TrainState, images: np.ndarray) -> np.ndarray:
        return np.asarray(pggan.real_images(images, *stage_at(config, int(state.step))))

    part = config.diversity
    no_stats = (lambda state, key: {}) if config.ema_decay > 0 else None  # no BatchNorm: nothing to recompute
    return evaluation.diversity_hooks(
        part.eval_every, part.eval_samples, dataset, draw, batch, config.run.seed, no_stats, reals
    )


def monitor_config(config: Config) -> monitor.MonitorConfig:
    """The monitor of a PGGAN run: it reads the critic's unbounded Wasserstein loss (the step's loss is always
    WGAN-GP), and each stage's new layers move both losses, so it judges each stage on its own steps."""
    restarts = tuple(config.plan.start(stage) for stage in range(1, config.plan.num_stages))
    return dataclasses.replace(config.monitor.build(Objective(loss="wasserstein")), restarts=restarts)


class PGGANRecipe:
    """PGGAN's recipe (:class:`ganjax.run.Recipe`): G and D of every stage on the padded images, a step compiled
    per stage (:func:`ganjax.models.pggan.staged`), grids of one fixed z at the stage and fade-in weight of the
    state's last step, upsampled to the final size."""

    def phases(self, config: Config) -> tuple[Phase, ...]:
        """Stage 0's phases (one real batch a step, as every stage's); :meth:`step` builds each stage's own."""
        return config.make_model().phases(0)

    def load(self, config: Config) -> data.ImageDataset:
        """The dataset, with smaller images (MNIST's 28x28) padded with black to ``image_size``."""
        part = config.data
        dataset = data.load(part.source, image_size=part.image_size, channels=part.channels, split=part.split)
        pad = part.image_size - dataset.images.shape[1]
        if pad < 0 or pad % 2 or dataset.images.shape[1:] != (dataset.images.shape[1],) * 2 + (part.channels,):
            raise data.DataError(
                f"{dataset.name}: images {dataset.images.shape[1:]} do not pad to "
                f"{part.image_size}x{part.image_size}x{part.channels}"
            )
        padded = np.pad(dataset.images, ((0, 0), (pad // 2,) * 2, (pad // 2,) * 2, (0, 0)))
        return data.ImageDataset(padded, dataset.labels, f"{dataset.name} padded to {part.image_size}")

    def training_data(self, config: Config, dataset: data.ImageDataset) -> data.ImageDataset:
        return dataset

    def init(self, config: Config, key: jax.Array, dataset, bn_axis_name: str | None) -> TrainState:
        """G and D of every stage (no BatchNorm to synchronize): :func:`create_state`."""
        return create_state(config, key)

    def step(self, config: Config, phases: tuple[Phase, ...], mesh: jax.sharding.Mesh):
        """The parallel step of each step's stage, compiled once per stage."""
        model = config.make_model()
        return pggan.staged(lambda stage: devices.data_parallel(make_step(model.phases(stage)), mesh), config.plan)

    def grid(self, config: Config, mesh: jax.sharding.Mesh, dataset: data.ImageDataset) -> Grid:
        """The generator's grid z (from the run's sample key), at the stage and fade-in weight of the state's
        last step, upsampled to full size; from G's moving average when kept."""
        g = self.generator(config)
        (z,) = devices.replicate(g.grid(g.key), mesh)
        generate = jax.jit(pggan.generate, static_argnames=("stage", "use_ema"))

        def draw(state: TrainState) -> jax.Array:
            stage, alpha = stage_at(config, int(state.step))
            return full_size(config, generate(state, z, stage, alpha, use_ema=config.ema_decay > 0))

        return Grid(draw, 8)

    def generator(self, config: Config) -> Generator:
        """G as the run samples it (for :mod:`ganjax.sample`): at the stage and fade-in weight of the checkpoint's
        last step (the final stage, fully faded in, at the end of a run), upsampled to full size; z from the run's
        sample key."""
        module = players(config)[0]
        latent = Latent(dim=config.model.latent_dim)

        def apply(variables, inputs, key, step):
            stage, alpha = stage_at(config, step)
            return full_size(config, module.apply(variables, *inputs, alpha, stage, train=False))

        return Generator(
            module,
            draw=latent.sample,
            key=run_keys(config.run.seed).sample,
            num=config.num_samples,
            nrow=8,
            latent=latent,
            apply=apply,
        )

    def evaluations(self, config: Config, dataset: data.ImageDataset) -> list[Evaluate]:
        return diversity_hooks(config, dataset)

    def monitor(self, config: Config) -> monitor.MonitorConfig:
        return monitor_config(config)

    def finish(self, config: Config, state: TrainState, grid: Grid, dataset: data.ImageDataset) -> dict:
        return {}


RECIPE = PGGANRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
