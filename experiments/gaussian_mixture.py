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
curves. Each step draws its data batch from ``fold_in(data_key, step)``, so a
resumed run trains on the batches an uninterrupted one would. A NaN or Inf
metric stops the run with :class:`ganjax.evaluation.monitor.NonFiniteLossError`;
a flag named in ``--monitor.stop-on`` ends it early.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import jax
import numpy as np
from PIL import Image

from ganjax import data, plots, validate
from ganjax.evaluation import metrics
from ganjax.models import mlp
from ganjax.run import (
    Evaluate,
    GANSchedule,
    InputNoise,
    Latent,
    Log,
    Monitor,
    Objective,
    Optimizers,
    Run,
    StateOptions,
    Swaps,
    gan_state,
    run_hooks,
    start,
    to_dict,
    train_loop,
)
from ganjax.run import main as run_main
from ganjax.training import gan as gans
from ganjax.training.phases import batches_per_step, make_step
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


class Keys(NamedTuple):
    """A run's three key streams, from its seed."""

    init: jax.Array
    """the players' init (and every step's draws)."""
    data: jax.Array
    """the real batch of step ``s`` is drawn from ``fold_in(data, s)``."""
    eval: jax.Array
    """evaluation ``i`` draws its z from ``fold_in(eval, i)``."""


def run_keys(seed: int | jax.Array) -> Keys:
    """The key streams of the run seeded ``seed`` (a traced seed too, for a population's members)."""
    data_key, eval_key = jax.random.split(jax.random.key(seed + 1_000_003))
    return Keys(jax.random.key(seed), data_key, eval_key)


class Benchmark(NamedTuple):
    """What a run of a config is made of: the experiment trains one, :mod:`experiments.ablation` populations."""

    mixture: data.Mixture2D
    init: Callable[[jax.Array], TrainState]
    """``init(key)``: the state at step 0."""
    step: Callable[[TrainState, jax.Array], tuple[TrainState, dict]]
    """``step(state, data_key)``: one train step on the batch drawn from ``fold_in(data_key, state.step)``."""
    sample: Callable[[TrainState, jax.Array], jax.Array]
    """``sample(state, key)``: ``evaluation.eval_samples`` points, from G's moving average when the state keeps
    one."""
    phases: tuple


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

    def step(state: TrainState, data_key: jax.Array):
        return inner(state, {"image": mixture.sample(jax.random.fold_in(data_key, state.step), rows)})

    def sample(state: TrainState, key: jax.Array) -> jax.Array:
        z = config.latent.sample(key, config.evaluation.eval_samples)
        return gans.generate(state, z, use_ema=use_ema, rngs={"dropout": key})

    return Benchmark(mixture, init, step, sample, phases)


def train_and_evaluate(config: Config) -> dict:
    """Trains, evaluates and plots; returns the last log record."""
    parts = benchmark(config)
    start(config, batches_per_step(parts.phases))
    workdir = pathlib.Path(config.run.workdir)
    mixture = parts.mixture
    keys = run_keys(config.run.seed)
    reference = np.asarray(mixture.sample(jax.random.fold_in(keys.eval, 0), config.evaluation.eval_samples))
    sample = jax.jit(parts.sample)
    step = jax.jit(parts.step, donate_argnums=0)

    drawn: dict[int, tuple[np.ndarray, dict]] = {}  # the last step's samples and mode metrics, shared by both hooks

    def draw(state, done: int) -> tuple[np.ndarray, dict]:
        if done not in drawn:
            points = np.asarray(sample(state, jax.random.fold_in(keys.eval, done)))
            drawn.clear()
            drawn[done] = points, metrics.mixture_metrics(points, mixture.means, mixture.std)
        return drawn[done]

    def evaluate(state, done: int) -> dict:
        points, found = draw(state, done)
        return {**found, **metrics.sample_diversity(points[:1000], reference[:1000])}

    def plot(state, done: int) -> np.ndarray:
        points, found = draw(state, done)
        path = plots.scatter_mixture(
            points,
            mixture.means,
            workdir / "samples" / f"step_{done:06d}.png",
            f"{config.mixture} step {done}: {found['modes']} modes, {found['high_quality']:.0%} high quality",
        )
        with Image.open(path) as picture:
            return np.asarray(picture.convert("RGB"))

    hooks = run_hooks(
        config.run,
        to_dict(config),
        [Evaluate(config.evaluation.eval_every, evaluate)],
        config.monitor.build(config.objective),
        plot,
    )
    log = next(hook for hook in hooks if isinstance(hook, Log))
    state = train_loop(
        parts.init(keys.init),
        step,
        lambda start: itertools.repeat(keys.data),
        config.schedule.steps,
        hooks,
        desc=config.mixture,
    )
    return {"step": int(state.step), **log.last}


# The columns of ``python -m experiments.gaussian_mixture table ROOT``: metric, header and format.
TABLE_COLUMNS = (
    ("modes", "modes", ".1f"),
    ("high_quality", "high-quality share", ".3f"),
    ("mode_kl", "mode KL", ".3f"),
)


def main(argv: Sequence[str] | None = None) -> None:
    run_main(Config, lambda config: print(json.dumps(train_and_evaluate(config))), argv, TABLE_COLUMNS)


if __name__ == "__main__":
    main()
