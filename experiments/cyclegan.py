"""CycleGAN between two unpaired image domains: ``python -m experiments.cyclegan [--data-a DIR --data-b DIR]``.

Zhu et al. 2017 (:mod:`ganjax.cyclegan`, :mod:`ganjax.models.cyclegan`): two
ResNet generators, two PatchGAN discriminators, least-squares losses,
cycle-consistency (10) and identity (5) L1 losses, a 50-image pool of past
fakes per D, Adam(2e-4, b1 0.5) constant for the first half of the run and
then decaying linearly to 0. ``--data-a``/``--data-b`` name two image folders;
without them the domains are made from MNIST (``--data-dir``, or TFDS): A is
the digits of the first half, B the colour-inverted, thickened digits of the
second half, so no image of A has its counterpart in B.

The two domains travel as one dataset whose examples stack an image of A and
one of B along channels (a fixed, random pairing: the losses never compare
them); the shorter domain is cycled. Writes under ``--workdir``:
``samples/step_*.png`` (rows: a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b), G_ab(G_ba(b))),
``reconstructions.png`` (A -> B -> A of the last step), ``samples.gif``,
``training.png``, ``metrics.jsonl``, ``tb/`` and ``checkpoints/``.
"""

from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from experiments import common
from ganjax import cyclegan, data, images, optim
from ganjax.training import devices as parallel
from ganjax.models import cyclegan as models


@dataclasses.dataclass
class Config(common.GANConfig):
    """CycleGAN between two unpaired image domains (default: MNIST digits and inverted, thickened digits)."""

    workdir: str = "runs/cyclegan"
    data_a: str | None = None  # image folder of domain A; None: MNIST digits
    data_b: str | None = None  # image folder of domain B; None: inverted, thickened MNIST digits
    steps: int = 1000
    batch_size: int = 8
    lr: float = 2e-4
    b1: float = 0.5
    cycle_weight: float = 10.0
    identity_weight: float = 5.0
    pool_size: int = 50
    pool_share: float = 0.5
    g_width: int = 8
    g_blocks: int = 3
    d_width: int = 16
    d_layers: int = 3
    num_samples: int = 8
    log_every: int = 25
    sample_every: int = 250


def thicken_and_invert(digits: np.ndarray) -> np.ndarray:
    """uint8 NHWC images -> their 3x3 max-filtered (thickened) versions, colour-inverted (255 - x)."""
    padded = np.pad(digits, ((0, 0), (1, 1), (1, 1), (0, 0)))
    h, w = digits.shape[1:3]
    thick = np.max([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], axis=0)
    return 255 - thick


def mnist_domains(digits: data.ImageDataset) -> tuple[data.ImageDataset, data.ImageDataset]:
    """A: the first half of ``digits``; B: the second half, thickened and inverted (unpaired by construction)."""
    half = len(digits) // 2
    return (data.ImageDataset(digits.images[:half], name=f"{digits.name} digits"),
            data.ImageDataset(thicken_and_invert(digits.images[half:2 * half]), name=f"{digits.name} inverted"))


def stacked(domain_a: data.ImageDataset, domain_b: data.ImageDataset, seed: int) -> data.ImageDataset:
    """One dataset whose example ``i`` is an image of A and a randomly paired image of B along channels."""
    if domain_a.images.shape[1:] != domain_b.images.shape[1:]:
        raise data.DataError(f"domains differ in shape: {domain_a.images.shape[1:]} vs {domain_b.images.shape[1:]}")
    n = max(len(domain_a), len(domain_b))
    rng = np.random.default_rng(seed)
    a = domain_a.images[rng.permutation(n) % len(domain_a)]
    b = domain_b.images[rng.permutation(n) % len(domain_b)]
    return data.ImageDataset(np.concatenate([a, b], axis=-1), name=f"{domain_a.name} | {domain_b.name}")


def load_domains(config: Config) -> tuple[data.ImageDataset, data.ImageDataset]:
    """The two image folders the config names, or the MNIST domains."""
    if (config.data_a is None) != (config.data_b is None):
        raise ValueError("cyclegan: give both --data-a and --data-b, or neither (MNIST domains)")
    if config.data_a is None:
        return mnist_domains(common.load_data(config))
    return tuple(data.load(folder, image_size=config.image_size, channels=config.channels)
                 for folder in (config.data_a, config.data_b))


def step_config(config: Config) -> cyclegan.StepConfig:
    return cyclegan.StepConfig(config.cycle_weight, config.identity_weight, config.pool_share)


def create_state(config: Config, key: jax.Array) -> cyclegan.CycleState:
    """Both generators and discriminators with Adam and the linear decay over the second half."""
    tx = optax.adam(optim.linear_decay(config.lr, config.steps), b1=config.b1)
    generator = models.ResnetGenerator(config.channels, config.g_width, config.g_blocks)
    discriminator = models.PatchDiscriminator(config.d_width, config.d_layers)
    return cyclegan.create_state(key, generator, discriminator,
                                 (config.image_size, config.image_size, config.channels), tx, config.pool_size)


def train_step(state: cyclegan.CycleState, batch: dict[str, jax.Array], config: cyclegan.StepConfig):
    """:func:`ganjax.cyclegan.train_step` on a batch of the stacked dataset, split back into its two domains."""
    stack = batch["image"]
    channels = stack.shape[-1] // 2
    return cyclegan.train_step(state, {"a": stack[..., :channels], "b": stack[..., channels:]}, config)


@jax.jit
def round_trips(state: cyclegan.CycleState, a: jax.Array, b: jax.Array) -> jax.Array:
    """Rows a, G_ab(a), G_ba(G_ab(a)), b, G_ba(b), G_ab(G_ba(b)), stacked ``(6 * N, H, W, C)``."""
    ab, ba = cyclegan.translate(state, a, "ab"), cyclegan.translate(state, b, "ba")
    return jnp.concatenate([a, ab, cyclegan.translate(state, ab, "ba"), b, ba, cyclegan.translate(state, ba, "ab")])


def train_and_evaluate(config: Config) -> cyclegan.CycleState:
    """Trains CycleGAN; returns the final state."""
    mesh = common.start(config)
    domain_a, domain_b = load_domains(config)
    dataset = stacked(domain_a, domain_b, config.seed)
    state = create_state(config, jax.random.key(config.seed))
    step = parallel.data_parallel(train_step, mesh, step_config(config))
    fixed = data.to_float(dataset.images[-config.num_samples:])
    a, b = (parallel.replicate(x, mesh) for x in np.split(fixed, 2, axis=-1))
    state = common.fit(config, state, step, dataset,
                       common.sample_writer(config, lambda s: round_trips(s, a, b), nrow=config.num_samples))
    common.write_animation(config)
    grid = np.asarray(round_trips(state, a, b))[:3 * config.num_samples]
    if jax.process_index() == 0:
        images.save_grid(grid, pathlib.Path(config.workdir) / "reconstructions.png", nrow=config.num_samples, scale=2)
    return state


def main(argv=None):
    train_and_evaluate(common.parse_config(Config, argv))


if __name__ == "__main__":
    main()
