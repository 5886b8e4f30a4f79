"""The command line of a run: parse a config (tyro, presets), and turn expected errors into one line."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import jax
import tyro
from tqdm import tqdm

from ganjax.run.config_json import resolve
from ganjax.run.folder import TrainingFailed
from ganjax.run.presets import PRESET_FLAG, PRESETS
from ganjax.run.recipe import Recipe, Result, train
from ganjax.run.report import seeds_table

PyTree = Any
Config = TypeVar("Config")


def _preset(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """``(the preset's name or None, the other flags)`` of ``argv``."""
    argv, name = list(argv), None
    for i, arg in enumerate(argv):
        if arg == PRESET_FLAG or arg.startswith(f"{PRESET_FLAG}="):
            name = arg.partition("=")[2] or (argv[i + 1] if i + 1 < len(argv) else "")
            del argv[i : i + (1 if "=" in arg else 2)]
            break
    if name is not None and name not in PRESETS:
        raise ValueError(f"{PRESET_FLAG}: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return name, argv


def parse(cls: type[Config], argv: Sequence[str] | None = None) -> Config:
    """``cls`` from its defaults, a preset and ``argv`` (the command line when None), its data parts resolved.

    ``--preset NAME`` (:data:`PRESETS`) starts from the preset of the defaults
    instead, and the other flags apply on top of it, read once; the preset's
    values that span the run (its anneal lengths, from ``schedule.steps`` and
    the batch) then follow the run the flags asked for, unless a flag set them
    (:meth:`ganjax.run.Preset.follow`).

    Exits with a usage error on a bad value; raises ValueError naming the preset or ``Data.dir`` when the
    preset cannot apply or the data cannot be read (:func:`resolve`).
    """
    name, args = _preset(sys.argv[1:] if argv is None else argv)
    summary = (cls.__doc__ or "").strip().split("\n")[0]
    presets = "; ".join(
        f"{key}: {PRESETS[key].apply.__doc__.splitlines()[0]}" for key in PRESETS if PRESETS[key].missing(cls) is None
    )
    before = (
        f"{PRESET_FLAG} {{{','.join(sorted(PRESETS))}}} starts from a preset ({presets}), the other flags apply on "
    )
    before = (before + "top; ") if presets else ""
    description = f"{summary}\n\nBesides the options below: {before}--debug shows the traceback of an error."
    prog = f"python -m {experiment_name(cls)}"
    cli = functools.partial(_plain_help(tyro.cli), cls, args=args, description=description, prog=prog)
    if name is None:
        return resolve(cli())
    preset = PRESETS[name]
    preset.check(name, cls)
    given = {arg.lstrip("-").partition("=")[0].replace("-", "_") for arg in args if arg.startswith("--")}
    return resolve(preset.follow(cli(default=preset.apply(cls())), given))


MARKUP = re.compile(r":(?:func|class|meth|mod|data|attr):`~?([^`]+)`|``([^`]+)``")


def plain(text: str) -> str:
    """``text`` without reStructuredText roles and literals (``:func:`x``` and ````x```` read as ``x``)."""
    return MARKUP.sub(lambda m: m.group(1) or m.group(2), text)


def _plain_help(cli: Callable) -> Callable:
    """``cli`` whose help shows docstrings as plain sentences: tyro keeps a line break before each indented
    continuation line of a field's docstring and shows reStructuredText markup as written, so both are undone
    while it runs."""

    @functools.wraps(cli)
    def wrapped(*args, **kwargs):
        strings = getattr(tyro, "_strings", None)
        join = getattr(strings, "remove_single_line_breaks", None)
        if join is None:  # another tyro: its own help as it is
            return cli(*args, **kwargs)
        strings.remove_single_line_breaks = lambda text: join(
            plain("\n".join(line.strip() for line in text.split("\n")))
        )
        try:
            return cli(*args, **kwargs)
        finally:
            strings.remove_single_line_breaks = join

    return wrapped


DEBUG_FLAG = "--debug"
EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def main(
    recipe: Recipe,
    config_cls: type[Config],
    argv: Sequence[str] | None = None,
    table_columns: Sequence[tuple[str, str, str]] = (),
) -> Result | None:
    """The command line of a recipe's experiment: trains ``recipe`` (:func:`ganjax.run.train`) with ``config_cls``
    parsed from ``argv`` (the command line when None), prints the run's summary and returns its result.

    Errors and ``table ROOT`` as :func:`command`.
    """

    def train_and_report(config) -> Result:
        result = train(recipe, config)
        if jax.process_index() == 0:
            print(result.summary(), flush=True)
        return result

    return command(config_cls, train_and_report, argv, table_columns)


def command(
    config_cls: type[Config],
    run_fn: Callable[[Any], Any],
    argv: Sequence[str] | None = None,
    table_columns: Sequence[tuple[str, str, str]] = (),
):
    """Parses ``config_cls`` from ``argv`` (the command line when None) and returns ``run_fn(config)``.

    With ``table_columns``, ``table ROOT`` prints :func:`seeds_table` of the runs in ``ROOT`` instead.

    An expected error ends the process with one line on stderr, ``error: ...``,
    naming the file or field: bad data, a bad config, a workdir or checkpoint
    problem, a filesystem error (exit code 2), or training that produced NaN or
    Inf or failed otherwise (:class:`TrainingFailed`; exit code 1). ``--debug``
    anywhere in ``argv`` (or ``GANJAX_DEBUG=1``) shows the full traceback instead.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv or os.environ.get("GANJAX_DEBUG") == "1"
    try:
        if table_columns and argv[:1] == ["table"]:
            if len(argv) != 2:
                raise ValueError(f"usage: python -m {experiment_name(config_cls)} table ROOT (a folder of runs)")
            return print(seeds_table(argv[1], table_columns))
        return run_fn(parse(config_cls, [arg for arg in argv if arg != DEBUG_FLAG]))
    except (FloatingPointError, TrainingFailed, ValueError, OSError) as e:
        if debug:
            raise
        for bar in list(tqdm._instances):  # a progress bar the error left open: clear its line first
            bar.close()
        print(f"error: {e}", file=sys.stderr, flush=True)
        raise SystemExit(
            EXIT_FAILED if isinstance(e, (FloatingPointError, TrainingFailed)) else EXIT_BAD_INPUT
        ) from None


def experiment_name(config_cls: type) -> str:
    """The importable name of the module defining ``config_cls`` (``python -m`` runs it as ``__main__``)."""
    module = sys.modules[config_cls.__module__]
    spec = getattr(module, "__spec__", None)
    return spec.name if spec is not None else module.__name__
