"""The parts an experiment's config is made of, one per concern, parsed from the command line by tyro.

An experiment's config is a frozen dataclass of these parts (and its own
model part), each with defaults; it declares only the parts it uses, so a
flag that would change nothing does not exist. Flags are ``--part.field``
(``--schedule.steps 100 --optim.lr-g 1e-3``); ``--help`` lists every field with
its description, default and choices. A value that cannot apply is refused by
the part's ``__post_init__`` with a message naming the field, which tyro
prints as a usage error.

The GAN objective's parts are the library's own values
(:class:`ganjax.training.gan.Latent`, :class:`Objective`,
:class:`ganjax.training.gan.Conditioning`, :class:`ganjax.training.gan.InputNoise`,
:class:`ganjax.training.gan.Augmentation`);
``Latent`` and ``Objective`` are re-declared here only so that their name
fields are ``Literal`` choices on the command line.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, TypeVar

import jax
import numpy as np
import optax
import tyro
from tqdm import tqdm

from ganjax import clusters, data, optim, penalties, swaps
from ganjax.evaluation import monitor
from ganjax.models import conditional, dcgan
from ganjax.nn import precision
from ganjax.training import gan
from ganjax.training.gan import Augmentation, Conditioning, InputNoise

__all__ = [
    "PRESETS",
    "Augmentation",
    "BatchNormDevices",
    "ClassAccuracy",
    "ClassHead",
    "ClassHeadGAN",
    "ConditionalGAN",
    "ConditionalModel",
    "Conditioning",
    "DCGANModel",
    "Data",
    "Devices",
    "Evaluation",
    "GANSchedule",
    "ImageGAN",
    "InputNoise",
    "Latent",
    "Monitor",
    "Objective",
    "Optimizers",
    "Preset",
    "Run",
    "Schedule",
    "StateOptions",
    "Swaps",
    "UnconditionalGAN",
    "at_least",
    "known_dtype",
    "parse",
    "r3gan",
    "refuse",
    "to_dict",
]

Config = TypeVar("Config")
SEED_MAX = 2**32 - 1  # seeds are unsigned 32-bit integers for jax.random.key and NumPy


def refuse(part: object, field: str, problem: str):
    """Raises the ValueError naming ``Part.field`` that tyro shows as a usage error."""
    raise ValueError(f"{type(part).__name__}.{field}: {problem}")


def at_least(part: object, field: str, low: float, high: float = math.inf) -> None:
    """Refuses ``part.field`` below ``low`` or above ``high``, and NaN and infinities."""
    value = getattr(part, field)
    if not math.isfinite(value):
        refuse(part, field, f"must be finite, got {value}")
    if not low <= value <= high:
        refuse(part, field, f"must be {f'in [{low}, {high}]' if high < math.inf else f'at least {low}'}, got {value}")


def positive(part: object, field: str) -> None:
    """Refuses ``part.field`` unless it is a positive, finite number."""
    value = getattr(part, field)
    if not math.isfinite(value):
        refuse(part, field, f"must be finite, got {value}")
    if not value > 0:
        refuse(part, field, f"must be positive, got {value}")


def known_dtype(part: object, field: str) -> None:
    """Refuses ``part.field`` unless it names a compute dtype (:data:`ganjax.nn.precision.COMPUTE_DTYPES`)."""
    if getattr(part, field) not in precision.COMPUTE_DTYPES:
        refuse(part, field, f"unknown name {getattr(part, field)!r}; choose one of {list(precision.COMPUTE_DTYPES)}")


def folder_or_missing(part: object, field: str) -> None:
    """Refuses ``part.field`` when it names something that exists but is not a folder."""
    path = pathlib.Path(getattr(part, field))
    if path.exists() and not path.is_dir():
        refuse(part, field, f"{path} is a file, not a folder")


Latent = gan.Latent
Objective = gan.Objective


@dataclasses.dataclass(frozen=True)
class Data:
    """The image dataset: the embedded MNIST digits, a folder of IDX files or images, or a TFDS dataset.

    An image size or channel count left unset is the data's own (an image
    folder's first image): :func:`parse` fills it in (:meth:`resolved`), so
    ``config.json`` and the model see the real shape.
    """

    dir: str | None = None
    """folder of MNIST-format IDX files or of images (any format Pillow reads); None: tfds_name, or else the
    embedded MNIST test set (10,000 digits)."""
    tfds_name: str | None = None
    """a TFDS dataset, read when dir is None (e.g. mnist for its 60,000 training digits)."""
    split: str | None = None
    """the split: a file prefix such as 'train' or 't10k' in an IDX folder, or a TFDS split; None: an IDX
    folder's only split, or TFDS's 'train'."""
    image_size: int | None = None
    """side of the square images; None: the data's own (image folders are centre-cropped and resized to it)."""
    channels: Literal[1, 3] | None = None
    """1 (grey) or 3 (RGB); None: the data's own."""
    folder_labels: bool = False
    """label an image folder's images by their subfolder (the classes are the subfolders' sorted names)."""

    def __post_init__(self):
        if self.image_size is not None:
            at_least(self, "image_size", 1)
        if self.channels not in (None, 1, 3):
            refuse(self, "channels", f"must be 1 or 3, got {self.channels}")
        if self.dir is not None and self.tfds_name is not None:
            refuse(self, "tfds_name", f"is {self.tfds_name!r} with dir {self.dir!r}: choose one source")
        if self.folder_labels and self.dir is None:
            refuse(self, "folder_labels", "labels image folders by subfolder: give --data.dir")

    def resolved(self) -> Data:
        """This part with an unset image size or channel count set to the data's own.

        Raises:
          ValueError: naming ``Data.dir`` (or ``Data.tfds_name``) when the data cannot be read.
        """
        if self.image_size is not None and self.channels is not None:
            return self
        try:
            side, channels = data.native_shape(self.source, self.split)
        except data.DataError as e:
            refuse(self, "dir" if self.dir is not None else "tfds_name", str(e))
        return dataclasses.replace(self, image_size=self.image_size or side, channels=self.channels or channels)

    @property
    def source(self) -> str:
        """What :func:`ganjax.data.load` reads: a folder, or ``tfds:NAME``."""
        if self.dir is not None:
            return self.dir
        return f"tfds:{self.tfds_name}" if self.tfds_name is not None else str(data.PACKAGED_MNIST)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.image_size, self.image_size, self.channels

    def load(self) -> data.ImageDataset:
        """The dataset, checked against ``image_size`` and ``channels`` (with a progress bar for an image folder)."""
        part = self.resolved()
        dataset = data.load(
            part.source,
            image_size=part.image_size,
            channels=part.channels,
            split=part.split,
            folder_labels=part.folder_labels,
            progress=functools.partial(tqdm, desc=f"reading {part.source}", leave=False, unit=" images"),
        )
        if dataset.images.shape[1:] != part.shape:
            raise data.DataError(
                f"{dataset.name}: images are {dataset.images.shape[1:]}, but the config asks for "
                f"image_size={part.image_size}, channels={part.channels}"
            )
        return dataset


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How long and on how much data each step trains."""

    steps: int = 3000
    """train steps (each updates every player)."""
    batch_size: int = 64
    """the global batch of real examples per update, split evenly over the devices."""

    def __post_init__(self):
        at_least(self, "steps", 1)
        at_least(self, "batch_size", 1)


@dataclasses.dataclass(frozen=True)
class GANSchedule(Schedule):
    """How long and on how much data each step trains; D may take several updates per step."""

    n_critic: int = 1
    """D updates per G update; each takes its own batch of batch_size reals."""

    def __post_init__(self):
        super().__post_init__()
        at_least(self, "n_critic", 1)


@dataclasses.dataclass(frozen=True)
class Optimizers:
    """G's and D's optimizers (ganjax.optim.gan_optimizers); both share b1, b2 and the options below."""

    g_optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    """G's update rule."""
    d_optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    """D's update rule."""
    lr_g: float = 2e-4
    """G's learning rate."""
    lr_d: float = 2e-4
    """D's learning rate."""
    b1: float = 0.5
    """Adam's first-moment decay."""
    b2: float = 0.999
    """Adam's second-moment decay."""
    lr_decay: bool = False
    """constant learning rates for the first half of the steps, then linearly to 0 (ganjax.optim.linear_decay)."""
    lr_g_final: float | None = None
    """anneal G's learning rate with a cosine from lr_g to this over anneal_steps steps (R3GAN, Huang et al. 2024;
    ganjax.optim.cosine_anneal); None: constant."""
    lr_d_final: float | None = None
    """anneal D's learning rate from lr_d to this likewise, over anneal_steps times n_critic D updates."""
    b2_final: float | None = None
    """anneal Adam's b2 from b2 to this likewise (R3GAN: 0.9 to 0.99), each player over its own updates; None:
    constant."""
    anneal_steps: int = 0
    """the steps the *_final values are annealed over (with one of them; 0: none)."""
    grad_clip: float | None = None
    """clip each player's gradient to this global norm."""
    grad_noise: float | None = None
    """Gaussian gradient noise of this variance, annealed (Neelakantan et al. 2015)."""
    optimistic: bool = False
    """optimistic Adam / gradient descent (Daskalakis et al. 2018); not with rmsprop."""
    weight_clip: float | None = None
    """clip D's weights to [-c, c] after each update (the original WGAN)."""

    def __post_init__(self):
        for field in ("lr_g", "lr_d"):
            positive(self, field)
        for field in ("b1", "b2"):
            if not 0.0 <= getattr(self, field) < 1.0:
                refuse(self, field, f"must be in [0, 1), got {getattr(self, field)}")
        for field in ("grad_clip", "grad_noise", "weight_clip"):
            if getattr(self, field) is not None:
                positive(self, field)
        if self.optimistic and "rmsprop" in (self.g_optimizer, self.d_optimizer):
            refuse(self, "optimistic", "there is no optimistic RMSprop; use adam or sgd")
        finals = ("lr_g_final", "lr_d_final", "b2_final")
        for field in finals[:2]:
            if getattr(self, field) is not None:
                positive(self, field)
        if self.b2_final is not None:
            if not 0.0 <= self.b2_final < 1.0:
                refuse(self, "b2_final", f"must be in [0, 1), got {self.b2_final}")
            if (self.g_optimizer, self.d_optimizer) != ("adam", "adam"):
                refuse(self, "b2_final", "anneals both players' Adam b2: both must use adam")
        if self.lr_decay and (self.lr_g_final, self.lr_d_final) != (None, None):
            refuse(self, "lr_decay", "the learning rates are annealed to lr_g_final / lr_d_final: choose one schedule")
        at_least(self, "anneal_steps", 0)
        annealed = [field for field in finals if getattr(self, field) is not None]
        if annealed and not self.anneal_steps:
            refuse(self, "anneal_steps", f"is 0 with {annealed[0]} set: give the steps it anneals over")
        if self.anneal_steps and not annealed:
            refuse(self, "anneal_steps", f"is {self.anneal_steps} with none of {', '.join(finals)} to anneal to")

    def build(self, key: jax.Array, steps: int, n_critic: int = 1) -> optim.GANOptimizers:
        """G's and D's chains; ``key`` seeds the gradient noise, ``steps`` and ``n_critic`` span the decay.

        D takes ``n_critic`` updates per step, each counted by its schedules, so both rates reach 0 at the last step
        and D's annealed values reach their final values after ``anneal_steps`` steps, as G's do.
        """
        lr_g, lr_d = self.lr_g, self.lr_d
        if self.lr_decay:
            lr_g, lr_d = optim.linear_decay(lr_g, steps), optim.linear_decay(lr_d, steps * n_critic)

        def anneal(base, final, updates_per_step):
            return base if final is None else optim.cosine_anneal(base, final, self.anneal_steps * updates_per_step)

        tx = optim.gan_optimizers(
            anneal(lr_g, self.lr_g_final, 1),
            anneal(lr_d, self.lr_d_final, n_critic),
            g_optimizer=self.g_optimizer,
            d_optimizer=self.d_optimizer,
            b1=self.b1,
            b2=anneal(self.b2, self.b2_final, 1),
            b2_d=anneal(self.b2, self.b2_final, n_critic),
            grad_clip=self.grad_clip,
            grad_noise=self.grad_noise,
            optimistic=self.optimistic,
            key=key,
        )
        if self.weight_clip is not None:
            tx = tx._replace(d=optax.chain(tx.d, penalties.weight_clipping(self.weight_clip)))
        return tx


@dataclasses.dataclass(frozen=True)
class StateOptions:
    """What the train state keeps beside the players (ganjax.training.gan.create_state)."""

    ema_decay: float = 0.0
    """keep a moving average of G's params with this decay, and sample and evaluate it (0: none)."""
    ema_half_life: float = 0.0
    """keep the moving average with this half-life in images instead, a decay of 0.5 ** (batch_size / ema_half_life)
    per step (0: none; StyleGAN2-ADA's ema_kimg, in images)."""
    ema_anneal_steps: int = 0
    """raise the half-life from 0 (the average is G) to ema_half_life with a cosine over this many steps (R3GAN;
    ganjax.optim.cosine_anneal); 0: constant."""
    replay_capacity: int = 0
    """keep a ring of this many past fakes for D (0: none; ganhacks trick 7)."""
    replay_share: float = 0.0
    """the share of D's fake batch replayed from that ring."""

    def __post_init__(self):
        if not 0.0 <= self.ema_decay < 1.0:
            refuse(self, "ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        at_least(self, "ema_half_life", 0.0)
        if self.ema_half_life and self.ema_decay:
            refuse(self, "ema_half_life", f"is {self.ema_half_life} with ema_decay {self.ema_decay}: choose one")
        at_least(self, "ema_anneal_steps", 0)
        if self.ema_anneal_steps and not self.ema_half_life:
            refuse(self, "ema_anneal_steps", f"is {self.ema_anneal_steps} with no ema_half_life to anneal to")
        at_least(self, "replay_capacity", 0)
        if not 0.0 <= self.replay_share <= 1.0:
            refuse(self, "replay_share", f"must be in [0, 1], got {self.replay_share}")
        if (self.replay_capacity == 0) != (self.replay_share == 0):
            refuse(
                self,
                "replay_share",
                f"is {self.replay_share} with replay_capacity {self.replay_capacity}: set both or neither",
            )

    @property
    def keeps_ema(self) -> bool:
        """Whether the state keeps a moving average of G (which samples and evaluations then use)."""
        return bool(self.ema_decay or self.ema_half_life)

    def ema(self, batch_size: int) -> float | optax.Schedule:
        """G's EMA decay per step (0: none): ``ema_decay``, or the half-life's (a schedule while it anneals)."""
        if not self.ema_half_life:
            return self.ema_decay
        half_life = self.ema_half_life
        if self.ema_anneal_steps:
            half_life = optim.cosine_anneal(0.0, half_life, self.ema_anneal_steps)
        return optim.half_life_decay(half_life, batch_size)


@dataclasses.dataclass(frozen=True)
class Swaps:
    """Past-opponent swaps (ganjax.swaps): now and then, train for a few steps against an old G or D."""

    every: int = 0
    """a swap window opens every this many steps (0: no swaps)."""
    duration: int = 0
    """steps a window lasts, fewer than every."""
    history: int = 5
    """past snapshots kept."""
    player: Literal[swaps.SWAPPED] = "d"
    """the player replaced by its past self ('either': a fair coin per window)."""

    def __post_init__(self):
        self.build()

    def build(self) -> swaps.SwapConfig:
        return swaps.SwapConfig(every=self.every, duration=self.duration, history=self.history, swapped=self.player)

    def prepare(self, state):
        """``state`` with the snapshot ring the swaps keep (unchanged when off)."""
        return swaps.init(state, self.build()) if self.every else state

    def wrap(self, step):
        """``step`` with the swap windows (unchanged when off)."""
        return swaps.with_opponent_swaps(step, self.build()) if self.every else step


@dataclasses.dataclass(frozen=True)
class Run:
    """Where the run writes, its seed, and how often it logs, samples and checkpoints."""

    workdir: str = "runs/experiment"
    """the run's folder; one that holds another run is refused unless --run.resume or --run.overwrite."""
    seed: int = 0
    """seeds the players' init, every step's draws and the batch order."""
    log_every: int = 50
    """steps between logged means of the train metrics (and the failure monitor's checks)."""
    sample_every: int = 250
    """steps between sample grids."""
    checkpoint_every: int = 500
    """steps between checkpoints."""
    keep_checkpoints: int = 3
    """how many recent checkpoints are kept."""
    resume: bool = False
    """continue the run in workdir from its last checkpoint (its config may change only in where and how often it
    reports, and in a larger schedule.steps)."""
    allow_changes: tuple[str, ...] = ()
    """on resume, config fields (part.field) that may differ from the saved run, e.g. optim.lr_g; never the model,
    the seed or the batch size."""
    overwrite: bool = False
    """delete whatever workdir holds and start afresh."""

    def __post_init__(self):
        at_least(self, "seed", 0, SEED_MAX)
        for field in ("log_every", "sample_every", "checkpoint_every", "keep_checkpoints"):
            at_least(self, field, 1)
        if self.resume and self.overwrite:
            refuse(self, "overwrite", "resume continues the run in workdir, overwrite deletes it: choose one")
        for name in self.allow_changes:
            if "." not in name:
                refuse(self, "allow_changes", f"{name!r} is not a part.field name such as optim.lr_g")


@dataclasses.dataclass(frozen=True)
class Devices:
    """The devices a run uses; several hosts set any of the last three on every process (JAX detects the rest)."""

    num_devices: int = 0
    """devices per process; 0: all of them."""
    coordinator_address: str | None = None
    """host:port of process 0, for a multi-host run."""
    num_processes: int | None = None
    """processes in a multi-host run."""
    process_id: int | None = None
    """this process's index in a multi-host run."""

    def __post_init__(self):
        at_least(self, "num_devices", 0)

    @property
    def multi_host(self) -> bool:
        return (self.coordinator_address, self.num_processes, self.process_id) != (None, None, None)


@dataclasses.dataclass(frozen=True)
class BatchNormDevices(Devices):
    """The devices a run uses, and whether BatchNorm averages its statistics over them."""

    cross_replica_bn: Literal["auto", "on", "off"] = "auto"
    """BatchNorm statistics over all devices: on, off, or auto (on below 32 examples per device)."""


@dataclasses.dataclass(frozen=True)
class Monitor:
    """The failure monitor (ganjax.evaluation.monitor): its flags are logged; NaN or Inf always stops the run."""

    window: int = 200
    """recent steps each check judges."""
    baseline: int = 400
    """steps before those that are the run's earlier level (gradient norms are judged against it)."""
    warmup: int = 400
    """first steps in which only outright failures are flagged (D's loss at its least, exploding or vanishing
    gradients), while the losses move fast; at most window + baseline, the steps a check reads."""
    max_grad_norm: float = 100.0
    """a median gradient norm above this and 10x its earlier level is an explosion."""
    stop_on: tuple[Literal[tuple(monitor.CHECKS)], ...] = ()
    """flags that stop the run early (after a last sample and checkpoint)."""

    def __post_init__(self):
        at_least(self, "window", 2)
        at_least(self, "baseline", 0)
        at_least(self, "warmup", 0, self.window + self.baseline)
        positive(self, "max_grad_norm")

    def build(self, objective: gan.Objective | None = None) -> monitor.MonitorConfig:
        """The monitor's settings. "D's loss near its least" is judged above the least that D's targets allow
        (0.325 with one-sided smoothing: :attr:`ganjax.training.gan.Objective.least_d_loss`); a Wasserstein
        critic's loss is unbounded below, so the check is off there."""
        margin = monitor.MonitorConfig.d_loss_floor
        if objective is None:
            floor = margin
        elif objective.loss == "wasserstein":
            floor = -float("inf")
        else:
            floor = objective.least_d_loss + margin
        return monitor.MonitorConfig(
            window=self.window,
            baseline=self.baseline,
            warmup=self.warmup,
            max_grad_norm=self.max_grad_norm,
            d_loss_floor=floor,
            stop_on=tuple(self.stop_on),
        )


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Periodic evaluation of G (experiments.evaluation): FID, KID, precision/recall, density/coverage, collapse."""

    eval_every: int = 1000
    """steps between evaluations (0: none); the first one builds the evaluator, none runs before training."""
    eval_samples: int = 2000
    """samples per evaluation."""
    feature_network: Literal["auto", "mnist", "inception"] = "auto"
    """the features FID, KID, precision/recall and density/coverage compare: the MNIST classifier, InceptionV3 (with
    fid_weights), or auto: the classifier for 28x28x1 images, InceptionV3 for others."""
    classifier_dir: str = "runs/mnist_classifier"
    """the MNIST feature network (if missing, trained there on labelled 28x28x1 data beside the run, which waits for
    it at the first evaluation)."""
    fid_weights: str | None = None
    """InceptionV3 FID weights, the .npz of python -m ganjax.evaluation.inception convert
    pt_inception-2015-12-05-6726825d.pth OUT.npz; None: $GANJAX_FID_WEIGHTS if set."""

    def __post_init__(self):
        at_least(self, "eval_every", 0)
        at_least(self, "eval_samples", 2)
        folder_or_missing(self, "classifier_dir")


@dataclasses.dataclass(frozen=True)
class Diversity:
    """The mode-collapse signals alone (experiments.evaluation.diversity_hooks): duplicate_share and
    pairwise_distance_ratio of G's samples against real images in pixel space, which the monitor reads."""

    eval_every: int = 500
    """steps between evaluations (0: none); none runs before training or at the end."""
    eval_samples: int = 1000
    """samples per evaluation (at most 1,000; compared with up to 1,000 real images)."""

    def __post_init__(self):
        at_least(self, "eval_every", 0)
        at_least(self, "eval_samples", 2, 1000)


def r3gan(config: Config) -> Config:
    """R3GAN (Huang et al. 2024): RpGAN, R1 + R2, Adam b1 0, gamma, lrs, b2 and EMA half-life cosine-annealed.

    The recipe of Huang, Gokaslan, Kuleshov and Tompkin 2024 (The GAN is dead;
    long live the GAN! A Modern GAN Baseline) on an image GAN's objective,
    optimizers and state: the relativistic pairing loss RpGAN
    (``objective.loss='relativistic'``, no label smoothing) with R1 on the reals and R2 on the fakes
    (``penalty='r1_r2'``), weighted ``gamma / 2`` with gamma annealed from 0.05 to
    0.005 (their CIFAR-10 values); Adam with b1 0 and b2 annealed from 0.9 to
    0.99; both learning rates annealed from 2e-4 to 5e-5; and G's EMA half-life
    raised from 0 to a tenth of the images the run shows G (``steps *
    batch_size / 10``); each with :func:`ganjax.optim.cosine_anneal` over the
    run's ``schedule.steps``.

    The final half-life is for MNIST-scale runs of a few thousand steps: a
    tenth of the run averages G over its last stretch (dcgan_mnist's 6,000
    steps of 32: 19,200 images, 600 steps, a decay of 0.9988 per step) without
    reaching back to its early weights, where a fixed half-life taken from
    long CIFAR-10 runs would be out of proportion with the run.
    The experiment's players stay its own (R3GAN's are normalization-free ResNets;
    the penalty scores D with its running BatchNorm statistics where D has them).

    The config needs the parts of :data:`PRESETS` ``['r3gan'].parts``.
    """
    steps, images = config.schedule.steps, config.schedule.steps * config.schedule.batch_size
    return dataclasses.replace(
        config,
        objective=dataclasses.replace(
            config.objective,
            loss="relativistic",
            d_labels="none",
            penalty="r1_r2",
            penalty_weight=0.05 / 2,
            penalty_weight_final=0.005 / 2,
            penalty_anneal_steps=steps,
        ),
        optim=dataclasses.replace(
            config.optim,
            g_optimizer="adam",
            d_optimizer="adam",
            lr_g=2e-4,
            lr_d=2e-4,
            lr_g_final=5e-5,
            lr_d_final=5e-5,
            b1=0.0,
            b2=0.9,
            b2_final=0.99,
            anneal_steps=steps,
        ),
        state=dataclasses.replace(config.state, ema_decay=0.0, ema_half_life=images / 10, ema_anneal_steps=steps),
    )


class Preset(NamedTuple):
    """A named setting of some parts of a config: ``apply(config) -> config``, for configs with ``parts``."""

    apply: Callable[[Config], Config]
    parts: dict[str, type]

    def missing(self, cls: type) -> tuple[str, type] | None:
        """The first ``(field, part)`` of ``parts`` that the config class lacks; None when it has them all."""
        defaults = {field.name: field.default for field in dataclasses.fields(cls)}
        return next(
            ((field, part) for field, part in self.parts.items() if not isinstance(defaults.get(field), part)), None
        )

    def check(self, name: str, cls: type) -> None:
        """Refuses a config class without one of the parts, naming the preset and the field."""
        lacking = self.missing(cls)
        if lacking is not None:
            field, part = lacking
            raise ValueError(f"{PRESET_FLAG} {name}: {cls.__name__}.{field}: the config has no {part.__name__} part")


# Named settings of an experiment's parts: ``--preset NAME`` before, after or among the flags, which apply on top.
PRESETS = {
    "r3gan": Preset(
        r3gan, {"objective": gan.Objective, "optim": Optimizers, "state": StateOptions, "schedule": Schedule}
    ),
}
PRESET_FLAG = "--preset"


def _preset(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(the preset's name or None, the other flags)`` of ``argv``."""
    argv, name = list(argv), None
    for i, arg in enumerate(argv):
        if arg == PRESET_FLAG or arg.startswith(f"{PRESET_FLAG}="):
            name = arg.partition("=")[2] or (argv[i + 1] if i + 1 < len(argv) else "")
            del argv[i : i + (1 if "=" in arg else 2)]
            break
    if name is not None and name not in PRESETS:
        raise ValueError(f"{PRESET_FLAG}: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name, argv


def parse(cls: type[Config], argv: Sequence[str] | None = None) -> Config:
    """``cls`` from its defaults, a preset and ``argv`` (the command line when None), its data parts resolved.

    ``--preset NAME`` (:data:`PRESETS`) starts from the preset of the defaults
    instead, and the other flags apply on top of it. A preset spans the run's
    ``schedule.steps``, which the flags may set, so they are read twice: once on
    the preset of the defaults, for the schedule, then on the preset of that schedule.

    Exits with a usage error on a bad value; raises ValueError naming the preset or ``Data.dir`` when the
    preset cannot apply or the data cannot be read (:func:`resolve`).
    """
    name, args = _preset(sys.argv[1:] if argv is None else argv)
    summary = (cls.__doc__ or "").strip().split("\n")[0]
    presets = "; ".join(
        f"{key}: {PRESETS[key].apply.__doc__.splitlines()[0]}" for key in PRESETS if PRESETS[key].missing(cls) is None
    )
    if presets:
        presets = f"; {PRESET_FLAG} NAME starts from a preset, the other flags apply on top. Presets: {presets}"
    description = f"{summary} (--debug: show the traceback of an error{presets})"
    cli = functools.partial(tyro.cli, cls, args=args, description=description)
    if name is None:
        return resolve(cli())
    preset = PRESETS[name]
    preset.check(name, cls)
    schedule = cli(default=preset.apply(cls())).schedule
    return resolve(cli(default=preset.apply(dataclasses.replace(cls(), schedule=schedule))))


def resolve(config: Config) -> Config:
    """``config`` with its parts resolved: a part with a ``resolved()`` method (:meth:`Data.resolved`) gives its own."""
    if callable(getattr(config, "resolved", None)):
        return config.resolved()
    if not dataclasses.is_dataclass(config):
        return config
    parts = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    resolved = {name: resolve(part) for name, part in parts.items()}
    changed = {name: part for name, part in resolved.items() if part is not parts[name]}
    return dataclasses.replace(config, **changed) if changed else config


def to_dict(config) -> dict:
    """The config as plain JSON values."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


@dataclasses.dataclass(frozen=True)
class DCGANModel:
    """The DCGAN G and D (ganjax.models.dcgan) and their options."""

    g_width: int = 64
    """channels of G's last hidden layer (doubling towards its input)."""
    d_width: int = 64
    """channels of D's first layer (doubling with depth)."""
    g_norm: Literal[dcgan.G_NORMS] = "batch"
    """G's normalization."""
    d_norm: Literal[dcgan.D_NORMS] = "batch"
    """D's normalization ('none' for a critic with a per-example penalty)."""
    upsampling: Literal[dcgan.UPSAMPLINGS] = "transposed"
    """G's 2x upsampling layers."""
    g_activation: Literal[tuple(dcgan.ACTIVATIONS)] = "relu"
    """G's hidden activation."""
    g_noise_std: float = 0.0
    """Gaussian noise after every hidden layer of G in training (EBGAN)."""
    g_dropout: float = 0.0
    """dropout in G, kept on at generation time (pix2pix: 0.5)."""
    compute_dtype: precision.ComputeDtype = "auto"
    """G's and D's activations and convolutions: float32, bfloat16 (params, optimizer state, losses and
    BatchNorm statistics stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        for field in ("g_width", "d_width"):
            at_least(self, field, 1)
        at_least(self, "g_noise_std", 0.0)
        if not 0.0 <= self.g_dropout < 1.0:
            refuse(self, "g_dropout", f"must be in [0, 1), got {self.g_dropout}")
        known_dtype(self, "compute_dtype")

    def build(
        self,
        data: Data,
        latent_dim: int,
        bn_axis_name: str | None = None,
        num_classes: int = 0,
        d_conditioning: Literal["auxiliary", "channels", "projection"] = "auxiliary",
    ):
        """``(G, D)`` for ``data``'s images; BatchNorm synchronized over ``bn_axis_name``. With ``num_classes``,
        D is :class:`ganjax.models.conditional.Discriminator` with ``d_conditioning``: an unconditional G beside
        an AC-GAN class head (``'auxiliary'``), or a G that takes the class (:class:`ganjax.models.conditional.
        Generator`) beside a D that sees it."""
        dtype = precision.compute_dtype(self.compute_dtype)
        layers = dict(
            norm=self.g_norm,
            upsampling=self.upsampling,
            activation=self.g_activation,
            noise_std=self.g_noise_std,
            dropout=self.g_dropout,
            bn_axis_name=bn_axis_name,
            dtype=dtype,
        )
        if num_classes and d_conditioning != "auxiliary":
            generator = conditional.Generator(
                num_classes,
                image_size=data.image_size,
                channels=data.channels,
                width=self.g_width,
                latent_dim=latent_dim,
                **layers,
            )
        else:
            generator = dcgan.Generator(data.image_size, data.channels, self.g_width, latent_dim, **layers)
        if num_classes:
            discriminator = conditional.Discriminator(
                d_conditioning,
                num_classes,
                image_size=data.image_size,
                width=self.d_width,
                norm=self.d_norm,
                bn_axis_name=bn_axis_name,
                dtype=dtype,
            )
        else:
            discriminator = dcgan.Discriminator(
                data.image_size, self.d_width, norm=self.d_norm, bn_axis_name=bn_axis_name, dtype=dtype
            )
        return generator, discriminator


@dataclasses.dataclass(frozen=True)
class ImageGAN:
    """The parts every image GAN experiment uses; an experiment adds its model (and changes defaults)."""

    data: Data = Data()
    latent: Latent = Latent()
    objective: Objective = Objective()
    noise: InputNoise = InputNoise()
    augment: Augmentation = Augmentation()
    optim: Optimizers = Optimizers()
    state: StateOptions = StateOptions()
    schedule: GANSchedule = GANSchedule()
    run: Run = Run()
    devices: BatchNormDevices = BatchNormDevices()
    monitor: Monitor = Monitor()

    def make_gan(self, conditioning: Conditioning | None = None) -> gan.GAN:
        """The objective these parts make (with ``conditioning`` for a class-conditional GAN)."""
        return gan.GAN(self.latent, self.objective, conditioning or Conditioning(), self.noise, self.augment)


@dataclasses.dataclass(frozen=True)
class UnconditionalGAN(ImageGAN):
    """An image GAN sampled from one fixed z into grids of ``num_samples`` images."""

    num_samples: int = 100
    """images in each sample grid (rows of 10)."""

    def __post_init__(self):
        at_least(self, "num_samples", 1)

    @property
    def conditioning(self) -> Conditioning:
        """The GAN's :class:`ganjax.training.gan.Conditioning`: none."""
        return Conditioning()

    def models(self, bn_axis_name: str | None = None):
        """``(G, D)`` of a model part built as :meth:`DCGANModel.build` builds them."""
        return self.model.build(self.data, self.latent.dim, bn_axis_name)

    def training_data(self, dataset: data.ImageDataset) -> data.ImageDataset:
        """The data G and D train on: the data as loaded."""
        return dataset


@dataclasses.dataclass(frozen=True)
class ClassHead:
    """D's class head for an unconditional G: D also learns the classes of the labelled reals.

    ganhacks trick 16 ("use labels"): the AC-GAN class head (Odena et al. 2017) on the reals alone, as the
    semi-supervised D of Salimans et al. 2016, so D's features separate the classes while G still draws from z
    alone; with ``entropy_weight`` G also takes CatGAN's term (Springenberg 2016,
    :func:`ganjax.losses.class_entropy_g_loss`). The data must carry labels.
    """

    weight: float = 0.0
    """weight of the class head's cross-entropy on the reals in D's loss (0: no head, and no labels needed)."""
    num_classes: int = 10
    """classes of the labels."""
    entropy_weight: float = 0.0
    """weight of CatGAN's term in G's loss: each sample one class by D's head, the batch spread over all."""

    def __post_init__(self):
        at_least(self, "weight", 0.0)
        at_least(self, "num_classes", 2)
        at_least(self, "entropy_weight", 0.0)
        if not self.weight:
            for field in ("num_classes", "entropy_weight"):
                if getattr(self, field) != ClassHead.__dataclass_fields__[field].default:
                    refuse(self, field, f"is {getattr(self, field)} with no class head: set weight > 0")

    @property
    def conditioning(self) -> Conditioning:
        """The GAN's :class:`ganjax.training.gan.Conditioning`: an unconditional G, and D's head if any."""
        if not self.weight:
            return Conditioning()
        return Conditioning(
            self.num_classes,
            aux_class_weight=self.weight,
            aux_fake_class_weight=0.0,
            conditional_g=False,
            class_entropy_weight=self.entropy_weight,
        )


@dataclasses.dataclass(frozen=True)
class Clusters:
    """G and D conditioned on balanced k-means clusters of the unlabelled data (:mod:`ganjax.clusters`).

    Sage et al. 2018, Liu et al. 2020: before training, the data's images (pixels in [0, 1]) are split into
    ``k`` clusters of equal size; G takes a cluster drawn uniformly beside z (so as often as the data holds it)
    and D sees the cluster of each image it scores, as a conditional GAN's players see the class. G learns each
    mode from its own code instead of passing through in-between images where its latent space crosses from
    one mode to the next. No labels are needed; the clusters are the run seed's.
    """

    k: int = 0
    """clusters (0: no clusters, an unconditional G and D)."""
    iterations: int = 20
    """k-means's most assignment steps."""
    d_conditioning: Literal["channels", "projection"] = "channels"
    """how D sees the cluster: extra image channels, or the projection of Miyato and Koyama 2018."""
    fake_classes: Literal["uniform", "reals"] = "uniform"
    """G's clusters in training: drawn uniformly, or the real batch's (one fake beside each real of its cluster)."""

    def __post_init__(self):
        if self.k:
            at_least(self, "k", 2)
        at_least(self, "iterations", 1)

    def refuse_unused(self, defaults: Clusters) -> None:
        """Refuses a field changed from ``defaults`` (an experiment's own) that no clusters (``k`` 0) would use."""
        if not self.k:
            for field in ("iterations", "d_conditioning", "fake_classes"):
                if getattr(self, field) != getattr(defaults, field):
                    refuse(self, field, f"is {getattr(self, field)!r} with no clusters: set k > 0")

    def label(self, dataset: data.ImageDataset, seed: int) -> data.ImageDataset:
        """``dataset`` with each image labelled by its cluster (k-means from ``seed``); as it is without clusters."""
        if not self.k:
            return dataset
        if self.k > len(dataset):
            refuse(self, "k", f"is {self.k}, more clusters than {dataset.name}'s {len(dataset)} images")
        print(f"clustering {dataset.name}'s {len(dataset)} images into {self.k} clusters", file=sys.stderr, flush=True)
        key = jax.random.fold_in(jax.random.key(seed), CLUSTERS_KEY)
        found = clusters.balanced_kmeans(key, cluster_features(dataset.images), self.k, self.iterations)
        return dataclasses.replace(dataset, labels=found.labels, class_names=None)


CLUSTERS_KEY = 3
CLUSTER_SIDE = 32


def cluster_features(images: np.ndarray) -> np.ndarray:
    """What :class:`Clusters` clusters: each image's pixels in [0, 1], flattened; an image wider than
    ``CLUSTER_SIDE`` is first averaged over squares of the least whole size that brings it within."""
    n, side, _, channels = images.shape
    factor = -(-side // CLUSTER_SIDE)
    pixels = images[:, : side - side % factor, : side - side % factor].astype(np.float32) / np.float32(255.0)
    pooled = pixels.reshape(n, side // factor, factor, side // factor, factor, channels).mean(axis=(2, 4))
    return pooled.reshape(n, -1)


"""``fold_in`` data of the clusters' key, beside the three keys an experiment splits from its seed."""


@dataclasses.dataclass(frozen=True)
class ClassHeadGAN(UnconditionalGAN):
    """An unconditional image GAN that may use classes: D's head on the reals' labels (:class:`ClassHead`), or
    both players conditioned on clusters of the data (:class:`Clusters`)."""

    class_head: ClassHead = ClassHead()
    clusters: Clusters = Clusters()

    def __post_init__(self):
        super().__post_init__()
        if self.clusters.k and self.class_head.weight:
            refuse(self.clusters, "k", "conditions on clusters, with class_head.weight > 0 on labels: choose one")
        self.clusters.refuse_unused(type(self).__dataclass_fields__["clusters"].default)

    @property
    def conditioning(self) -> Conditioning:
        """The GAN's :class:`ganjax.training.gan.Conditioning`: the clusters' or the class head's."""
        if self.clusters.k:
            return Conditioning(self.clusters.k, fake_classes=self.clusters.fake_classes)
        return self.class_head.conditioning

    @property
    def d_conditioning(self) -> str:
        """How D sees a class: the clusters' way, an AC-GAN head, or not at all."""
        if self.clusters.k:
            return self.clusters.d_conditioning
        return "auxiliary" if self.class_head.weight else "none"

    def make_gan(self, conditioning: Conditioning | None = None) -> gan.GAN:
        """The objective of these parts, with the class head's or the clusters' conditioning."""
        return super().make_gan(conditioning or self.conditioning)

    def models(self, bn_axis_name: str | None = None):
        """``(G, D)`` of the model part, conditioned as :attr:`d_conditioning` says."""
        classes = self.conditioning.num_classes
        return self.model.build(self.data, self.latent.dim, bn_axis_name, classes, self.d_conditioning)

    def training_data(self, dataset: data.ImageDataset) -> data.ImageDataset:
        """The data G and D train on: labelled by the clusters, if any (:meth:`Clusters.label`)."""
        return self.clusters.label(dataset, self.run.seed)


@dataclasses.dataclass(frozen=True)
class ConditionalModel:
    """The conditional DCGAN G and D (ganjax.models.conditional): G embeds the class beside z."""

    d_conditioning: Literal["channels", "projection", "auxiliary"] = "channels"
    """how D sees the class: extra image channels, the projection of Miyato and Koyama 2018, or an AC-GAN class
    head ('auxiliary', with conditioning.aux_class_weight > 0)."""
    g_embed_dim: int = 10
    """size of G's class embedding."""
    d_embed_dim: int = 4
    """size of D's class embedding (channels)."""
    g_width: int = 32
    """channels of G's last hidden layer."""
    d_width: int = 32
    """channels of D's first layer."""
    g_norm: Literal[dcgan.G_NORMS] = "batch"
    """G's normalization."""
    d_norm: Literal[dcgan.D_NORMS] = "batch"
    """D's normalization."""
    compute_dtype: precision.ComputeDtype = "auto"
    """G's and D's activations and convolutions: float32, bfloat16 (params, optimizer state, losses and
    BatchNorm statistics stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        for field in ("g_embed_dim", "d_embed_dim", "g_width", "d_width"):
            at_least(self, field, 1)
        known_dtype(self, "compute_dtype")

    def build(self, data: Data, latent_dim: int, num_classes: int, bn_axis_name: str | None = None):
        """``(G, D)`` for ``data``'s images and ``num_classes`` classes."""
        dtype = precision.compute_dtype(self.compute_dtype)
        generator = conditional.Generator(
            num_classes,
            self.g_embed_dim,
            data.image_size,
            data.channels,
            self.g_width,
            latent_dim,
            norm=self.g_norm,
            bn_axis_name=bn_axis_name,
            dtype=dtype,
        )
        discriminator = conditional.Discriminator(
            self.d_conditioning,
            num_classes,
            self.d_embed_dim,
            data.image_size,
            self.d_width,
            self.d_norm,
            bn_axis_name,
            dtype,
        )
        return generator, discriminator


@dataclasses.dataclass(frozen=True)
class ClassAccuracy:
    """How often the MNIST classifier labels G's class-c samples c (skipped without a classifier for the images)."""

    classifier_dir: str = "runs/mnist_classifier"
    """the MNIST classifier (experiments.train_mnist_classifier); '' or a missing folder: no class accuracy."""
    eval_every: int = 1000
    """steps between checks, logged as class_accuracy_min and _mean, and class_readable_min and _mean, and with or
    without a classifier duplicate_share and pairwise_distance_ratio of eval_per_class samples per class (0: none)."""
    eval_per_class: int = 100
    """samples per class for each check."""
    final_eval_per_class: int = 1000
    """samples per class for class_accuracy.json at the end."""

    def __post_init__(self):
        for field in ("eval_every", "eval_per_class", "final_eval_per_class"):
            at_least(self, field, 0 if field == "eval_every" else 1)
        if self.classifier_dir:
            folder_or_missing(self, "classifier_dir")


@dataclasses.dataclass(frozen=True)
class ConditionalGAN(ImageGAN):
    """The parts of a class-conditional image GAN."""

    model: ConditionalModel = ConditionalModel()
    conditioning: Conditioning = Conditioning(num_classes=10)
    class_accuracy: ClassAccuracy = ClassAccuracy()
    samples_per_class: int = 10
    """columns of the sample grid (row c is class c)."""

    def __post_init__(self):
        if (self.model.d_conditioning == "auxiliary") != (self.conditioning.aux_class_weight > 0):
            refuse(
                self.model,
                "d_conditioning",
                f"is {self.model.d_conditioning!r} with conditioning.aux_class_weight="
                f"{self.conditioning.aux_class_weight}: the AC-GAN D ('auxiliary') "
                "goes with a positive class-loss weight, and only it",
            )
        if not self.conditioning.num_classes:
            refuse(self.conditioning, "num_classes", "a conditional GAN needs classes")
        at_least(self, "samples_per_class", 1)

    def models(self, bn_axis_name: str | None = None):
        """``(G, D)`` of the model part."""
        return self.model.build(self.data, self.latent.dim, self.conditioning.num_classes, bn_axis_name)
