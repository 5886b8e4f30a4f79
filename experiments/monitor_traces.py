"""Labelled per-step metric traces for the failure monitor: ``python -m experiments.monitor_traces --out DIR``.

Runs short, small versions of the experiments, healthy or made to fail, through
their own ``train_and_evaluate`` with ``--run.log-every 1``, so that
``metrics.jsonl`` holds every step's train metrics (and the evaluations at
their steps), and saves each run as ``DIR/{name}.npz``: ``metric/{name}`` (one
float32 value per step from step 1), ``eval/{name}`` at ``eval_steps``, the
``label`` (``healthy`` or the flag the failure should raise), the ``expected``
flags, ``failure_step`` (the first step of the failure) and the ``command``.

A failure that a run grows into is made by resuming a healthy run from its
checkpoint at ``failure_step`` with a changed optimizer or objective
(``--run.allow-changes``), so the trace holds the healthy run before it:

- D overpowers G: G's learning rate drops to 1e-8, D's stays (ganhacks 14:
  "D loss goes to 0: failure mode");
- vanishing gradients: the saturating minimax G loss under that strong D
  (Goodfellow et al. 2014, section 3: ``log(1 - D(G(z)))`` saturates when D
  rejects the fakes confidently);
- divergence: the penalty of WGAN-GP is dropped and the learning rates raised
  to 1e-2, an unconstrained critic whose gradients grow without bound
  (Arjovsky et al. 2017);

and mode collapse from the start, by 50% dropout in a 2D mixture's G kept on
at sampling (docs/ablation.md: most of z lands on one or two modes). The
runs write into a temporary folder; only the traces are kept. The
experiments' own checks stop a diverging run at its first NaN or Inf, and its
trace ends there. ``--only NAME ...`` records some of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import pathlib
import tempfile
import time
from typing import NamedTuple

import numpy as np
from PIL import Image

from ganjax import data, plots
from ganjax.checkpoint import NonFiniteStateError
from ganjax.evaluation import monitor
from ganjax.run import parse, train

# Every run logs each step; it samples and checkpoints only at its end (and where a failure begins).
QUIET = ("--run.log-every", "1", "--run.sample-every", "100000", "--run.checkpoint-every", "100000")
NO_CLASSIFIER = ("--evaluation.classifier-dir", "", "--evaluation.eval-samples", "1000")
LOG_EVERY = 50  # the checks of Run.log_every's default cadence
DCGAN_TRACED = (*NO_CLASSIFIER, "--evaluation.eval-every", "250", "--clusters.k", "0")
DCGAN_SMALL = ("--model.g-width", "32", "--model.d-width", "32", "--schedule.batch-size", "64", *DCGAN_TRACED)


@dataclasses.dataclass(frozen=True)
class Case:
    """One labelled run: ``module``'s experiment with ``flags``, then ``failure_flags`` from ``failure_step``."""

    name: str
    module: str
    flags: tuple[str, ...]
    steps: int
    label: str = "healthy"
    expected: tuple[str, ...] = ()
    """the flags a monitor may rightly raise from failure_step on (the label's among them)."""
    failure_step: int = 0
    failure_flags: tuple[str, ...] = ()
    """the flags of the resumed run from failure_step (none: the failure is there from the start)."""
    rgb_digits: bool = False
    """train on 64 px RGB digits (:func:`write_rgb_digits`) instead of the experiment's data."""


WGAN_SMALL = (
    *NO_CLASSIFIER,
    *("--model.g-width", "32", "--schedule.n-critic", "5", "--evaluation.eval-every", "200", "--clusters.k", "0"),
)
STRONG_D = ("--optim.lr-g", "1e-8", "--run.allow-changes", "optim.lr_g")
CASES = (
    Case("dcgan_mnist", "experiments.dcgan_mnist", DCGAN_SMALL, 1500),
    Case(
        "wgan_gp_mnist",
        "experiments.wgan_gp_mnist",
        WGAN_SMALL,
        600,
    ),
    Case(
        "cgan_mnist",
        "experiments.cgan_mnist",
        ("--model.g-width", "32", "--model.d-width", "32", "--class-accuracy.classifier-dir", ""),
        1000,
    ),
    Case(
        "dcgan_rgb64",
        "experiments.dcgan_mnist",
        (*DCGAN_TRACED, "--model.g-width", "16", "--model.d-width", "16", "--schedule.batch-size", "32"),
        500,
        rgb_digits=True,
    ),
    Case("gaussian_ring", "experiments.gaussian_mixture", ("--evaluation.eval-every", "100"), 2000),
    Case(
        "d_overpowers_g",
        "experiments.dcgan_mnist",
        DCGAN_SMALL,
        1200,
        label="d_loss_zero",
        expected=("d_loss_zero", "vanishing_gradients", "g_fools_with_garbage"),
        failure_step=400,
        failure_flags=STRONG_D,
    ),
    Case(
        "vanishing_gradients",
        "experiments.dcgan_mnist",
        DCGAN_SMALL,
        1200,
        label="vanishing_gradients",
        expected=("vanishing_gradients", "d_loss_zero", "g_fools_with_garbage"),
        failure_step=400,
        failure_flags=(
            "--optim.lr-g",
            "1e-8",
            "--objective.loss",
            "minimax",
            "--run.allow-changes",
            "optim.lr_g",
            "objective.loss",
        ),
    ),
    Case(
        "divergence",
        "experiments.wgan_gp_mnist",
        WGAN_SMALL,
        600,
        label="grad_explosion",
        expected=("grad_explosion", "d_loss_unstable"),
        failure_step=200,
        failure_flags=(
            "--objective.penalty",
            "none",
            "--objective.penalty-weight",
            "0",
            "--optim.lr-g",
            "1e-2",
            "--optim.lr-d",
            "1e-2",
            "--run.allow-changes",
            "objective.penalty",
            "objective.penalty_weight",
            "optim.lr_g",
            "optim.lr_d",
        ),
    ),
    Case(
        "mode_collapse_ring",
        "experiments.gaussian_mixture",
        ("--evaluation.eval-every", "100", "--model.g-dropout", "0.5"),
        2000,
        label="mode_collapse",
        expected=("mode_collapse",),
    ),
)


def write_rgb_digits(folder: pathlib.Path, count: int = 512, seed: int = 0) -> pathlib.Path:
    """``count`` MNIST digits, each tinted with a random colour, as RGB PNGs (read back resized to 64 px)."""
    digits = data.load(str(data.PACKAGED_MNIST)).images[:count, :, :, 0].astype(np.float32) / 255.0
    colours = np.random.default_rng(seed).uniform(0.3, 1.0, (count, 1, 1, 3))
    folder.mkdir(parents=True, exist_ok=True)
    for i, picture in enumerate((digits[..., None] * colours * 255).astype(np.uint8)):
        Image.fromarray(picture, "RGB").save(folder / f"{i:04d}.png")
    return folder


def _train(module, argv: list[str]) -> None:
    try:
        train(module.RECIPE, parse(module.Config, argv))
    except (monitor.NonFiniteLossError, NonFiniteStateError):
        pass  # a diverging run stops at its first NaN or Inf; its trace ends at the step before


def record(case: Case, scratch: pathlib.Path) -> dict[str, np.ndarray]:
    """Runs ``case`` in ``scratch``; returns its trace (see the module's docstring)."""
    module = importlib.import_module(case.module)
    workdir = scratch / case.name
    argv = [*case.flags, *QUIET, "--run.workdir", str(workdir), "--run.overwrite"]
    if case.rgb_digits:
        argv += ["--data.dir", str(write_rgb_digits(scratch / "rgb_digits")), "--data.image-size", "64"]
        argv += ["--data.channels", "3"]
    if case.failure_flags:
        _train(module, [*argv, "--schedule.steps", str(case.failure_step)])
        argv = [a for a in argv if a != "--run.overwrite"] + ["--run.resume", *case.failure_flags]
    _train(module, [*argv, "--schedule.steps", str(case.steps)])
    records = plots.read_jsonl(workdir / "metrics.jsonl")
    # train metrics are in every step's record (a penalty that the failure drops is left out), evaluations
    # only in those of their steps, never the first
    train = [
        name for name, value in records[-1].items() if isinstance(value, float) and all(name in r for r in records)
    ]
    evaluated = [r for r in records if set(r) - set(records[0]) - {"flags", "stopped"}]
    names = sorted({k for r in evaluated for k, v in r.items() if k not in records[0] and isinstance(v, (int, float))})
    steps = np.array([r["step"] for r in records])
    if not np.array_equal(steps, np.arange(1, len(records) + 1)):
        raise ValueError(f"{workdir}: metrics.jsonl does not hold every step from 1")
    trace = {f"metric/{name}": np.array([r[name] for r in records], np.float32) for name in train}
    trace.update({f"eval/{name}": np.array([r.get(name, np.nan) for r in evaluated], np.float32) for name in names})
    trace["eval_steps"] = np.array([r["step"] for r in evaluated], np.int32)
    command = f"python -m {case.module} {' '.join(case.flags)} --schedule.steps {case.steps}"
    if case.failure_flags:
        command += f"; from step {case.failure_step}: {' '.join(case.failure_flags)}"
    return {
        **trace,
        "label": np.array(case.label),
        "expected": np.array(case.expected or ("none",)),
        "failure_step": np.array(case.failure_step),
        "command": np.array(command),
    }


class Trace(NamedTuple):
    """A recorded run (see the module's docstring)."""

    metrics: dict[str, np.ndarray]
    evaluations: dict[int, dict[str, float]]
    label: str
    expected: tuple[str, ...]
    failure_step: int
    command: str


def load(folder: str | pathlib.Path) -> dict[str, Trace]:
    """The traces ``{name: Trace}`` saved in ``folder``, by name.

    Raises:
      ValueError: naming ``folder`` when it holds no trace.
    """
    traces = {}
    for path in sorted(pathlib.Path(folder).glob("*.npz")):
        with np.load(path) as stored:
            saved = dict(stored)
        names = [k.removeprefix("eval/") for k in saved if k.startswith("eval/")]
        evaluations = {
            int(step): {n: float(saved[f"eval/{n}"][i]) for n in names if np.isfinite(saved[f"eval/{n}"][i])}
            for i, step in enumerate(saved["eval_steps"])
        }
        traces[path.stem] = Trace(
            {k.removeprefix("metric/"): v for k, v in saved.items() if k.startswith("metric/")},
            evaluations,
            str(saved["label"]),
            tuple(str(f) for f in saved["expected"] if f != "none"),
            int(saved["failure_step"]),
            str(saved["command"]),
        )
    if not traces:
        raise ValueError(f"{folder}: no traces (*.npz) there")
    return traces


class TraceScore(NamedTuple):
    """How the monitor did on one trace: its checks, and the alarms that were right and wrong."""

    checks: int
    flagged: int
    """checks that raised any flag."""
    false_alarms: dict[str, int]
    """per flag, the checks that raised it where it is not expected (a healthy run, or before the failure)."""
    detections: dict[str, int]
    """per flag, the checks after the failure step that raised it where it is expected."""
    first_detection: int | None
    """the first step at which the label's flag was raised after the failure step."""
    last_flags: tuple[str, ...]


def monitor_config(case: Case) -> monitor.MonitorConfig:
    """The monitor's settings in ``case``'s run: its experiment's ``Monitor`` part, built for its loss."""
    module = importlib.import_module(case.module)
    config = parse(module.Config, [*case.flags, *case.failure_flags])
    return config.monitor.build(getattr(config, "objective", None))


def score(trace: Trace, config: monitor.MonitorConfig, every: int = LOG_EVERY) -> TraceScore:
    """Replays ``trace`` through the monitor (:func:`ganjax.evaluation.monitor.replay`) and sorts its alarms."""
    checks = monitor.replay(trace.metrics, every, config, trace.evaluations)
    false_alarms: dict[str, int] = {}
    detections: dict[str, int] = {}
    first = None
    for step, flags in checks:
        for flag in flags:
            right = trace.label != "healthy" and step > trace.failure_step and flag.name in trace.expected
            tally = detections if right else false_alarms
            tally[flag.name] = tally.get(flag.name, 0) + 1
            if right and flag.name == trace.label and first is None:
                first = step
    return TraceScore(
        len(checks),
        sum(bool(flags) for _, flags in checks),
        false_alarms,
        detections,
        first,
        tuple(f.name for f in checks[-1][1]),
    )


def scores(traces: dict[str, Trace], every: int = LOG_EVERY) -> dict[str, TraceScore]:
    """:func:`score` of each of ``traces`` (named as in :data:`CASES`) with its run's monitor settings."""
    cases = {case.name: case for case in CASES}
    return {name: score(trace, monitor_config(cases[name]), every) for name, trace in traces.items()}


def tables(traces: dict[str, Trace], every: int = LOG_EVERY) -> str:
    """Markdown tables of the monitor's precision and recall per flag and its alarms per trace."""
    results = scores(traces, every)
    lines = [
        "| flag | alarms | right | precision | failure traces | detected | recall |",
        "|---|---|---|---|---|---|---|",
    ]
    for flag in monitor.CHECKS:
        right = sum(s.detections.get(flag, 0) for s in results.values())
        alarms = right + sum(s.false_alarms.get(flag, 0) for s in results.values())
        labelled = [name for name, t in traces.items() if t.label == flag]
        found = sum(results[name].first_detection is not None for name in labelled)
        precision = f"{right / alarms:.2f}" if alarms else "-"
        recall = f"{found / len(labelled):.2f}" if labelled else "-"
        lines.append(f"| {flag} | {alarms} | {right} | {precision} | {len(labelled)} | {found} | {recall} |")
    lines += [
        "",
        "| trace | label (from step) | steps | checks flagged | false alarms | first detection | flags at the end |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, trace in traces.items():
        s = results[name]
        label = trace.label if trace.label == "healthy" else f"{trace.label} ({trace.failure_step})"
        wrong = ", ".join(f"{f} {n}" for f, n in s.false_alarms.items()) or "-"
        first = "-" if s.first_detection is None else str(s.first_detection)
        share = f"{s.flagged}/{s.checks} ({s.flagged / s.checks:.0%})"
        steps = len(trace.metrics["d_loss"])
        lines.append(f"| {name} | {label} | {steps} | {share} | {wrong} | {first} | {', '.join(s.last_flags) or '-'} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="record the traces into this folder ({name}.npz)")
    parser.add_argument("--only", nargs="*", choices=[c.name for c in CASES], help="record only these")
    parser.add_argument("--score", help="print the monitor's precision and recall on the traces in this folder")
    args = parser.parse_args(argv)
    if args.score:
        return print(tables(load(args.score)))
    if not args.out:
        parser.error("give --out to record, or --score to score")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for case in CASES:
            if args.only and case.name not in args.only:
                continue
            began = time.process_time()
            trace = record(case, pathlib.Path(scratch))
            np.savez_compressed(out / f"{case.name}.npz", **trace)
            print(
                f"{case.name}: {len(trace['metric/d_loss'])} steps, {time.process_time() - began:.0f} s CPU",
                flush=True,
            )


if __name__ == "__main__":
    main()
