"""Samples from a saved run: ``python -m ganjax.sample RUN_DIR --out grid.png [--num N] [--seed S] ...``.

A run's folder holds ``config.json`` (its resolved config, with where its
recipe and config class are imported from: :func:`ganjax.run.importable`) and
orbax checkpoints under ``checkpoints/STEP/state``. :func:`load_run` imports
the two, rebuilds the typed config (:func:`ganjax.run.config_from_dict`), asks
the recipe's ``generator(config)`` for the :class:`ganjax.run.Generator` (G,
how to call it, where its params live in the state, how the run draws its
sample grid's inputs) and restores G's params, BatchNorm statistics and moving
average from a checkpoint. A user's own recipe samples as the library's do. :meth:`Run.sample` then
gives images in [-1, 1], NHWC.

Without ``seed``, G's inputs are the run's own: the same draw from the same
key as its ``samples/step_*.png``, so the grid of a checkpoint's step is that
step's sample grid. Like the run's grids, it comes from G's moving average
when the run kept one (``ema=False``, ``--no-ema``: G's own weights); the
average's BatchNorm statistics are recomputed for it from the same key as the
run's (:func:`ganjax.training.standing.standing_stats`).
A conditional G is sampled one row per class; an image-to-image G (CycleGAN)
translates images of its input domain instead of drawing z.

Example::

    run = load_run("runs/dcgan_mnist")
    images = run.sample(64, seed=1)  # (64, 28, 28, 1)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from ganjax import checkpoint, images
from ganjax import latent as latent_paths
from ganjax.run.config_json import config_from_dict
from ganjax.run.folder import CHECKPOINTS, CONFIG_FILE
from ganjax.run.generator import Generator
from ganjax.run.recipe import CONFIG_CLASS_KEY, RECIPE_KEY, load_importable
from ganjax.training.standing import standing_stats

PyTree = Any
INTERPOLATION_COLUMNS, INTERPOLATION_ANCHORS = 10, 3
EXIT_BAD_INPUT = 2


class SampleError(ValueError):
    """The run cannot be sampled as asked (no config or checkpoint, an option its G does not have)."""


@functools.partial(jax.jit, static_argnames=("generator", "step"))
def _apply(generator: Generator, variables: PyTree, inputs: tuple, key: jax.Array, step: int) -> jax.Array:
    """``generator(variables, inputs, key, step)``, compiled once per generator and step."""
    return generator(variables, inputs, key, step)


@functools.partial(jax.jit, static_argnames=("generator", "batch_size"))
def _standing_stats(generator: Generator, variables: PyTree, key: jax.Array, batch_size: int) -> PyTree:
    """The BatchNorm statistics of ``variables['params']`` over batches of the run's inputs, compiled once per G."""
    return standing_stats(generator.module.apply, variables, key, generator.draw, batch_size, generator.num_classes)


# ----------------------------------------------------------------------------- the config


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A saved run's G at one checkpoint.

    Attributes:
      path: the run's folder.
      experiment: the recipe's name (``module:qualname``).
      config: the run's typed config.
      generator: what the recipe says of its G.
      step: the checkpoint's step.
      variables: G's ``params`` and ``batch_stats``.
      ema_params: the moving average of G's params, or None when the run kept none.
    """

    path: pathlib.Path
    experiment: str
    config: Any
    generator: Generator
    step: int
    variables: dict[str, PyTree]
    ema_params: PyTree | None

    def sample(
        self,
        num: int | None = None,
        seed: int | None = None,
        classes: Sequence[int] | None = None,
        ema: bool | None = None,
    ) -> np.ndarray:
        """G's images in [-1, 1], NHWC: ``num`` of them (per class for a conditional G), one row per class.

        Args:
          num: images (per class when conditional); None: the run's grid (per class: its row length).
          seed: draws fresh inputs from ``jax.random.key(seed)``; None: the run's own sample grid's inputs.
          classes: the classes of a conditional G's rows; None: every class (with ``num`` None: the run's layout).
          ema: use the moving average of G's params; None: when the run kept one, as its grids did.

        Raises:
          SampleError: ``classes`` for an unconditional G or naming unknown classes, ``ema`` when the run kept
            no average, or ``num`` below 1.
        """
        g = self.generator
        key = self._key(seed)
        variables = self._variables(ema, key)
        if num is None and classes is None:
            inputs = g.grid(key)
        elif classes is None and g.draws_classes:
            inputs = g.inputs(key, self._count(num, g.nrow))
        else:
            labels = self._labels(classes, self._count(num, g.nrow))
            inputs = g.inputs(key, num) if labels is None else (g.draw(key, len(labels)), labels)
        return self._generate(variables, inputs, key)

    def columns(self, num: int | None = None, classes: Sequence[int] | None = None) -> int:
        """Images per row of :meth:`sample`'s grid for the same ``num`` and ``classes``."""
        g = self.generator
        if num is None and classes is None:
            return g.nrow
        per_class = g.num_classes and not (g.draws_classes and classes is None)
        return self._count(num, g.nrow) if per_class else min(g.nrow, num)

    def interpolate(
        self, rows: int = 10, seed: int | None = None, classes: Sequence[int] | None = None, ema: bool | None = None
    ) -> np.ndarray:
        """``rows`` rows of :data:`INTERPOLATION_COLUMNS` images along great-circle paths through random codes.

        Each row walks through :data:`INTERPOLATION_ANCHORS` codes drawn from ``seed`` (None: the run's sample
        key); a conditional G's rows take ``classes`` in turn (None: every class).

        Raises:
          SampleError: for a G that takes no z, and as :meth:`sample` does.
        """
        g = self.generator
        if g.latent is None:
            raise SampleError(f"{self.experiment}'s G translates images; it has no z to interpolate")
        key = self._key(seed)
        variables = self._variables(ema, key)
        rows, labels = self._count(rows, 1), self._labels(classes, 1)
        paths = latent_paths.interpolation_grid(
            key, rows, INTERPOLATION_COLUMNS, g.latent.dim, INTERPOLATION_ANCHORS, sampler=g.latent.distribution
        ).reshape(-1, g.latent.dim)
        if labels is None:
            return self._generate(variables, (paths,), key)
        return self._generate(variables, (paths, np.repeat(np.resize(labels, rows), INTERPOLATION_COLUMNS)), key)

    def _key(self, seed: int | None) -> jax.Array:
        return self.generator.key if seed is None else jax.random.key(seed)

    @staticmethod
    def _count(num: int | None, default: int) -> int:
        if num is not None and num < 1:
            raise SampleError(f"the number of images must be at least 1, got {num}")
        return default if num is None else num

    def _labels(self, classes: Sequence[int] | None, per_class: int) -> np.ndarray | None:
        """``per_class`` labels of each of ``classes`` in turn (None: every class); None for an unconditional G."""
        known = self.generator.num_classes
        if not known:
            if classes is not None:
                raise SampleError(f"{self.experiment} is unconditional: it takes no classes")
            return None
        classes = list(range(known)) if classes is None else list(classes)
        unknown = [c for c in classes if not 0 <= c < known]
        if unknown or not classes:
            raise SampleError(f"classes {unknown or classes}: {self.experiment} knows classes 0 to {known - 1}")
        return np.repeat(np.asarray(classes, np.int32), per_class)

    def uses_ema(self, ema: bool | None) -> bool:
        """Whether :meth:`sample` with ``ema`` draws from the moving average (None: when the run kept one)."""
        return self.ema_params is not None if ema is None else ema

    def _variables(self, ema: bool | None, key: jax.Array) -> dict[str, PyTree]:
        """G's variables; with ``ema`` (None: when kept), the moving average with BatchNorm statistics recomputed
        for it from ``key`` (:func:`ganjax.training.standing.standing_stats`, as the run sampled it)."""
        if not self.uses_ema(ema):
            return self.variables
        if self.ema_params is None:
            raise SampleError(f"{self.path}: the run kept no moving average of G (its EMA decay was 0)")
        variables = {**self.variables, "params": self.ema_params}
        if "batch_stats" not in variables:
            return variables
        stats = _standing_stats(self.generator, variables, key, self.config.schedule.batch_size)
        return {**variables, "batch_stats": stats}

    def _generate(self, variables: dict[str, PyTree], inputs: tuple, key: jax.Array) -> np.ndarray:
        inputs = tuple(jnp.asarray(x) for x in inputs)
        return np.asarray(_apply(self.generator, variables, inputs, key, self.step))


def load_run(path: str | pathlib.Path, step: int | None = None) -> Run:
    """The run in folder ``path`` at checkpoint ``step`` (None: the latest).

    Raises:
      SampleError: naming what is missing or wrong: no config.json, one that does not say where its recipe
        and config class come from or names ones that cannot be imported, a recipe without a generator, a
        config its class does not accept, no checkpoint at ``step``.
    """
    path = pathlib.Path(path)
    saved = _read_config(path / CONFIG_FILE)
    records = {key: saved.pop(key, None) for key in (RECIPE_KEY, CONFIG_CLASS_KEY)}
    missing = [key for key, record in records.items() if not isinstance(record, dict) or "name" not in record]
    if missing:
        raise SampleError(
            f"{path / CONFIG_FILE} does not say where its {' and '.join(missing)} come from: a run of "
            "ganjax.run.train writes both"
        )
    name = records[RECIPE_KEY]["name"]
    try:
        recipe, config_cls = (load_importable(records[key]) for key in (RECIPE_KEY, CONFIG_CLASS_KEY))
    except ImportError as e:
        raise SampleError(f"{path / CONFIG_FILE}: the run's recipe cannot be imported ({e})") from e
    if not callable(getattr(recipe, "generator", None)):
        raise SampleError(f"{name} has no image generator to sample (no generator(config))")
    try:
        config = config_from_dict(config_cls, saved)
    except (TypeError, ValueError) as e:
        raise SampleError(f"{path / CONFIG_FILE}: {e}") from e
    generator = recipe().generator(config)
    step, state = _restore(path / CHECKPOINTS, step, generator.player)
    player = state["players"][generator.player]
    variables = {
        "params": player["params"],
        **({"batch_stats": player["batch_stats"]} if player.get("batch_stats") else {}),
    }
    ema = state.get("ema", {}).get(generator.player)
    return Run(path, name, config, generator, step, variables, ema["params"] if ema else None)


def _read_config(path: pathlib.Path) -> dict:
    if not path.is_file():
        raise SampleError(f"{path.parent}: no {CONFIG_FILE} there; is it a run's folder?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SampleError(f"{path}: not valid JSON ({e})") from e


def _restore(folder: pathlib.Path, step: int | None, player: str) -> tuple[int, dict]:
    """``(step, state)``: G's part of the checkpoint at ``step`` (None: the latest), as nested dicts on this host."""
    steps = checkpoint.saved_steps(folder)
    if not steps:
        raise SampleError(f"{folder}: no checkpoint to sample from")
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise SampleError(f"{folder}: no checkpoint of step {step}; there are {', '.join(map(str, steps))}")
    state_dir = folder / str(step) / "state"
    try:
        saved = ocp.PyTreeCheckpointHandler().metadata(state_dir.absolute()).tree
        wanted = {
            "step": saved["step"],
            "players": {player: {k: v for k, v in saved["players"][player].items() if k != "opt_state"}},
            "ema": {name: v for name, v in (saved.get("ema") or {}).items() if name == player},
        }
        here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=here), wanted)
        args = ocp.args.PyTreeRestore(
            item=target, restore_args=ocp.checkpoint_utils.construct_restore_args(target), partial_restore=True
        )
        with ocp.PyTreeCheckpointer() as checkpointer:
            state = checkpointer.restore(state_dir.absolute(), args=args)  # orbax takes absolute paths only
    except Exception as e:  # orbax and tensorstore raise many kinds for missing or damaged files
        raise SampleError(f"{state_dir}: cannot read G's params ({type(e).__name__}: {e})") from e
    return int(state["step"]), state


# ----------------------------------------------------------------------------- the command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ganjax.sample",
        description="Writes a grid of a saved run's samples (by default the run's own sample grid at the checkpoint).",
    )
    parser.add_argument("run_dir", type=pathlib.Path, help="the run's folder (--run.workdir)")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="the PNG to write")
    parser.add_argument("--num", type=int, help="images (per class when conditional; default: the run's grid)")
    parser.add_argument("--seed", type=int, help="draw fresh inputs from this seed (default: the run's own)")
    parser.add_argument("--classes", type=int, nargs="+", help="a conditional G's classes, one row each")
    parser.add_argument("--interpolate", action="store_true", help="great-circle paths through z, one per row")
    parser.add_argument(
        "--ema",
        action=argparse.BooleanOptionalAction,
        help="use the moving average of G's params, or G's own with --no-ema (default: as the run's grids, the "
        "average when the run kept one)",
    )
    parser.add_argument("--step", type=int, help="the checkpoint's step (default: the latest)")
    parser.add_argument("--nrow", type=int, help="images per row of the grid (default: the run's layout)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> pathlib.Path:
    """The command line; an expected error ends it with one line, ``error: ...``, and exit code 2."""
    args = parse_args(argv)
    try:
        run = load_run(args.run_dir, args.step)
        if args.interpolate:
            rows = max(1, (args.num or run.generator.num) // INTERPOLATION_COLUMNS)
            grid = run.interpolate(rows, args.seed, args.classes, args.ema)
            columns = INTERPOLATION_COLUMNS
        else:
            grid = run.sample(args.num, args.seed, args.classes, args.ema)
            columns = run.columns(args.num, args.classes)
        if args.nrow is not None and args.nrow < 1:
            raise SampleError(f"--nrow: images per row must be at least 1, got {args.nrow}")
        out = images.save_grid(grid, args.out, nrow=args.nrow or columns, scale=2)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BAD_INPUT) from None
    print(
        f"{out}: {len(grid)} images of {run.experiment} at step {run.step}{' (EMA)' if run.uses_ema(args.ema) else ''}"
    )
    return out


if __name__ == "__main__":
    main()
