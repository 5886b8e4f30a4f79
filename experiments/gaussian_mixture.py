"""A GAN on the 2D ring of 8 or grid of 25 Gaussians, the mode-collapse benchmark of VEEGAN and PacGAN.

Run::

  python -m experiments.gaussian_mixture --mixture ring --run.seed 0 --run.workdir runs/gm/ring_ns_0
  python -m experiments.gaussian_mixture table runs/gm   # mean ± std over the seeds of every setting in runs/gm

Every ``--evaluation.eval-every`` steps and at the last step it adds the
mode metrics of ``eval_samples`` samples (modes captured, high-quality share,
mode KL) to the log; every ``--run.log-every`` steps it logs them with the
mean train metrics and the monitor's flags to ``metrics.jsonl`` and
TensorBoard, and shows them beside the progress bar; every
``--run.sample-every`` steps and at the end it draws the samples over the
modes (``samples/step_XXXXXX.png``, as the image experiments name their
grids); every ``--run.checkpoint-every`` steps it saves ``checkpoints/``, from
which ``--run.resume`` continues; at the end ``training.png`` plots the
curves and ``samples.gif`` animates the samples. The players' init key
(:func:`ganjax.run.run_keys`) seeds every step's draws, the real points
included, so a resumed run trains on the points an uninterrupted one would;
the plots draw one fixed z from the sample key, evaluation ``i`` from
``fold_in`` of the evaluation key and ``i``. A NaN or Inf
metric stops the run with :class:`ganjax.evaluation.monitor.NonFiniteLossError`;
a flag named in ``--monitor.stop-on`` ends it early. The summary printed at the end
gives the last record; the result's ``results`` hold the mode metrics of the last step.
"""

from __future__ import annotations

import dataclasses
import itertools
import pathlib
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import jax
import numpy as np
from PIL import Image

from ganjax import data, plots, rng, validate
from ganjax.evaluation import metrics
from ganjax.models import mlp
from ganjax.run import (
    Evaluate,
    GANSchedule,
    Grid,
    InputNoise,
    Latent,
    Monitor,
    Objective,
    Optimizers,
    Run,
    StateOptions,
    Swaps,
    gan_state,
    run_keys,
)
from ganjax.run import main as run_main
from ganjax.training import gan as gans
from ganjax.training.phases import Phase, batches_per_step, make_step
from ganjax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Model:
    """MLP G and D (ganjax.models.mlp) and the tricks inside them."""

    g_width: int = 128
    """units of each of G's hidden layers."""
    g_depth: int = 3
    """G's hidden layers."""
    d_width: int = 128
    """units of each of D's hidden layers."""
    d_depth: int = 3
    """D's hidden layers."""
    g_noise_std: float = 0.0
    """Gaussian noise after every hidden layer of G in training (EBGAN)."""
    g_dropout: float = 0.0
    """dropout in G, kept on at generation time (pix2pix: 0.5)."""
    d_norm: Literal[mlp.D_NORMS] = "none"
    """D's normalization: spectral norm or none."""
    d_minibatch: Literal[mlp.MINIBATCH] = "none"
    """minibatch features before D's last layer: the batch's standard deviation, minibatch discrimination, or
    none."""

    def __post_init__(self):
        for field in ("g_width", "g_depth", "d_width", "d_depth"):
            validate.at_least(self, field, 1)
        validate.at_least(self, "g_noise_std", 0.0)
        if not 0.0 <= self.g_dropout < 1.0:
            validate.refuse(self, "g_dropout", f"must be in [0, 1), got {self.g_dropout}")

    def build(self, latent_dim: int, packing: int = 1) -> tuple[mlp.Generator, mlp.Discriminator]:
        """``(G, D)`` for 2D points; D judges PacGAN packs of ``packing`` points."""
        generator = mlp.Generator(
            latent_dim, 2, (self.g_width,) * self.g_depth, noise_std=self.g_noise_std, dropout=self.g_dropout
        )
        discriminator = mlp.Discriminator(
            2 * packing, (self.d_width,) * self.d_depth, norm=self.d_norm, minibatch=self.d_minibatch
        )
        return generator, discriminator


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """The mode metrics of G's samples (ganjax.evaluation.metrics.mixture_metrics)."""

    eval_every: int = 500
    """steps between evaluations."""
    eval_samples: int = 2500
    """samples per evaluation."""

    def __post_init__(self):
        validate.at_least(self, "eval_every", 1)
        validate.at_least(self, "eval_samples", 1)


@dataclasses.dataclass(frozen=True)
class Config:
    """A GAN on a 2D Gaussian mixture."""

    mixture: Literal[tuple(data.MIXTURES)] = "ring"
    """the mixture: 8 Gaussians on a ring or 25 on a grid."""
    model: Model = Model()
    latent: Latent = Latent(dim=2)
    objective: Objective = Objective()
    noise: InputNoise = InputNoise()
    optim: Optimizers = Optimizers(lr_g=1e-3, lr_d=1e-3)
    state: StateOptions = StateOptions()
    swaps: Swaps = Swaps()
    schedule: GANSchedule = GANSchedule(steps=10000, batch_size=256)
    run: Run = Run(workdir="runs/gaussian_mixture", log_every=500, sample_every=2500, checkpoint_every=2500)
    evaluation: Evaluation = Evaluation()
    monitor: Monitor = Monitor(window=500)

    def __post_init__(self):
        if self.mixture not in data.MIXTURES:
            validate.refuse(self, "mixture", f"unknown mixture {self.mixture!r}; choose one of {sorted(data.MIXTURES)}")


class Benchmark(NamedTuple):
    """What a run of a config is made of: the experiment trains one, :mod:`experiments.ablation` populations."""

    mixture: data.Mixture2D
    init: Callable[[jax.Array], TrainState]
    """``init(key)``: the state at step 0."""
    step: Callable[[TrainState, None], tuple[TrainState, dict]]
    """``step(state, None)``: one train step on real points drawn from the state's key of its step."""
    sample: Callable[[TrainState, jax.Array], jax.Array]
    """``sample(state, key)``: ``evaluation.eval_samples`` points, from G's moving average when the state keeps
    one."""
    phases: tuple


REAL_POINTS = "real_points"  # the name of the key of a step's real points (ganjax.rng.named)


def benchmark(config: Config) -> Benchmark:
    """The state, step and sampler of ``config``'s GAN (unjitted, so they can be vmapped over a population)."""
    gan = gans.GAN(config.latent, config.objective, noise=config.noise)
    phases = gan.phases(config.schedule.n_critic)
    mixture = data.MIXTURES[config.mixture]()
    generator, discriminator = config.model.build(config.latent.dim, config.objective.packing)
    rows = config.schedule.batch_size * batches_per_step(phases)
    inner = config.swaps.wrap(make_step(phases))
    use_ema = config.state.keeps_ema

    def init(key: jax.Array) -> TrainState:
        state = gan_state(key, gan, generator, discriminator, (2,), config)
        return config.swaps.prepare(state)

    def step(state: TrainState, batch: None = None):
        key = rng.named(rng.step_key(state.key, state.step), REAL_POINTS)
        return inner(state, {"image": mixture.sample(key, rows)})

    def sample(state: TrainState, key: jax.Array) -> jax.Array:
        z = config.latent.sample(key, config.evaluation.eval_samples)
        return gans.generate(state, z, use_ema=use_ema, rngs={"dropout": key})

    return Benchmark(mixture, init, step, sample, phases)


def mode_metrics(config: Config, mixture: data.Mixture2D, key: jax.Array):
    """``(state, step) -> (points, their mode metrics)``: ``evaluation.eval_samples`` points, z from
    ``fold_in(key, step)`` (:func:`ganjax.evaluation.metrics.mixture_metrics`)."""
    sample = jax.jit(benchmark(config).sample)

    def evaluate(state: TrainState, step: int) -> tuple[np.ndarray, dict]:
        points = np.asarray(sample(state, jax.random.fold_in(key, step)))
        return points, metrics.mixture_metrics(points, mixture.means, mixture.std)

    return evaluate


def plot(config: Config, mixture: data.Mixture2D, points: np.ndarray, step: int) -> np.ndarray:
    """``samples/step_XXXXXX.png``: ``points`` over the mixture's modes, titled with their mode metrics; returns
    the picture."""
    found = metrics.mixture_metrics(points, mixture.means, mixture.std)
    path = plots.scatter_mixture(
        points,
        mixture.means,
        pathlib.Path(config.run.workdir) / "samples" / f"step_{step:06d}.png",
        f"{config.mixture} step {step}: {found['modes']} modes, {found['high_quality']:.0%} high quality",
    )
    with Image.open(path) as picture:
        return np.asarray(picture.convert("RGB"))


class MixtureRecipe:
    """The 2D mixture GAN's recipe (:class:`ganjax.run.Recipe`): the state and step of :func:`benchmark`, whose
    step draws its own real points (its batches are ``None``); scatter plots of one fixed z; the mode metrics.
    No ``generator``: G draws points, not images, so :mod:`ganjax.sample` refuses a run of it."""

    def phases(self, config: Config) -> tuple[Phase, ...]:
        return benchmark(config).phases

    def load(self, config: Config) -> data.Mixture2D:
        """The mixture (the data the evaluations compare against)."""
        return data.MIXTURES[config.mixture]()

    def training_data(self, config: Config, dataset: data.Mixture2D) -> data.Mixture2D:
        return dataset

    def init(self, config: Config, key: jax.Array, dataset, bn_axis_name: str | None) -> TrainState:
        return benchmark(config).init(key)

    def step(self, config: Config, phases: tuple[Phase, ...], mesh: jax.sharding.Mesh):
        """:func:`benchmark`'s step, jitted with the state donated (one device: no ``devices`` part)."""
        return jax.jit(benchmark(config).step, donate_argnums=0)

    def batches(self, config: Config, dataset, mesh: jax.sharding.Mesh):
        """``None`` for every step: the step draws its real points itself."""
        return lambda start: itertools.repeat(None)

    def grid(self, config: Config, mesh: jax.sharding.Mesh, mixture: data.Mixture2D) -> Grid:
        """``evaluation.eval_samples`` points of one fixed z (and dropout key), the run's sample key, plotted
        over the modes (:func:`plot`)."""
        parts, key = benchmark(config), run_keys(config.run.seed).sample
        sample = jax.jit(parts.sample)
        draw = lambda state: sample(state, key)
        return Grid(draw, 0, write=lambda state, step: plot(config, parts.mixture, np.asarray(draw(state)), step))

    def evaluations(self, config: Config, mixture: data.Mixture2D) -> list[Evaluate]:
        """The mode metrics and the sample diversity of evaluation ``i``'s points, z from ``fold_in`` of the run's
        evaluation key and ``i``, against as many points of the mixture drawn from ``fold_in`` of it and 0."""
        key = run_keys(config.run.seed).evaluation
        reference = np.asarray(mixture.sample(jax.random.fold_in(key, 0), config.evaluation.eval_samples))
        found = mode_metrics(config, mixture, key)

        def evaluate(state: TrainState, step: int) -> dict:
            points, values = found(state, step)
            return {**values, **metrics.sample_diversity(points[:1000], reference[:1000])}

        return [Evaluate(config.evaluation.eval_every, evaluate)]

    def monitor(self, config: Config):
        return config.monitor.build(config.objective)

    def finish(self, config: Config, state: TrainState, grid: Grid, mixture: data.Mixture2D) -> dict:
        """The mode metrics of the last step's evaluation (as :mod:`experiments.ablation` scores a member)."""
        found = mode_metrics(config, mixture, run_keys(config.run.seed).evaluation)
        return found(state, int(state.step))[1]


RECIPE = MixtureRecipe()


# The columns of ``python -m experiments.gaussian_mixture table ROOT``: metric, header and format.
TABLE_COLUMNS = (
    ("modes", "modes", ".1f"),
    ("high_quality", "high-quality share", ".3f"),
    ("mode_kl", "mode KL", ".3f"),
)


def main(argv: Sequence[str] | None = None):
    return run_main(RECIPE, Config, argv, TABLE_COLUMNS)


if __name__ == "__main__":
    main()
