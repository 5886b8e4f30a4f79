"""One way to check a value: errors that name ``Part.field`` and the problem.

A part's ``__post_init__`` calls these on its fields. A value that is traced (a
population member's hyperparameter, vmapped by
:func:`ganjax.training.population.set_loss_hparams`, which checks it where it
is set) is not checked again by :func:`in_range`; see :func:`traced`.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Collection
from typing import Any

import jax

from ganjax.nn import precision

PyTree = Any


SEED_MAX = 2**32 - 1  # seeds are unsigned 32-bit integers for jax.random.key and NumPy


def refuse(part: object, field: str, problem: str):
    """Raises the ValueError naming ``Part.field`` that tyro shows as a usage error."""
    raise ValueError(f"{type(part).__name__}.{field}: {problem}")


def traced(value: object) -> bool:
    """Whether ``value`` is traced: a population member's value, checked where it is set
    (:func:`ganjax.training.population.set_loss_hparams`)."""
    return isinstance(value, jax.core.Tracer)


def _within(part: object, field: str, low: float, high: float, bounds: str) -> None:
    value = getattr(part, field)
    if not math.isfinite(value):
        refuse(part, field, f"must be finite, got {value}")
    if not low <= value <= high:
        refuse(part, field, f"must be {bounds}, got {value}")


def at_least(part: object, field: str, low: float, high: float = math.inf) -> None:
    """Refuses ``part.field`` below ``low`` or above ``high``, and NaN and infinities."""
    _within(part, field, low, high, f"in [{low}, {high}]" if high < math.inf else f"at least {low}")


def in_range(part: object, field: str, low: float, high: float = math.inf) -> None:
    """Refuses ``part.field`` outside ``[low, high]`` (so written, ``inf`` too), and NaN and infinities.

    A traced value is not checked (:func:`traced`).
    """
    if not traced(getattr(part, field)):
        _within(part, field, low, high, f"in [{low}, {high}]")


def one_of(part: object, field: str, table: Collection[str]) -> None:
    """Refuses ``part.field`` unless it is a name in ``table`` (a registry's keys), listing them sorted."""
    if getattr(part, field) not in table:
        refuse(part, field, f"unknown name {getattr(part, field)!r}; choose one of {sorted(table)}")


def positive(part: object, field: str) -> None:
    """Refuses ``part.field`` unless it is a positive, finite number."""
    value = getattr(part, field)
    if not math.isfinite(value):
        refuse(part, field, f"must be finite, got {value}")
    if not value > 0:
        refuse(part, field, f"must be positive, got {value}")


def known_dtype(part: object, field: str) -> None:
    """Refuses ``part.field`` unless it names a compute dtype (:data:`ganjax.nn.precision.COMPUTE_DTYPES`)."""
    if getattr(part, field) not in precision.COMPUTE_DTYPES:
        refuse(part, field, f"unknown name {getattr(part, field)!r}; choose one of {list(precision.COMPUTE_DTYPES)}")


def folder_or_missing(part: object, field: str) -> None:
    """Refuses ``part.field`` when it names something that exists but is not a folder."""
    path = pathlib.Path(getattr(part, field))
    if path.exists() and not path.is_dir():
        refuse(part, field, f"{path} is a file, not a folder")
