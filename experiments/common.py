"""What every experiment shares: config parsing, data, logging, the train loop, checkpoints and samples.

An experiment is a dataclass config with defaults (a subclass of
:class:`GANConfig`), a ``create_state(config, image_shape)``, a step function
and a short ``main``. :func:`fit` runs the loop: it prefetches batches, keeps
metrics on device between logging steps (no host sync in the hot loop), logs
to JSONL and TensorBoard, shows a progress bar, writes sample grids and
checkpoints, and resumes from the last checkpoint with ``--resume``.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import pathlib
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
import optax
from tqdm import tqdm

from ganjax import data, images, optim, penalties, plots
from ganjax.evaluation import monitor
from ganjax.training import devices as parallel
from ganjax.checkpoint import Checkpointer
from ganjax.train import GANState, StepConfig, create_state


@dataclasses.dataclass
class GANConfig:
    """Fields common to the image GAN experiments; experiments subclass it and change defaults.

    Every field of :class:`ganjax.train.StepConfig` that has the same name here
    is passed to the train step (see :func:`step_config`).
    """

    data_dir: str | None = None  # folder of IDX files or images; None: TFDS `tfds_name`
    tfds_name: str = "mnist"
    split: str = "train"
    image_size: int = 28
    channels: int = 1
    workdir: str = "runs/experiment"
    seed: int = 0
    steps: int = 3000
    batch_size: int = 64
    # The train step's tricks (ganjax.train.StepConfig; docs/tricks.md says what each does).
    latent_dim: int = 100
    latent: str = "gaussian"
    loss: str = "non_saturating"
    d_labels: str = "none"
    label_flip_prob: float = 0.0
    penalty: str = "none"
    penalty_weight: float = 0.0
    instance_noise_std: float = 0.0
    instance_noise_decay_steps: int = 0
    n_critic: int = 1
    ema_decay: float = 0.0
    replay_capacity: int = 0
    replay_share: float = 0.0
    # The optimizers (ganjax.optim.gan_optimizers).
    g_optimizer: str = "adam"
    d_optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999
    lr_decay: bool = False  # constant for the first half of `steps`, then linearly to 0 (ganjax.optim.linear_decay)
    grad_clip: float | None = None
    grad_noise: float | None = None
    optimistic: bool = False
    weight_clip: float | None = None
    log_every: int = 50
    sample_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False
    eval_every: int = 1000
    eval_samples: int = 2000
    classifier_dir: str = "runs/mnist_classifier"  # the MNIST feature network (trained there if missing)
    monitor_window: int = 200
    max_grad_norm: float = 100.0  # the seeds' "gradient norms over 100" (as a median over recent steps)
    stop_on: str = ""  # flags that stop training, e.g. "d_loss_zero,grad_explosion"
    # Devices (ganjax.training.devices): batch_size is the global batch, split evenly over the devices.
    num_devices: int = 0  # devices per process; 0: all of them
    cross_replica_bn: str = "auto"  # BatchNorm over all devices: 'on', 'off', 'auto' (on below 32 per device)
    # Several hosts: set any of these on every process; JAX detects the others where it can (TPU, SLURM).
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None


def parse_config(cls: type, argv: Sequence[str] | None = None):
    """Builds ``cls`` from its defaults overridden by ``--field value`` (``--flag/--no-flag`` for booleans).

    An unknown field or a value of the wrong type stops with argparse's message naming it.
    """
    parser = argparse.ArgumentParser(description=(cls.__doc__ or "").split("\n")[0])
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = _scalar_type(hints[field.name])
        flag = f"--{field.name.replace('_', '-')}"
        if kind is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=field.default)
        else:
            parser.add_argument(flag, dest=field.name, type=kind, default=field.default,
                                help=f"{kind.__name__} (default: {field.default})")
    return cls(**vars(parser.parse_args(argv)))


def _scalar_type(hint) -> type:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint


def step_config(config: GANConfig, **overrides) -> StepConfig:
    """The :class:`StepConfig` made of ``config``'s fields of the same names (and ``overrides``)."""
    names = {f.name for f in dataclasses.fields(StepConfig)}
    values = {k: v for k, v in dataclasses.asdict(config).items() if k in names}
    return StepConfig(**{**values, **overrides})


def optimizers(config: GANConfig, key: jax.Array) -> optim.GANOptimizers:
    """G's and D's optax chains from the config (D's ends in weight clipping when ``weight_clip`` is set).

    With ``lr_decay`` both learning rates follow :func:`ganjax.optim.linear_decay` over ``steps``.
    """
    lr_g, lr_d = config.lr_g, config.lr_d
    if config.lr_decay:
        if config.steps <= 0:
            raise ValueError(f"lr_decay needs a positive number of steps, got steps={config.steps}")
        # D takes n_critic updates per step, each counted by its schedule.
        lr_g, lr_d = optim.linear_decay(lr_g, config.steps), optim.linear_decay(lr_d, config.steps * config.n_critic)
    tx = optim.gan_optimizers(lr_g, lr_d, g_optimizer=config.g_optimizer,
                              d_optimizer=config.d_optimizer, b1=config.b1, b2=config.b2, grad_clip=config.grad_clip,
                              grad_noise=config.grad_noise, optimistic=config.optimistic, key=key)
    if config.weight_clip is not None:
        tx = tx._replace(d=optax.chain(tx.d, penalties.weight_clipping(config.weight_clip)))
    return tx


def start(config: GANConfig) -> jax.sharding.Mesh:
    """Joins the other processes if the config names any (before any other JAX call); returns the device mesh.

    Raises:
      ValueError: if the global batch does not divide evenly over the devices.
    """
    if (config.coordinator_address, config.num_processes, config.process_id) != (None, None, None):
        parallel.initialize_distributed(config.coordinator_address, config.num_processes, config.process_id)
    mesh = parallel.make_mesh(config.num_devices)
    parallel.check_batch_size(config.batch_size, mesh)
    return mesh


def gan_state(config: GANConfig, key: jax.Array, generator, discriminator,
              example_shape: tuple[int, ...] | None = None) -> GANState:
    """The train state of ``generator`` and ``discriminator`` with the config's optimizers and step config.

    ``example_shape`` is one real example's shape (default: the config's square image).
    """
    init_key, noise_key = jax.random.split(key)
    tx = optimizers(config, noise_key)
    shape = example_shape or (config.image_size, config.image_size, config.channels)
    return create_state(init_key, generator, discriminator, shape, step_config(config), g_tx=tx.g, d_tx=tx.d)


def load_data(config: GANConfig) -> data.ImageDataset:
    """The dataset the config names: ``data_dir`` if set, else TFDS ``tfds_name``; checked against the config."""
    source = config.data_dir or f"tfds:{config.tfds_name}"
    dataset = data.load(source, image_size=config.image_size, channels=config.channels, split=config.split)
    shape = dataset.images.shape[1:]
    if shape != (config.image_size, config.image_size, config.channels):
        raise data.DataError(f"{dataset.name}: images are {shape}, but the config asks for "
                             f"image_size={config.image_size}, channels={config.channels}")
    return dataset


class Logger:
    """Metrics to ``metrics.jsonl`` and TensorBoard (``tb/``) under the workdir; only process 0 writes."""

    def __init__(self, workdir: pathlib.Path, start_step: int):
        self.active = jax.process_index() == 0
        self.path = workdir / "metrics.jsonl"
        if not self.active:
            return
        from tensorboardX import SummaryWriter

        workdir.mkdir(parents=True, exist_ok=True)
        self._drop_after(start_step)
        self._tb = SummaryWriter(str(workdir / "tb"))

    def _drop_after(self, step: int) -> None:
        """On resume, forget records logged after the checkpoint we resume from."""
        if self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if json.loads(line)["step"] <= step]
            self.path.write_text("".join(line + "\n" for line in kept))

    def write(self, step: int, values: dict[str, Any]) -> None:
        if not self.active:
            return
        record = {"step": step, **{k: _jsonable(v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        for name, value in record.items():
            if isinstance(value, (int, float)) and name != "step":
                self._tb.add_scalar(name, value, step)
            elif isinstance(value, str):
                self._tb.add_text(name, value, step)

    def close(self) -> None:
        if self.active:
            self._tb.close()


def _jsonable(value):
    value = np.asarray(value)
    return value.item() if value.ndim == 0 else value.tolist()


def fit(config: GANConfig, state: GANState, step_fn: Callable, dataset: data.ImageDataset,
        on_sample: Callable[[GANState, int], None],
        evaluate: Callable[[GANState, int], dict[str, float]] | None = None) -> GANState:
    """Trains ``state`` with ``step_fn(state, batch) -> (state, metrics)`` until ``config.steps``.

    Metrics stay on device between logging steps. Every ``log_every`` steps they
    are fetched, checked for NaN/Inf (which stops the run; the last checkpoint
    on disk is the last good state), logged, and run through the failure
    monitor, whose flags are shown beside the progress bar and logged; a flag
    named in ``stop_on`` stops the run after a final checkpoint. Every
    ``eval_every`` steps ``evaluate(state, step)`` adds its metrics (and feeds the
    mode-collapse check); every ``sample_every`` steps ``on_sample(state, step)``
    writes images. Resumes from ``{workdir}/checkpoints`` when ``config.resume``.
    """
    workdir = pathlib.Path(config.workdir)
    mesh = parallel.make_mesh(config.num_devices)
    state = parallel.replicate(state, mesh)
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=config.keep_checkpoints)
    if config.resume and checkpointer.latest_step() is not None:
        state, _ = checkpointer.restore(state)
    start = int(state.step)
    logger = Logger(workdir, start)
    watch = monitor.Monitor(monitor_config(config))
    history: collections.deque = collections.deque(maxlen=config.monitor_window)
    evaluation: dict[str, float] = {}
    # Each train step takes n_critic real batches, one per D update; each process puts its rows on its devices.
    batches = data.Batcher(dataset, config.batch_size * config.n_critic, config.seed).iterate(
        start, put=lambda batch: parallel.shard_batch(batch, mesh))
    pending: list[dict] = []
    try:
        with tqdm(initial=start, total=config.steps, disable=jax.process_index() != 0, dynamic_ncols=True) as bar:
            for done in range(start + 1, config.steps + 1):
                state, metrics = step_fn(state, next(batches))
                pending.append(metrics)
                last = done == config.steps
                stop = []
                if evaluate is not None and (done % config.eval_every == 0 or last):
                    evaluation = evaluate(state, done)
                if done % config.log_every == 0 or done % config.checkpoint_every == 0 or last:
                    window = jax.device_get(pending)
                    pending = []
                    monitor.check_finite(monitor.stack_history(window), done)
                    history.extend(window)
                    record = {name: float(np.mean([m[name] for m in window])) for name in window[0]}
                    record.update(evaluation)
                    flags = watch.check({**monitor.stack_history(list(history)),
                                         **{k: np.array([v]) for k, v in evaluation.items()}})
                    evaluation = {}
                    stop = watch.should_stop(flags)
                    if flags:
                        record["flags"] = "; ".join(flag.message for flag in flags)
                    logger.write(done, record)
                    postfix = {k: f"{v:.3g}" for k, v in record.items() if k in PROGRESS_METRICS}
                    bar.set_postfix({**postfix, "flags": ",".join(f.name for f in flags) or "-"}, refresh=False)
                if done % config.sample_every == 0 or last or stop:
                    on_sample(state, done)
                if done % config.checkpoint_every == 0 or last or stop:
                    checkpointer.save(done, state, dataclasses.asdict(config))
                bar.update(1)
                if stop:
                    logger.write(done, {"stopped": "; ".join(flag.message for flag in stop)})
                    break
    finally:
        checkpointer.close()
        logger.close()
    if jax.process_index() == 0 and logger.path.exists():
        plots.plot_training(logger.path, workdir / "training.png")
    return state


PROGRESS_METRICS = ("d_loss", "g_loss", "d_real", "d_fake", "d_real_score", "d_fake_score", "fid")


def monitor_config(config: GANConfig) -> monitor.MonitorConfig:
    """The failure monitor's settings from the config (``stop_on`` is a comma-separated list of flag names)."""
    # A Wasserstein critic's loss is unbounded below: "near 0" means nothing there.
    floor = -np.inf if config.loss == "wasserstein" else monitor.MonitorConfig.d_loss_floor
    return monitor.MonitorConfig(window=config.monitor_window, max_grad_norm=config.max_grad_norm,
                                 d_loss_floor=floor, stop_on=tuple(name for name in config.stop_on.split(",") if name))


def sample_writer(config: GANConfig, sample_fn: Callable[[GANState], Any], nrow: int = 10) -> Callable:
    """An ``on_sample`` callback writing ``{workdir}/samples/step_XXXXXX.png`` from ``sample_fn(state)``."""
    folder = pathlib.Path(config.workdir) / "samples"

    def write(state: GANState, step: int) -> None:
        grid = np.asarray(sample_fn(state))  # every process takes part in the computation; process 0 writes
        if jax.process_index() == 0:
            images.save_grid(grid, folder / f"step_{step:06d}.png", nrow=nrow, scale=2)

    return write


def write_animation(config: GANConfig) -> pathlib.Path | None:
    """``{workdir}/samples.gif`` from every sample grid written so far (process 0 only)."""
    frames = sorted((pathlib.Path(config.workdir) / "samples").glob("step_*.png"))
    if jax.process_index() != 0 or not frames:
        return None
    return images.save_gif(frames, pathlib.Path(config.workdir) / "samples.gif")
