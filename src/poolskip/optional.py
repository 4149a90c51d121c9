"""Optional dependencies: import them where they are used, with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import PoolskipError

__all__ = ["MissingDependency", "require"]


class MissingDependency(PoolskipError, ImportError):
    """An optional package is not installed; the message names the pip command that installs it."""


def require(module: str, extra: str, what: str = "this") -> ModuleType:
    """``import module``, or a :class:`MissingDependency` saying ``pip install 'poolskip[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        raise MissingDependency(
            f"{what} needs the package {top!r} ({e}); install it with: pip install 'poolskip[{extra}]'"
        ) from e
