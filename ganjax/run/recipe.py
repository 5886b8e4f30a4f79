"""A recipe says how one model family trains; :func:`train` runs any recipe from start to end.

A recipe is the small piece of code between a config (plain typed data) and
the run machinery: the data it trains on, its players, its phases, how to
draw a sample grid, what to evaluate and what to write at the end. The run
(:func:`train`) is the same for every recipe: the workdir guard and
``config.json``, the device mesh, the state, the one step over the phases,
the hooks (evaluations, the failure monitor, logging and TensorBoard, sample
grids, checkpoints and resume), the GIF, and a summary. ``config.json``
records where the recipe and the config class are imported from
(:func:`importable`), so ``python -m ganjax.sample`` rebuilds G from any
importable recipe, a user's own included.

Every run splits ``jax.random.key(run.seed)`` into the same three keys
(:func:`run_keys`): the players' init (which also seeds every step), the sample
grid's inputs, and the evaluations'.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import pathlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

import jax

from ganjax import data
from ganjax.evaluation import monitor
from ganjax.run.config_json import resolve, to_dict
from ganjax.run.fitting import fit
from ganjax.run.folder import start
from ganjax.run.generator import Generator
from ganjax.run.grids import grid_writer, write_animation
from ganjax.run.hooks import Log, run_hooks
from ganjax.training import devices
from ganjax.training.loop import Hook, train_loop
from ganjax.training.phases import Phase, batches_per_step, make_step
from ganjax.training.state import TrainState

PyTree = Any
RECIPE_KEY, CONFIG_CLASS_KEY = "recipe", "config_class"  # config.json's records of where to import them from


class RunKeys(NamedTuple):
    """The three keys of a run, split from ``jax.random.key(run.seed)``."""

    init: jax.Array
    """the players' init; the state keeps it and folds in the step for every step's draws."""
    sample: jax.Array
    """the sample grid's inputs (and G's own noise or dropout when sampling)."""
    evaluation: jax.Array
    """the evaluations' draws (interpolation paths, class checks)."""


def run_keys(seed: int) -> RunKeys:
    """The run's keys for ``seed`` (:class:`RunKeys`)."""
    return RunKeys(*jax.random.split(jax.random.key(seed), 3))


class Grid(NamedTuple):
    """A sample grid: ``draw(state) -> images`` in [-1, 1], NHWC, laid out ``nrow`` to a row; ``sample(state,
    *inputs) -> images`` is the (jitted) sampler it draws with, for other inputs at the end of a run.

    ``write(state, step) -> picture``, when given, writes ``samples/step_XXXXXX.png`` itself (a figure rather
    than images laid out in a grid, e.g. the 2D mixtures' scatter plot) and returns it, uint8 ``(H, W, C)``, for
    TensorBoard; :func:`train` then uses it instead of :func:`ganjax.run.grid_writer` of ``draw`` (``nrow`` may
    be 0)."""

    draw: Callable[[PyTree], jax.Array]
    nrow: int
    sample: Callable[..., jax.Array] | None = None
    write: Callable[[PyTree, int], Any] | None = None


class Recipe(Protocol):
    """How one model family trains. Every method takes the run's config; :class:`ganjax.run.GANRecipe` is the
    recipe of a GAN of one G and one D, which a user subclasses with their own players.

    Two methods are optional. ``generator(config)``: without it :mod:`ganjax.sample` refuses the run (a G of
    no images). ``batches(config, dataset, mesh) -> (start -> iterator)``: the batches of steps ``start + 1,
    ...``, for a recipe that does not train on shuffled batches of ``dataset`` (e.g. one whose step draws its
    own data and takes ``None``); :func:`train` then runs :func:`ganjax.training.loop.train_loop` on them
    instead of :func:`ganjax.run.fit`, with the state replicated over the mesh and ``samples.gif`` at the end
    as there. ``load`` may then return any data the recipe's other methods read (e.g. a 2D mixture).
    """

    def phases(self, config) -> tuple[Phase, ...]:
        """The phases of one step (:class:`ganjax.training.phases.Phase`); :func:`train` reads their batches per
        step and passes them to :meth:`step`. A recipe whose phases change over the run (PGGAN's stages) gives
        those of its first step and builds the others in its step."""

    def load(self, config) -> data.ImageDataset:
        """The data as loaded: the evaluations compare against it."""

    def training_data(self, config, dataset: data.ImageDataset) -> data.ImageDataset:
        """The data the players train on, made from the loaded data (e.g. labelled by clusters)."""

    def init(self, config, key: jax.Array, dataset: data.ImageDataset, bn_axis_name: str | None) -> TrainState:
        """The state at step 0 from ``key``; BatchNorm synchronized over ``bn_axis_name`` (None: per device)."""

    def step(self, config, phases: tuple[Phase, ...], mesh: jax.sharding.Mesh) -> Callable:
        """``(state, batch) -> (state, metrics)`` over the mesh's devices."""

    def grid(self, config, mesh: jax.sharding.Mesh, dataset: data.ImageDataset) -> Grid:
        """The sample grid drawn at every ``run.sample_every`` steps (from fixed inputs, comparable over steps);
        ``dataset`` is the data as loaded, for a grid that shows some of it."""

    def generator(self, config) -> Generator:
        """G as :mod:`ganjax.sample` samples it from a checkpoint of this run."""

    def evaluations(self, config, dataset: data.ImageDataset) -> Sequence[Hook]:
        """Hooks that evaluate the state against the loaded ``dataset``; they run before the others."""

    def monitor(self, config) -> monitor.MonitorConfig | None:
        """The failure monitor's settings (None: no monitor)."""

    def finish(self, config, state: TrainState, grid: Grid, dataset: data.ImageDataset) -> Mapping[str, Any]:
        """Writes what the run writes at its end (beyond the grids and logs) and returns its results; ``dataset``
        is the data as loaded."""


@dataclasses.dataclass(frozen=True)
class Result:
    """What a run leaves: its final state, the last log record, the monitor's flags still raised, the
    recipe's results, and the files written in its folder."""

    state: TrainState
    metrics: dict[str, Any]
    flags: str
    results: Mapping[str, Any]
    workdir: pathlib.Path
    files: tuple[str, ...]

    def summary(self) -> str:
        """Lines for the end of a run: the folder, the files written, the final metrics and the flags."""
        shown = {k: v for k, v in self.metrics.items() if isinstance(v, (int, float)) and k != "step"}
        metrics = ", ".join(f"{k} {v:.4g}" for k, v in sorted(shown.items())) or "none logged"
        lines = [
            f"run finished in {self.workdir}",
            f"  files: {', '.join(self.files)}",
            f"  final metrics (step {self.metrics.get('step', '?')}): {metrics}",
            f"  monitor flags still raised: {self.flags or 'none'}",
        ]
        return "\n".join(lines)


def train(recipe: Recipe, config) -> Result:
    """Runs ``recipe`` with ``config`` from start to end (or from its last checkpoint with ``run.resume``).

    ``config`` has ``schedule``, ``run`` and, optionally, ``devices`` and ``monitor`` parts. Starts the run
    (:func:`ganjax.run.start`: the workdir guard, ``config.json`` with where the recipe and config come from),
    loads the data, makes the state and the step, trains with the hooks (the recipe's evaluations, the
    monitor, logging and TensorBoard, sample grids, checkpoints) on shuffled batches of the training data, or
    on the recipe's own ``batches`` when it has them (see :class:`Recipe`), and writes ``samples.gif`` and what
    the recipe's :meth:`Recipe.finish` writes.

    Returns:
      The :class:`Result`; its :meth:`Result.summary` is what the command line prints at the end.
    """
    config = resolve(config)
    phases = recipe.phases(config)
    per_step = batches_per_step(phases)
    mesh = start(config, per_step, {RECIPE_KEY: importable(type(recipe)), CONFIG_CLASS_KEY: importable(type(config))})
    dataset = recipe.load(config)
    train_set = recipe.training_data(config, dataset)
    parts = getattr(config, "devices", None)
    mode = getattr(parts, "cross_replica_bn", "off")
    bn_axis = devices.bn_axis_name(mode, config.schedule.batch_size, mesh)
    state = recipe.init(config, run_keys(config.run.seed).init, train_set, bn_axis)
    grid = recipe.grid(config, mesh, dataset)
    hooks = run_hooks(
        config.run,
        to_dict(config),
        list(recipe.evaluations(config, dataset)),
        recipe.monitor(config),
        grid.write or grid_writer(config.run.workdir, grid.draw, grid.nrow),
    )
    step, batches = recipe.step(config, phases, mesh), getattr(recipe, "batches", None)
    if batches is None:
        state = fit(config, state, step, train_set, mesh, hooks, per_step)
    else:
        steps = config.schedule.steps
        state = train_loop(devices.replicate(state, mesh), step, batches(config, train_set, mesh), steps, hooks)
        write_animation(config.run.workdir)
    results = dict(recipe.finish(config, state, grid, dataset) or {})
    last = next(hook for hook in hooks if isinstance(hook, Log)).last
    workdir = pathlib.Path(config.run.workdir)
    files = tuple(sorted(p.name + ("/" if p.is_dir() else "") for p in workdir.iterdir())) if workdir.is_dir() else ()
    return Result(state, last, last.get("flags", ""), results, workdir, files)


def data_parallel_step(phases: tuple[Phase, ...], mesh: jax.sharding.Mesh) -> Callable:
    """The step of ``phases`` over ``mesh``'s devices, each taking its rows of every real batch."""
    return devices.data_parallel(make_step(phases), mesh, batches_per_step(phases))


# ----------------------------------------------------------------------------- where a recipe comes from


def importable(cls: type) -> dict[str, str]:
    """Where ``cls`` is imported from: ``{'name': 'module:qualname', 'path': folder}``, the folder being the
    ``sys.path`` entry the module was found under (or, for a script run as ``__main__``, its file)."""
    module = sys.modules[cls.__module__]
    spec = getattr(module, "__spec__", None)
    name = spec.name if spec is not None else module.__name__
    file = getattr(module, "__file__", None)
    if file is None:
        return {"name": f"{name}:{cls.__qualname__}", "path": ""}
    file = pathlib.Path(file).resolve()
    if name == "__main__":
        return {"name": f"__main__:{cls.__qualname__}", "path": str(file)}
    depth = name.count(".") + (1 if file.name == "__init__.py" else 0)
    return {"name": f"{name}:{cls.__qualname__}", "path": str(file.parents[depth])}


def load_importable(record: Mapping[str, str]) -> type:
    """The class :func:`importable` recorded: its module imported from the recorded folder first (so a
    same-named package elsewhere on the path is not taken instead), a script loaded from its file.

    Raises:
      ImportError: naming the module, when it cannot be imported or lacks the class.
    """
    module_name, _, qualname = record["name"].partition(":")
    path = record.get("path", "")
    if module_name == "__main__":
        if not pathlib.Path(path).is_file():
            raise ImportError(f"the script {path!r} that ran the recipe is gone")
        spec = importlib.util.spec_from_file_location(f"ganjax_run_script_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)  # its training sits under `if __name__ == "__main__":`
    else:
        if path and path not in sys.path:
            sys.path.insert(0, path)
        top = module_name.partition(".")[0]
        loaded = sys.modules.get(top)
        if path and loaded is not None and not _under(loaded, path):
            raise ImportError(f"{module_name}: another {top!r} is already imported, not the one in {path}")
        module = importlib.import_module(module_name)
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise ImportError(f"{module_name} has no {qualname}")
    return found


def _under(module, path: str) -> bool:
    files = [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
    return any(f and pathlib.Path(f).resolve().is_relative_to(pathlib.Path(path)) for f in files)
