"""CycleGAN between two unpaired image domains: ``python -m experiments.cyclegan [--data-a DIR --data-b DIR]``.

Zhu et al. 2017 (:mod:`ganjax.models.cyclegan`): two ResNet generators, two
PatchGAN discriminators, least-squares losses, cycle-consistency (10) and
identity (5) L1 losses, a 50-image pool of past fakes per D, Adam(2e-4, b1 0.5)
constant for the first half of the run and then decaying linearly to 0.
``--data-a``/``--data-b`` name two image folders (read at ``--data.image-size``
and ``--data.channels``); without them the domains are made from MNIST
(``--data.dir``, or TFDS): A is the digits of the first half, B the
colour-inverted, thickened digits of the second half, so no image of A has its
counterpart in B.

The two domains travel as one dataset whose examples stack an image of A and
one of B along channels (a fixed, random pairing: the losses never compare
them); the shorter domain is cycled. Writes under ``--run.workdir``:
``config.json``, ``samples/step_*.png`` (rows: a, G_ab(a), G_ba(G_ab(a)), b,
G_ba(b), G_ab(G_ba(b))), ``reconstructions.png`` (A -> B -> A of the last
step), ``samples.gif``, ``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.

Every ``--diversity.eval-every`` steps it logs, per direction, the mode-collapse
signals of the translations of a fixed set of ``--diversity.eval-samples``
source images against images of the target domain: ``a_to_b_duplicate_share``
and ``a_to_b_pairwise_distance_ratio`` for G_ab, ``b_to_a_...`` for G_ba; the
failure monitor's ``mode_collapse`` check reads both.

Of the run's keys (:func:`ganjax.run.run_keys`) the players' init key makes the
state and seeds every step, and the sample key picks the grids' images of A
(``python -m ganjax.sample RUN_DIR`` translates the same ones with G_ab) and,
folded with 1, those of B.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganjax import data, evaluation, images, optim, validate
from ganjax.evaluation import Diversity
from ganjax.models import cyclegan
from ganjax.nn import precision
from ganjax.run import Data, Devices, Generator, Grid, Monitor, Run, Schedule, run_keys
from ganjax.run import main as run_main
from ganjax.training import devices
from ganjax.training.phases import Phase, batches_per_step, make_step
from ganjax.training.state import TrainState


@dataclasses.dataclass(frozen=True)
class Model:
    """The ResNet generators and PatchGAN discriminators (ganjax.models.cyclegan)."""

    g_width: int = 8
    """channels of G's first conv (doubling with each of its two downsamplings)."""
    g_blocks: int = 3
    """G's residual blocks (9 at 256 pixels in the paper)."""
    d_width: int = 16
    """channels of D's first conv (doubling with depth, up to 8 times as many)."""
    d_layers: int = 3
    """D's stride-2 convs (3: the paper's 70x70 PatchGAN)."""
    compute_dtype: precision.ComputeDtype = "auto"
    """the players' activations and convolutions: float32, bfloat16 (params, optimizer state, losses and
    instance-norm statistics stay float32), or auto: bfloat16 on GPU and TPU, float32 on CPU."""

    def __post_init__(self):
        for field in ("g_width", "g_blocks", "d_width", "d_layers"):
            validate.at_least(self, field, 1)
        validate.known_dtype(self, "compute_dtype")


@dataclasses.dataclass(frozen=True)
class Objective:
    """The weights of the L1 terms beside the least-squares GAN losses (ganjax.models.cyclegan.CycleGAN)."""

    cycle_weight: float = 10.0
    """lambda_cyc: |G_ba(G_ab(a)) - a| + |G_ab(G_ba(b)) - b|."""
    identity_weight: float = 5.0
    """lambda_id: |G_ba(a) - a| + |G_ab(b) - b| (0: none)."""

    def __post_init__(self):
        validate.at_least(self, "cycle_weight", 0.0)
        validate.at_least(self, "identity_weight", 0.0)


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """Every player's Adam: constant for the first half of the steps, then linearly to 0 (ganjax.optim.linear_decay)."""

    lr: float = 2e-4
    """the learning rate of the first half."""
    b1: float = 0.5
    """Adam's first-moment decay."""

    def __post_init__(self):
        if not self.lr > 0:
            validate.refuse(self, "lr", f"must be positive, got {self.lr}")
        if not 0.0 <= self.b1 < 1.0:
            validate.refuse(self, "b1", f"must be in [0, 1), got {self.b1}")

    def build(self, steps: int) -> optax.GradientTransformation:
        return optax.adam(optim.linear_decay(self.lr, steps), b1=self.b1)


@dataclasses.dataclass(frozen=True)
class Pool:
    """Each D's pool of past fakes (Shrivastava et al. 2017)."""

    size: int = 50
    """images in each pool."""
    share: float = 0.5
    """the share of D's fake batch drawn from its pool (0: fresh fakes only)."""

    def __post_init__(self):
        validate.at_least(self, "size", 1)
        if not 0.0 <= self.share <= 1.0:
            validate.refuse(self, "share", f"must be in [0, 1], got {self.share}")


@dataclasses.dataclass(frozen=True)
class Config:
    """CycleGAN between two unpaired image domains (default: MNIST digits and inverted, thickened digits)."""

    data_a: str | None = None
    """image folder of domain A; None: MNIST digits from --data.*."""
    data_b: str | None = None
    """image folder of domain B; None: inverted, thickened MNIST digits from --data.*."""
    data: Data = Data()
    """The MNIST digits both default domains are made of; with --data-a and --data-b only the image size and
    channels apply."""
    model: Model = Model()
    objective: Objective = Objective()
    optim: Optimizer = Optimizer()
    pool: Pool = Pool()
    schedule: Schedule = Schedule(steps=1000, batch_size=8)
    run: Run = Run(workdir="runs/cyclegan", log_every=25)
    devices: Devices = Devices()
    """The devices a run uses (instance norm has no statistics to synchronize)."""
    monitor: Monitor = Monitor()
    num_samples: int = 8
    """images of each domain in the sample grids (the columns)."""
    diversity: Diversity = Diversity(eval_every=250)
    """The mode-collapse signals of each direction: the translations of a fixed set of source images against images
    of the target domain."""

    def __post_init__(self):
        if (self.data_a is None) != (self.data_b is None):
            validate.refuse(
                self,
                "data_b" if self.data_b is None else "data_a",
                "give both --data-a and --data-b, or neither (the MNIST domains)",
            )
        validate.at_least(self, "num_samples", 1)
        if self.data_a is not None:
            for field in ("dir", "tfds_name", "split"):
                if getattr(self.data, field) != getattr(Data(), field):
                    validate.refuse(self.data, field, "the domains come from --data-a and --data-b")

    def resolved(self) -> Config:
        """The config with an unset image shape set to the domains' own (``data_a``'s, or the MNIST digits')."""
        if self.data_a is None:
            resolved = dataclasses.replace(self, data=self.data.resolved())
        else:
            try:
                side, channels = data.native_shape(self.data_a)
            except data.DataError as e:
                validate.refuse(self, "data_a", str(e))
            part = dataclasses.replace(
                self.data, image_size=self.data.image_size or side, channels=self.data.channels or channels
            )
            resolved = dataclasses.replace(self, data=part)
        if 2**self.model.d_layers > resolved.data.image_size:
            validate.refuse(
                self.model,
                "d_layers",
                f"{self.model.d_layers} stride-2 layers need images of at least {2**self.model.d_layers} px",
            )
        return resolved


def thicken_and_invert(digits: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> their 3x3 max-filtered (thickened) versions, colour-inverted (255 - x)."""
    padded = np.pad(digits, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = digits.shape[1:3]
    thick = np.max([padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)], axis=0)
    return 255 - thick


def mnist_domains(digits: data.ImageDataset) -> tuple[data.ImageDataset, data.ImageDataset]:
    """A: the first half of ``digits``; B: the second half, thickened and inverted (unpaired by construction)."""
    half = len(digits) // 2
    return (
        data.ImageDataset(digits.images[:half], name=f"{digits.name} digits"),
        data.ImageDataset(thicken_and_invert(digits.images[half : 2 * half]), name=f"{digits.name} inverted"),
    )


def stacked(domain_a: data.ImageDataset, domain_b: data.ImageDataset, seed: int) -> data.ImageDataset:
    """One dataset whose example ``i`` is an image of A and a randomly paired image of B along channels."""
    if domain_a.images.shape[1:] != domain_b.images.shape[1:]:
        raise data.DataError(
            f"--data-a and --data-b differ in shape: {domain_a.name} holds {domain_a.images.shape[1:]} images, "
            f"{domain_b.name} {domain_b.images.shape[1:]} (IDX files are not resized)"
        )
    n = max(len(domain_a), len(domain_b))
    rng = np.random.default_rng(seed)
    a = domain_a.images[rng.permutation(n) % len(domain_a)]
    b = domain_b.images[rng.permutation(n) % len(domain_b)]
    return data.ImageDataset(np.concatenate([a, b], axis=-1), name=f"{domain_a.name} | {domain_b.name}")


def load_domains(config: Config) -> tuple[data.ImageDataset, data.ImageDataset]:
    """The two image folders the config names, or the MNIST domains."""
    if config.data_a is None:
        return mnist_domains(config.data.load())
    part = config.data
    return tuple(
        data.load(folder, image_size=part.image_size, channels=part.channels)
        for folder in (config.data_a, config.data_b)
    )


def split_domains(batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """A batch of the stacked dataset as the step's two domains, ``{'a': ..., 'b': ...}``."""
    a, b = jnp.split(batch["image"], 2, axis=-1)
    return {"a": a, "b": b}


def players(config: Config) -> tuple[cyclegan.ResnetGenerator, cyclegan.PatchDiscriminator]:
    """The architecture of both generators and of both discriminators."""
    m, dtype = config.model, precision.compute_dtype(config.model.compute_dtype)
    return (
        cyclegan.ResnetGenerator(config.data.channels, m.g_width, m.g_blocks, dtype=dtype),
        cyclegan.PatchDiscriminator(m.d_width, m.d_layers, dtype),
    )


def pick(domain: data.ImageDataset, key: jax.Array, n: int) -> np.ndarray:
    """``n`` images of ``domain`` in [-1, 1] chosen by ``key`` (no image twice while there are enough)."""
    rows = jax.random.choice(key, len(domain), (n,), replace=n > len(domain))
    return data.to_float(domain.images[np.asarray(rows)])


DIRECTIONS = (("a_to_b_", "ab"), ("b_to_a_", "ba"))
"""Each generator's direction and the prefix of its mode-collapse signals (``a_to_b_duplicate_share``, ...)."""

_translate = jax.jit(cyclegan.translate, static_argnames="direction")


def diversity_hooks(config: Config, domain_a: data.ImageDataset, domain_b: data.ImageDataset) -> list:
    """Per direction, :func:`ganjax.evaluation.diversity_hooks`: ``{prefix}duplicate_share`` and
    ``{prefix}pairwise_distance_ratio`` of the translations of up to ``diversity.eval_samples`` source images (the
    same, none twice, at every evaluation) against images of the target domain, translated in batches of the run's."""
    part, batch = config.diversity, config.schedule.batch_size
    hooks = []
    for (prefix, direction), source, target in zip(DIRECTIONS, (domain_a, domain_b), (domain_b, domain_a)):
        n = min(part.eval_samples, len(source))

        def translations(state, key, stats, source=source, direction=direction, n=n):
            images = pick(source, key, n)
            return np.concatenate([_translate(state, images[i : i + batch], direction) for i in range(0, n, batch)])

        hooks += evaluation.diversity_hooks(part.eval_every, n, target, translations, n, config.run.seed, prefix=prefix)
    return hooks


def monitor_config(config: Config):
    """The monitor's settings, its ``mode_collapse`` check reading the signals of both directions."""
    return dataclasses.replace(config.monitor.build(), collapse_prefixes=tuple(prefix for prefix, _ in DIRECTIONS))


@jax.jit
def round_trips(state: TrainState, a: jax.Array, b: jax.Array) -> jax.Array:
    """Rows a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b), G_ab(G_ba(b)), stacked ``(6 * N, H, W, C)``."""
    ab, ba = cyclegan.translate(state, a, "ab"), cyclegan.translate(state, b, "ba")
    return jnp.concatenate([a, ab, cyclegan.translate(state, ab, "ba"), b, ba, cyclegan.translate(state, ba, "ab")])


class CycleGANRecipe:
    """CycleGAN's recipe (:class:`ganjax.run.Recipe`): both generators and discriminators on the stacked
    domains; grids of round trips of fixed images of each domain; each direction's mode-collapse signals."""

    def phases(self, config: Config) -> tuple[Phase, ...]:
        return cyclegan.CycleGAN(config.objective.cycle_weight, config.objective.identity_weight).phases()

    def load(self, config: Config) -> tuple[data.ImageDataset, data.ImageDataset]:
        """The two domains (:func:`load_domains`)."""
        return load_domains(config)

    def training_data(self, config: Config, domains: tuple[data.ImageDataset, data.ImageDataset]) -> data.ImageDataset:
        """The two domains as one dataset (:func:`stacked`)."""
        return stacked(*domains, config.run.seed)

    def init(self, config: Config, key: jax.Array, dataset, bn_axis_name: str | None) -> TrainState:
        """Both generators and discriminators with the decaying Adam, and both pools (instance norm: no
        BatchNorm to synchronize)."""
        return cyclegan.create_state(
            key,
            *players(config),
            config.data.shape,
            config.optim.build(config.schedule.steps),
            config.pool.size,
            config.pool.share,
        )

    def step(self, config: Config, phases: tuple[Phase, ...], mesh: jax.sharding.Mesh):
        """The step with each device's batch split into its two domains (:func:`split_domains`)."""
        inner = make_step(phases)
        step = lambda state, batch, axis_name=None: inner(state, split_domains(batch), axis_name)
        return devices.data_parallel(step, mesh, batches_per_step(phases))

    def grid(self, config: Config, mesh: jax.sharding.Mesh, domains: tuple[data.ImageDataset, ...]) -> Grid:
        """:func:`round_trips` of ``num_samples`` images of A picked by the run's sample key (as :meth:`generator`
        draws them) and of B picked by its ``fold_in`` with 1."""
        key = run_keys(config.run.seed).sample
        a, b = (pick(domain, k, config.num_samples) for domain, k in zip(domains, (key, jax.random.fold_in(key, 1))))
        a, b = devices.replicate((a, b), mesh)
        return Grid(lambda state: round_trips(state, a, b), config.num_samples, round_trips)

    def generator(self, config: Config) -> Generator:
        """G_ab as the run samples it: it translates images of domain A, the run's being the first row of its
        grids, picked by the run's sample key; a sample is G_ab of each picked image."""
        domain_a = functools.cache(lambda: load_domains(config)[0])  # read at the first draw, once
        return Generator(
            players(config)[0],
            draw=lambda key, n: pick(domain_a(), key, n),
            key=run_keys(config.run.seed).sample,
            num=config.num_samples,
            nrow=config.num_samples,
            player="g_ab",
        )

    def evaluations(self, config: Config, domains: tuple[data.ImageDataset, data.ImageDataset]) -> list:
        return diversity_hooks(config, *domains)

    def monitor(self, config: Config):
        return monitor_config(config)

    def finish(self, config: Config, state: TrainState, grid: Grid, domains: tuple) -> dict:
        """``reconstructions.png``: the grid's first three rows, A -> B -> A of the last step."""
        picture = np.asarray(grid.draw(state))[: 3 * config.num_samples]
        if jax.process_index() == 0:
            images.save_grid(
                picture, pathlib.Path(config.run.workdir) / "reconstructions.png", nrow=config.num_samples, scale=2
            )
        return {}


RECIPE = CycleGANRecipe()


def main(argv=None):
    return run_main(RECIPE, Config, argv)


if __name__ == "__main__":
    main()
