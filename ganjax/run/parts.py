"""The parts a run's config is made of, one per concern: plain typed data, each with defaults."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import jax
import optax
from tqdm import tqdm

from ganjax import data, optim, penalties, swaps
from ganjax.evaluation import monitor
from ganjax.training.objective import Objective
from ganjax.validate import SEED_MAX, at_least, positive, refuse

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Data:
    """The image dataset: the embedded MNIST digits, a folder of IDX files or images, or a TFDS dataset.

    An image size or channel count left unset is the data's own (an image
    folder's first image), filled in when the command line is read, so
    config.json and the model see the real shape.
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
    """keep a ring of this many past fakes for D (0: none; ganhacks #8, experience replay)."""
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

    def build(self, objective: Objective | None = None) -> monitor.MonitorConfig:
        """The monitor's settings. "D's loss near its least" is judged above the least that D's targets allow
        (0.325 with one-sided smoothing: :attr:`ganjax.training.objective.Objective.least_d_loss`); the check is
        off for a loss unbounded below (:attr:`ganjax.losses.LossPair.d_loss_bounded_below`: the Wasserstein
        critic's)."""
        margin = monitor.MonitorConfig.d_loss_floor
        if objective is None:
            floor = margin
        elif not objective.pair.d_loss_bounded_below:
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
