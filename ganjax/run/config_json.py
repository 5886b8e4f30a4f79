"""A config as JSON (``config.json``) and back."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def resolve(config: T) -> T:
    """``config`` with what its values leave to the data filled in: every part with a ``resolved()`` method
    (:meth:`ganjax.run.Data.resolved`) gives its own, the parts first, then the config itself when it has one
    (:meth:`ganjax.run.ClassHeadGAN.resolved`). Resolving a resolved config changes nothing."""
    if dataclasses.is_dataclass(config):
        parts = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
        resolved = {name: resolve(part) for name, part in parts.items()}
        changed = {name: part for name, part in resolved.items() if part is not parts[name]}
        config = dataclasses.replace(config, **changed) if changed else config
    return config.resolved() if callable(getattr(config, "resolved", None)) else config


def to_dict(config) -> dict:
    """The config as plain JSON values."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def config_from_dict(cls: type[T], values: Mapping[str, Any], where: str = "") -> T:
    """``cls``, a dataclass of nested dataclass parts, from the plain values ``to_dict`` wrote (tuples as lists).

    Fields missing from ``values`` keep their defaults; each part checks its values as when parsed.

    Raises:
      ValueError: naming (``part.field``) every field of ``values`` that ``cls`` does not have.
    """
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"{', '.join(where + name for name in unknown)}: not a field of {cls.__qualname__}")
    return cls(**{name: _typed(hints[name], value, f"{where}{name}.") for name, value in values.items()})


def _typed(hint: Any, value: Any, where: str) -> Any:
    """``value`` as the type ``hint`` names: a nested part, a tuple, or (for plain values) itself."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        kind = dict if isinstance(value, Mapping) else list if isinstance(value, list) else None
        hint = next((arg for arg in options if _kind(arg) is kind), options[0])
        origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return config_from_dict(hint, value, where)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        items = zip([args[0]] * len(value), value) if args[-1] is Ellipsis else zip(args, value)
        return tuple(_typed(arg, item, where) for arg, item in items)
    return value


def _kind(hint: Any) -> type | None:
    return dict if dataclasses.is_dataclass(hint) else list if typing.get_origin(hint) is tuple else None
