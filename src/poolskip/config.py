"""Typed config fields, at the bottom of the package so the engine and every task build their options alike.

:func:`option` declares a field of an options dataclass (default, meaning, checks); :func:`coerce` turns a
value read from YAML or ``--set`` into the field's type where that is lossless, and :func:`check_value`
applies the field's checks. Both raise :class:`ConfigError`, which names the key, the value and what is
allowed. :mod:`poolskip.engine.config` resolves whole configs with them. :class:`DataConfig` is the
config's ``data:`` section, here because the engine hands it to every task (in its
:class:`~poolskip.tasks.TaskContext`).
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PoolskipError

__all__ = ["ConfigError", "DataConfig", "check_value", "coerce", "describe_range", "option", "type_name"]


class ConfigError(PoolskipError):
    """A config key or value is wrong; the message names it and what is allowed."""


def option(default: Any, help: str, **checks: Any) -> Any:
    """A config field of a task's ``Options`` (and of the engine's sections): its default, what it means (shown
    by ``--help`` and ``--print-config``) and its checks: ``choices=(...)``, ``min=``/``max=`` (inclusive),
    ``above=``/``below=`` (exclusive bounds); ``why=`` says in the error why the upper bound is where it is
    (e.g. what no real recipe exceeds). A list or dict default is copied for every instance."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **checks})
    return field(default=default, metadata={"help": help, **checks})


def coerce(path: str, value: Any, hint: Any) -> Any:
    """``value`` as type ``hint`` where that is lossless; a ConfigError naming ``path`` otherwise."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(path, value, inner[0] if len(inner) == 1 else Any)
    if value is None:
        raise ConfigError(f"config key {path!r} cannot be null (expected {type_name(hint)})")
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and not isinstance(value, bool):
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    if hint is str and isinstance(value, (str, Path)):
        return str(value)
    if origin is list and isinstance(value, (list, tuple)):
        return [coerce(f"{path}[{i}]", v, args[0] if args else Any) for i, v in enumerate(value)]
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(coerce(f"{path}[{i}]", v, args[0] if args else Any) for i, v in enumerate(value))
    if (origin is dict or hint is dict) and isinstance(value, dict):
        kt, vt = args if args else (Any, Any)
        return {coerce(path, k, kt): coerce(f"{path}.{k}", v, vt) for k, v in value.items()}
    raise ConfigError(f"config key {path!r} expects {type_name(hint)}, got {value!r}")


def type_name(hint: Any) -> str:
    """How an error message names type ``hint`` ("an integer", "a number", ...)."""
    if hint in (int, float, str, bool):
        return {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false"}[hint.__name__]
    return f"a {str(hint).replace('typing.', '')}"


RANGE_KEYS = ("min", "max", "above", "below")


def check_value(path: str, value: Any, meta: dict) -> None:
    """The checks :func:`option` recorded in ``meta`` applied to ``value`` (None passes: nullable fields)."""
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value) and meta.keys() & set(RANGE_KEYS):
        raise ConfigError(f"config key {path!r} must be a finite number, got {value!r}")  # NaN passes < and >
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"config key {path!r} must be one of {', '.join(map(str, meta['choices']))}; got {value!r}")
    why = f" ({meta['why']})" if meta.get("why") else ""
    for key, fails, words, note in (
        ("min", lambda v, b: v < b, ">=", ""),
        ("above", lambda v, b: v <= b, ">", ""),
        ("max", lambda v, b: v > b, "<=", why),
        ("below", lambda v, b: v >= b, "<", why),
    ):
        if key in meta and fails(value, meta[key]):
            raise ConfigError(f"config key {path!r} must be {words} {meta[key]}{note}, got {value!r}")


def describe_range(meta: dict, name: str = "x") -> str:
    """The bounds :func:`option` recorded, as the config reference and ``--print-config`` show them
    (e.g. ``"0 <= lr <= 10"``); empty without an upper bound."""

    def num(v: Any) -> str:
        return format(v, "g") if isinstance(v, float) else str(v)

    low = f"{num(meta['min'])} <= " if "min" in meta else f"{num(meta['above'])} < " if "above" in meta else ""
    high = f" <= {num(meta['max'])}" if "max" in meta else f" < {num(meta['below'])}" if "below" in meta else ""
    return f"{low}{name}{high}" if high else ""  # a lower bound alone (epochs >= 1) goes without saying


@dataclass
class DataConfig:
    """Where a task's data comes from (the task decides how to read it)."""

    dataset: str = option("digits", "dataset name; the task lists the ones it reads")
    data_dir: str | None = option(None, "the dataset's directory, in its standard on-disk layout")
    download: bool = option(False, "fetch the dataset into data_dir where the dataset supports it (CIFAR)")
    cache_dir: str | None = option(
        None, "decoded-tensor cache (default: $XDG_CACHE_HOME/poolskip or ~/.cache/poolskip)"
    )
    train_subset: int | None = option(None, "use only N training samples of a fixed shuffle (quick runs)", min=1)
