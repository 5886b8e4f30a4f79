"""Every trick switched on and off over seeds, each setting one population: ``python -m experiments.ablation``.

The protocol: a base recipe (the 2D mixture GAN of :mod:`experiments.gaussian_mixture`
with ``--base`` on top of its defaults) and the trick switches of :data:`SWITCHES`,
each a few config fields set on top of the base. For every mixture and every
setting (the base, then each switch alone), ``--seeds`` runs with seeds
``0 .. seeds-1`` train as one population (:mod:`ganjax.training.population`:
one compiled program, the members on a leading axis; member ``k`` is the run
``python -m experiments.gaussian_mixture --run.seed k`` with the same fields
would train). After the last step each member draws
``evaluation.eval_samples`` points (from G's moving average when the switch
keeps one) and is scored by :func:`ganjax.evaluation.metrics.mixture_metrics`:
modes captured, high-quality share (within 3 std of a mode) and the KL of the
mode histogram to uniform.

Run::

  python -m experiments.ablation                              # every switch, 5 seeds, ring and grid
  python -m experiments.ablation --switches r1 packing --seeds 3 --mixtures ring
  python -m experiments.ablation --base schedule.steps=4000 optim.lr_d=2e-3

Writes to ``--workdir``: ``config.json`` (this config), ``results.jsonl`` (one
line per member: mixture, switch, seed, metrics, the population's seconds),
``ablation.md`` (per mixture, one row per setting: mean ± std over seeds of
each metric, marked ▲ or ▼ where it is better or worse than the base by more
than twice the standard error of the difference) and ``ablation_{mixture}.png``
(every seed's value as a point, the mean as a bar). ``--resume`` continues an
interrupted ablation with the same base and seeds (it may add mixtures or switches), skipping the
settings it finished.

On a CPU the settings train ``--workers`` at a time (by default one per core),
each in its own single-threaded process: a population of 2D MLP GANs is too
small a program for XLA:CPU to keep two threads busy (one step of the base
population takes 5.9 ms on two threads and 6.9 ms on one, on 2 cores), so two
one-thread processes train 1.7x the settings per second of one two-thread
process.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
import pathlib
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from experiments import gaussian_mixture
from ganjax import data, plots, validate
from ganjax.evaluation import metrics
from ganjax.run import WorkdirError, command, mean_std, parse, run_keys, to_dict
from ganjax.training import population


@dataclasses.dataclass(frozen=True)
class Switch:
    """A trick as config fields set on top of the base recipe.

    Attributes:
      name: the switch's name on the command line and in the table.
      fields: ``part.field=value`` settings (``true``/``false`` for a flag).
      trick: what it is, with its source (a ganhacks item or a paper).
    """

    name: str
    fields: tuple[str, ...]
    trick: str


# Each switch uses its paper's setting where the paper gives one for this kind of model.
SWITCHES: tuple[Switch, ...] = (
    Switch("minimax", ("objective.loss=minimax",), "the original saturating G loss (Goodfellow et al. 2014)"),
    Switch("least_squares", ("objective.loss=least_squares",), "LSGAN loss (Mao et al. 2017)"),
    Switch("hinge", ("objective.loss=hinge",), "hinge loss (Lim and Ye 2017; Miyato et al. 2018)"),
    Switch("relativistic", ("objective.loss=relativistic",), "RSGAN / RpGAN pairing loss (Jolicoeur-Martineau 2019)"),
    Switch(
        "relativistic_average",
        ("objective.loss=relativistic_average",),
        "RaSGAN loss (Jolicoeur-Martineau 2019)",
    ),
    Switch(
        "wgan_gp",
        (
            "objective.loss=wasserstein",
            "objective.penalty=wgan_gp",
            "objective.penalty_weight=10",
            "schedule.n_critic=5",
        ),
        "WGAN-GP: Wasserstein loss, gradient penalty 10, 5 critic steps (Gulrajani et al. 2017)",
    ),
    Switch(
        "one_sided_smoothing", ("objective.d_labels=one_sided",), "real label 0.9 (ganhacks 6; Salimans et al. 2016)"
    ),
    Switch("noisy_labels", ("objective.d_labels=noisy",), "real ~ U[0.7, 1.2], fake ~ U[0, 0.3] (ganhacks 6)"),
    Switch("label_flips", ("objective.label_flip_prob=0.05",), "flip 5% of D's labels (ganhacks 6)"),
    Switch(
        "instance_noise",
        ("noise.std=0.1", "noise.decay_steps=0"),
        "Gaussian noise of std 0.1 on D's inputs (ganhacks 13; Sønderby et al. 2016)",
    ),
    Switch("g_noise", ("model.g_noise_std=0.1",), "Gaussian noise in G's layers (ganhacks 13; Zhao et al. 2017)"),
    Switch("g_dropout", ("model.g_dropout=0.5",), "50% dropout in G, train and test (ganhacks 17; Isola et al. 2017)"),
    Switch(
        "replay",
        ("state.replay_capacity=2560", "state.replay_share=0.5"),
        "half of D's fakes replayed from the last 10 batches (ganhacks 8)",
    ),
    Switch(
        "swaps",
        ("swaps.every=500", "swaps.duration=50"),
        "G trains against a past D for 50 of every 500 steps (ganhacks 8)",
    ),
    Switch("n_critic", ("schedule.n_critic=5",), "5 D updates per G update (Arjovsky et al. 2017)"),
    Switch(
        "r1",
        ("objective.penalty=r1", "objective.penalty_weight=5"),
        "R1 penalty, gamma 10 (Mescheder et al. 2018)",
    ),
    Switch(
        "r2",
        ("objective.penalty=r2", "objective.penalty_weight=5"),
        "R2 penalty on fakes, gamma 10 (Mescheder et al. 2018)",
    ),
    Switch(
        "dragan",
        ("objective.penalty=dragan", "objective.penalty_weight=10"),
        "DRAGAN penalty 10 (Kodali et al. 2017)",
    ),
    Switch("ttur", ("optim.lr_g=5e-4", "optim.lr_d=2e-3"), "D's rate 4 times G's (Heusel et al. 2017)"),
    Switch("optimistic_adam", ("optim.optimistic=true",), "optimistic Adam (Daskalakis et al. 2018)"),
    Switch("sgd_d", ("optim.d_optimizer=sgd", "optim.lr_d=1e-2"), "SGD for D, Adam for G (ganhacks 9)"),
    Switch("ema", ("state.ema_decay=0.999",), "sample a moving average of G (Yazıcı et al. 2019)"),
    Switch("spectral_norm", ("model.d_norm=spectral",), "spectral norm in D (Miyato et al. 2018)"),
    Switch("minibatch_stddev", ("model.d_minibatch=stddev",), "minibatch standard deviation in D (Karras et al. 2018)"),
    Switch(
        "minibatch_discrimination",
        ("model.d_minibatch=discrimination",),
        "minibatch discrimination in D (Salimans et al. 2016)",
    ),
    Switch("packing", ("objective.packing=2",), "PacGAN: D judges pairs of samples (Lin et al. 2018)"),
    Switch("feature_matching", ("objective.g_objective=feature_matching",), "G matches D's features (Salimans 2016)"),
    Switch("uniform_z", ("latent.distribution=uniform",), "uniform z instead of Gaussian (ganhacks 3)"),
    Switch("spherical_z", ("latent.distribution=spherical",), "z on the sphere (ganhacks 3)"),
)
SWITCH_NAMES = tuple(switch.name for switch in SWITCHES)
BASE = "base"
# What a resumed ablation may change: it trains the settings it has not finished, as many at once as it likes.
RESUME_FREE = ("mixtures", "switches", "workers", "resume", "overwrite")
# A worker process's XLA:CPU: one thread for its operations.
SINGLE_THREADED = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
# The metrics of a member, and whether a larger value is better.
METRICS = {"modes": True, "high_quality": True, "mode_kl": False}


@dataclasses.dataclass(frozen=True)
class Config:
    """An ablation of GAN tricks on the 2D mixtures, each setting a population of seeds."""

    mixtures: tuple[Literal[tuple(data.MIXTURES)], ...] = ("ring", "grid")
    """the benchmarks: 8 Gaussians on a ring, 25 on a grid."""
    switches: tuple[Literal[SWITCH_NAMES], ...] = SWITCH_NAMES
    """the switches, each tried alone on top of the base."""
    seeds: int = 5
    """runs per setting (seeds 0 .. seeds-1), trained as one population."""
    base: tuple[str, ...] = ("schedule.steps=3000", "schedule.batch_size=128", "optim.lr_decay=true")
    """part.field=value settings of experiments.gaussian_mixture on top of its defaults: the base recipe."""
    lowering: Literal[population.LOWERINGS] = "vmap"
    """how the population's program runs its members (ganjax.training.population.population_step)."""
    workers: int = 0
    """settings trained at once, each in its own single-threaded process; 0: one per CPU core when jax runs on
    the CPU, else 1 (one process, the settings one after another)."""
    workdir: str = "runs/ablation"
    """where the results go; one holding another ablation is refused unless --resume or --overwrite."""
    resume: bool = False
    """continue the ablation in workdir (the same base, seeds and lowering; more mixtures or switches may be
    added), skipping the settings it finished."""
    overwrite: bool = False
    """delete whatever workdir holds and start afresh."""

    def __post_init__(self):
        validate.at_least(self, "seeds", 2, 1024)
        validate.at_least(self, "workers", 0, 1024)
        if not self.mixtures:
            validate.refuse(self, "mixtures", "name at least one mixture")
        for name, values in (("mixtures", self.mixtures), ("switches", self.switches)):
            if len(set(values)) != len(values):
                validate.refuse(self, name, f"names one twice: {list(values)}")
        if self.resume and self.overwrite:
            validate.refuse(self, "overwrite", "resume continues the ablation in workdir, overwrite deletes it")
        for setting in self.base:
            _flags(setting, "base")


def _flags(setting: str, where: str) -> list[str]:
    """``part.field=value`` as the flags tyro reads (``--part.field value``; ``--part.field``/``--part.no-field``)."""
    name, sep, value = setting.partition("=")
    if not sep or "." not in name or not value:
        raise ValueError(f"Config.{where}: {setting!r} is not part.field=value (e.g. schedule.steps=2000)")
    part, field = name.replace("_", "-").rsplit(".", 1)
    if value.lower() in ("true", "false"):
        return [f"--{part}.{field}" if value.lower() == "true" else f"--{part}.no-{field}"]
    return [f"--{part}.{field}", value]


def setting_config(config: Config, mixture: str, switch: Switch | None) -> gaussian_mixture.Config:
    """The mixture experiment's config of one setting: its defaults, then the base, then the switch.

    Raises:
      ValueError: naming the setting when its fields are not valid together.
    """
    fields = [*config.base, *(switch.fields if switch else ())]
    argv = ["--mixture", mixture, *[flag for setting in fields for flag in _flags(setting, "base")]]
    try:
        return parse(gaussian_mixture.Config, argv)
    except SystemExit:
        raise ValueError(f"{switch.name if switch else BASE}: the fields {fields} are not a valid config") from None


def train_population(setting: gaussian_mixture.Config, seeds: int, lowering: str = "vmap") -> list[dict]:
    """Trains ``setting`` with seeds ``0 .. seeds-1`` as one population; returns each member's metrics.

    A member whose samples are not all finite (a diverged run) scores as its
    samples fall: every NaN sample lands on the first mode and none is high quality.
    """
    parts = gaussian_mixture.benchmark(setting)
    keys = jax.vmap(run_keys)(jnp.arange(seeds))
    members = population.init_population(parts.init, keys.init)
    step = population.population_step(parts.step, lowering=lowering)
    for _ in range(setting.schedule.steps):
        members, _ = step(members, None)  # each member draws its real points from its own key
    eval_keys = jax.vmap(lambda key: jax.random.fold_in(key, setting.schedule.steps))(keys.evaluation)
    points = np.asarray(jax.jit(jax.vmap(parts.sample))(members, eval_keys))
    mixture = parts.mixture
    return [
        {
            **metrics.mixture_metrics(member_points, mixture.means, mixture.std),
            "finite": float(np.isfinite(member_points).all(axis=1).mean()),
        }
        for member_points in points
    ]


def _train_setting(config: Config, mixture: str, switch: Switch | None) -> tuple[list[dict], float]:
    """One setting's members' metrics and the seconds its population took."""
    started = time.perf_counter()
    members = train_population(setting_config(config, mixture, switch), config.seeds, config.lowering)
    return members, time.perf_counter() - started


def _single_threaded_worker() -> None:
    """Starts a worker process's XLA:CPU single-threaded (its backend starts at its first computation)."""
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {SINGLE_THREADED}".strip()


def _trained(config: Config, settings: Sequence[tuple[str, Switch | None]]):
    """Yields ``(mixture, switch, members' metrics, seconds)`` for each setting as it finishes."""
    workers = config.workers or ((os.cpu_count() or 1) if jax.default_backend() == "cpu" else 1)
    if min(workers, len(settings)) <= 1:
        for mixture, switch in settings:
            yield mixture, switch, *_train_setting(config, mixture, switch)
        return
    with concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"), initializer=_single_threaded_worker
    ) as pool:
        running = {pool.submit(_train_setting, config, *setting): setting for setting in settings}
        for finished in concurrent.futures.as_completed(running):
            yield *running[finished], *finished.result()


def _prepare_workdir(config: Config) -> tuple[pathlib.Path, list[dict]]:
    """The workdir, ready, and the results it already holds (on resume)."""
    workdir = pathlib.Path(config.workdir)
    saved = to_dict(config)
    config_file, results_file = workdir / "config.json", workdir / "results.jsonl"
    if workdir.exists() and not workdir.is_dir():
        raise WorkdirError(f"{workdir}: Config.workdir is a file, not a folder")
    if config.resume:
        if not results_file.is_file():
            raise WorkdirError(f"{workdir}: nothing to resume (no results.jsonl); drop --resume")
        before = json.loads(config_file.read_text())
        changed = sorted(
            k for k in before.keys() | saved.keys() if k not in RESUME_FREE and before.get(k) != saved.get(k)
        )
        if changed:
            raise WorkdirError(
                f"{workdir}: resuming with a different config would mix two ablations; changed: {', '.join(changed)}"
            )
        return workdir, plots.read_jsonl(results_file)
    if workdir.exists() and any(workdir.iterdir()):
        if not config.overwrite:
            raise WorkdirError(f"{workdir} already holds an ablation: pass --resume, --overwrite or another --workdir")
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(saved, indent=2) + "\n")
    return workdir, []


def compare(values: Sequence[float], base: Sequence[float], higher_is_better: bool) -> str:
    """``'▲'`` (better) or ``'▼'`` (worse) when the means differ by more than twice the standard error of their
    difference; ``''`` otherwise."""
    values, base = np.asarray(values, np.float64), np.asarray(base, np.float64)
    difference = values.mean() - base.mean()
    error = math.sqrt(values.var(ddof=1) / len(values) + base.var(ddof=1) / len(base))
    if abs(difference) <= 2 * error or difference == 0:
        return ""
    return "▲" if (difference > 0) == higher_is_better else "▼"


def grouped(results: Sequence[dict]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """``{mixture: {setting: {metric: [value per seed]}}}``, the base first, then the switches in table order."""
    order = {name: i for i, name in enumerate((BASE, *SWITCH_NAMES))}
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in sorted(results, key=lambda row: (order[row["switch"]], row["seed"])):
        per_metric = out.setdefault(row["mixture"], {}).setdefault(row["switch"], {name: [] for name in METRICS})
        for name in METRICS:
            per_metric[name].append(row[name])
    return out


def table(results: Sequence[dict]) -> str:
    """The markdown tables of :func:`grouped` results, one per mixture."""
    tricks = {switch.name: switch.trick for switch in SWITCHES} | {BASE: "the base recipe"}
    blocks = []
    for mixture, settings in grouped(results).items():
        base = settings[BASE]
        lines = [
            f"### {mixture}",
            "",
            "| setting | seeds | modes | high-quality share | mode KL | trick |",
            "|---|---|---|---|---|---|",
        ]
        for name, values in settings.items():
            cells = []
            for metric, higher in METRICS.items():
                mark = "" if name == BASE else compare(values[metric], base[metric], higher)
                spec = ".1f" if metric == "modes" else ".3f"
                cells.append(f"{mean_std(values[metric], spec)} {mark}".strip())
            lines.append(f"| {name} | {len(values['modes'])} | {' | '.join(cells)} | {tricks[name]} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _name(switch: Switch | None) -> str:
    return switch.name if switch else BASE


def run_ablation(config: Config) -> str:
    """Runs every setting not yet in the workdir's results; writes the results, table and plots; returns the table."""
    workdir, results = _prepare_workdir(config)
    done = {(row["mixture"], row["switch"]) for row in results}
    chosen = [switch for switch in SWITCHES if switch.name in config.switches]
    settings = [(mixture, switch) for mixture in config.mixtures for switch in (None, *chosen)]
    for mixture, switch in settings:  # every setting's config is checked before anything trains
        setting_config(config, mixture, switch)
    pending = [(mixture, switch) for mixture, switch in settings if (mixture, _name(switch)) not in done]
    for i, (mixture, switch, members, seconds) in enumerate(_trained(config, pending), len(settings) - len(pending)):
        name = _name(switch)
        rows = [
            {"mixture": mixture, "switch": name, "seed": k, **found, "seconds": seconds}
            for k, found in enumerate(members)
        ]
        with (workdir / "results.jsonl").open("a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        results += rows
        means = ", ".join(f"{metric} {np.mean([row[metric] for row in rows]):.3g}" for metric in METRICS)
        print(f"[{i + 1}/{len(settings)}] {mixture} {name}: {means} ({seconds:.0f} s)", flush=True)
    text = table(results)
    (workdir / "ablation.md").write_text(text)
    for mixture, by_setting in grouped(results).items():
        plots.ablation_figure(
            by_setting, METRICS, workdir / f"ablation_{mixture}.png", f"{mixture}: {config.seeds} seeds per setting"
        )
    return text


def main(argv: Sequence[str] | None = None) -> None:
    command(Config, lambda config: print(run_ablation(config)), argv)


if __name__ == "__main__":
    main(sys.argv[1:])
