"""A GAN on the 2D ring of 8 or grid of 25 Gaussians, the mode-collapse benchmark of VEEGAN and PacGAN.

Run::

  python -m experiments.gaussian_mixture --mixture ring --seed 0 --workdir runs/gm/ring_ns_0
  python -m experiments.gaussian_mixture table runs/gm   # markdown table of every run under runs/gm

Every ``eval_every`` steps it logs the mean train metrics, the mode metrics of
2,500 samples (modes captured, high-quality share, mode KL) and the monitor's
flags to ``metrics.jsonl`` and TensorBoard, and shows them beside the progress
bar; every ``plot_every`` steps it draws the samples over the modes
(``scatter/step_XXXXXX.png``); at the end ``training.png`` plots the curves.
Steps between evaluations run in one ``lax.scan``, each drawing its data batch
from ``fold_in(data_key, step)``. A NaN or Inf metric stops the run with
:class:`ganjax.evaluation.monitor.NonFiniteLossError`; a flag named in ``stop_on`` ends it early.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
from collections.abc import Sequence

import jax
import numpy as np
from jax import lax
from tqdm import tqdm

from experiments.common import Logger, parse_config, step_config
from ganjax import data, optim, plots, train
from ganjax.evaluation import metrics
from ganjax.evaluation import monitor
from ganjax.models import mlp


@dataclasses.dataclass
class MixtureConfig:
    """A GAN on a 2D Gaussian mixture."""

    mixture: str = "ring"  # a key of ganjax.data.MIXTURES: ring, grid
    workdir: str = "runs/gaussian_mixture"
    seed: int = 0
    steps: int = 10000
    batch_size: int = 256
    latent_dim: int = 2
    loss: str = "non_saturating"  # the StepConfig fields of the same names: ganjax.losses.LOSSES, ...
    d_labels: str = "none"  # ... ganjax.labels.LABELS (one_sided, noisy) ...
    penalty: str = "none"  # ... and ganjax.penalties.PENALTIES (r1, wgan_gp, ...)
    penalty_weight: float = 0.0
    g_width: int = 128
    g_depth: int = 3
    d_width: int = 128
    d_depth: int = 3
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    b1: float = 0.5
    b2: float = 0.999
    g_optimizer: str = "adam"  # adam, sgd, rmsprop (ganjax.optim.player_optimizer)
    d_optimizer: str = "adam"
    optimistic: bool = False  # optimistic Adam / gradient descent (Daskalakis et al. 2018)
    eval_every: int = 500
    eval_samples: int = 2500
    plot_every: int = 2500
    stop_on: str = ""  # comma-separated monitor flags that stop the run, e.g. "grad_explosion"


def create_state(config: MixtureConfig) -> train.GANState:
    """MLP G and D, each with its own optimizer from :func:`ganjax.optim.gan_optimizers`."""
    generator = mlp.Generator(config.latent_dim, 2, (config.g_width,) * config.g_depth)
    discriminator = mlp.Discriminator(2, (config.d_width,) * config.d_depth)
    tx = optim.gan_optimizers(config.lr_g, config.lr_d, g_optimizer=config.g_optimizer,
                              d_optimizer=config.d_optimizer, b1=config.b1, b2=config.b2, optimistic=config.optimistic)
    return train.create_state(jax.random.key(config.seed), generator, discriminator, (2,), step_config(config),
                              g_tx=tx.g, d_tx=tx.d)


def make_train_chunk(mixture: data.Mixture2D, config: MixtureConfig):
    """A jitted ``(state, data_key) -> (state, metrics over eval_every steps)``."""
    step = step_config(config)

    def body(state, data_key):
        batch = {"image": mixture.sample(jax.random.fold_in(data_key, state.step), config.batch_size)}
        return train.train_step(state, batch, step)

    def chunk(state, data_key):
        return lax.scan(lambda s, _: body(s, data_key), state, length=config.eval_every)

    return jax.jit(chunk, donate_argnums=0)


def train_and_evaluate(config: MixtureConfig) -> dict:
    """Trains, evaluates and plots; returns the last evaluation record."""
    if config.steps < config.eval_every or config.steps % config.eval_every:
        raise ValueError(f"steps ({config.steps}) must be a positive multiple of eval_every ({config.eval_every})")
    workdir = pathlib.Path(config.workdir)
    mixture = data.MIXTURES[config.mixture]()
    gate = monitor.Monitor(monitor.MonitorConfig(window=config.eval_every,
                                                 stop_on=tuple(s for s in config.stop_on.split(",") if s)))
    data_key, eval_key = jax.random.split(jax.random.key(config.seed + 1_000_003))
    reference = np.asarray(mixture.sample(jax.random.fold_in(eval_key, 0), config.eval_samples))  # z: steps > 0
    sample = jax.jit(lambda state, key: train.generate(state, jax.random.normal(key, (config.eval_samples,
                                                                                       config.latent_dim))))
    chunk = make_train_chunk(mixture, config)
    state = create_state(config)
    logger = Logger(workdir, 0)
    record: dict = {}
    bar = tqdm(total=config.steps, dynamic_ncols=True, desc=config.mixture)
    try:
        for done in range(config.eval_every, config.steps + 1, config.eval_every):
            state, history = chunk(state, data_key)
            history = jax.device_get(history)
            monitor.check_finite(history, done)
            points = np.asarray(sample(state, jax.random.fold_in(eval_key, done)))
            evaluation = {**metrics.mixture_metrics(points, mixture.means, mixture.std),
                          **metrics.sample_diversity(points[:1000], reference[:1000])}
            flags = gate.check({**history, **evaluation})
            record = {**{k: float(np.mean(v)) for k, v in history.items()}, **evaluation,
                      "flags": "; ".join(f.message for f in flags)}
            logger.write(done, record)
            bar.set_postfix(modes=evaluation["modes"], hq=f"{evaluation['high_quality']:.2f}",
                            flags=",".join(f.name for f in flags) or "-", refresh=False)
            bar.update(config.eval_every)
            if done % config.plot_every == 0 or done == config.steps:
                plots.scatter_mixture(points, mixture.means, workdir / "scatter" / f"step_{done:06d}.png",
                                      f"{config.mixture} step {done}: {evaluation['modes']} modes, "
                                      f"{evaluation['high_quality']:.0%} high quality")
            if gate.should_stop(flags):
                break
    finally:
        bar.close()
        logger.close()
    plots.plot_training(logger.path, workdir / "training.png")
    return {"step": done, **record}


def table(root: str | pathlib.Path) -> str:
    """A markdown table of the last record of every finished run ``{root}/{mixture}_{variant}_{seed}``.

    Each cell is the mean ± std over seeds; a run is finished once it has drawn ``training.png``.
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(pathlib.Path(root).glob("*/training.png")):
        mixture, *variant, _ = path.parent.name.split("_")
        groups.setdefault((mixture, "_".join(variant)), []).append(plots.read_jsonl(path.parent / "metrics.jsonl")[-1])
    lines = ["| mixture | variant | seeds | modes | high-quality share | mode KL |", "|---|---|---|---|---|---|"]
    for (mixture, variant), records in sorted(groups.items()):
        stat = lambda k, f: f"{np.mean([r[k] for r in records]):{f}} ± {np.std([r[k] for r in records]):{f}}"
        lines.append(f"| {mixture} | {variant} | {len(records)} | {stat('modes', '.1f')} "
                     f"| {stat('high_quality', '.3f')} | {stat('mode_kl', '.3f')} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["table"]:
        print(table(argv[1]))
        return
    config = parse_config(MixtureConfig, argv)
    print(json.dumps(train_and_evaluate(config)))


if __name__ == "__main__":
    main()
