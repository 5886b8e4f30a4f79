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
import dataclasses
import json
import pathlib
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from ganjax import data, images
from ganjax.checkpoint import Checkpointer
from ganjax.train import GANState, StepConfig


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
    latent_dim: int = 100
    loss: str = "non_saturating"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    b1: float = 0.5
    b2: float = 0.999
    log_every: int = 50
    sample_every: int = 250
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    resume: bool = False


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


class NonFiniteLossError(FloatingPointError):
    """A loss or gradient norm became NaN or Inf; the last good checkpoint is kept."""


def _window_means(window: list[dict], first_step: int) -> dict[str, float]:
    """Means over the fetched window; raises :class:`NonFiniteLossError` naming the first bad value."""
    for offset, metrics in enumerate(window):
        for name, value in metrics.items():
            if not np.all(np.isfinite(value)):
                raise NonFiniteLossError(f"step {first_step + offset + 1}: {name} = {value}; training stopped, "
                                         "the last checkpoint holds the last good state")
    return {name: float(np.mean([m[name] for m in window])) for name in window[0]}


def fit(config: GANConfig, state: GANState, step_fn: Callable, dataset: data.ImageDataset,
        on_sample: Callable[[GANState, int], None]) -> GANState:
    """Trains ``state`` with ``step_fn(state, batch) -> (state, metrics)`` until ``config.steps``.

    Resumes from the latest checkpoint in ``{workdir}/checkpoints`` when
    ``config.resume`` is set. Calls ``on_sample(state, step)`` every
    ``sample_every`` steps and at the end.
    """
    workdir = pathlib.Path(config.workdir)
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=config.keep_checkpoints)
    if config.resume and checkpointer.latest_step() is not None:
        state, _ = checkpointer.restore(state)
    start = int(state.step)
    logger = Logger(workdir, start)
    batches = data.Batcher(dataset, config.batch_size, config.seed).iterate(start, put=jax.device_put)
    pending: list[dict] = []
    try:
        with tqdm(initial=start, total=config.steps, disable=jax.process_index() != 0, dynamic_ncols=True) as bar:
            for done in range(start + 1, config.steps + 1):
                state, metrics = step_fn(state, next(batches))
                pending.append(metrics)
                last = done == config.steps
                if done % config.log_every == 0 or done % config.checkpoint_every == 0 or last:
                    means = _window_means(jax.device_get(pending), done - len(pending))
                    pending = []
                    logger.write(done, means)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()}, refresh=False)
                if done % config.sample_every == 0 or last:
                    on_sample(state, done)
                if done % config.checkpoint_every == 0 or last:
                    checkpointer.save(done, state, dataclasses.asdict(config))
                bar.update(1)
    finally:
        checkpointer.close()
        logger.close()
    return state


def sample_writer(config: GANConfig, sample_fn: Callable[[GANState], Any], nrow: int = 10) -> Callable:
    """An ``on_sample`` callback writing ``{workdir}/samples/step_XXXXXX.png`` from ``sample_fn(state)``."""
    folder = pathlib.Path(config.workdir) / "samples"

    def write(state: GANState, step: int) -> None:
        if jax.process_index() == 0:
            images.save_grid(np.asarray(sample_fn(state)), folder / f"step_{step:06d}.png", nrow=nrow, scale=2)

    return write


def write_animation(config: GANConfig) -> pathlib.Path | None:
    """``{workdir}/samples.gif`` from every sample grid written so far (process 0 only)."""
    frames = sorted((pathlib.Path(config.workdir) / "samples").glob("step_*.png"))
    if jax.process_index() != 0 or not frames:
        return None
    return images.save_gif(frames, pathlib.Path(config.workdir) / "samples.gif")
