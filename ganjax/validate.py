"""One way to check a value: errors that name ``Part.field`` and the problem."""

from __future__ import annotations

import math
import pathlib
from typing import Any

from ganjax.nn import precision

PyTree = Any


SEED_MAX = 2**32 - 1  # seeds are unsigned 32-bit integers for jax.random.key and NumPy


def refuse(part: object, field: str, problem: str):
    """Raises the ValueError naming ``Part.field`` that tyro shows as a usage error."""
    raise ValueError(f"{type(part).__name__}.{field}: {problem}")


def at_least(part: object, field: str, low: float, high: float = math.inf) -> None:
    """Refuses ``part.field`` below ``low`` or above ``high``, and NaN and infinities."""
    value = getattr(part, field)
    if not math.isfinite(value):
        refuse(part, field, f"must be finite, got {value}")
    if not low <= value <= high:
        refuse(part, field, f"must be {f'in [{low}, {high}]' if high < math.inf else f'at least {low}'}, got {value}")


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
