"""Pool Skip (Sun et al., AAAI 2025) for any PyTorch network.

``PoolSkip`` is the module, ``convert`` retrofits it after the convolutions of an existing model.

The names below are imported on first use (PEP 562), so that ``import poolskip.cli`` and
``poolskip --help`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> the submodule that defines it
_EXPORTS = {
    "ConvertReport": "convert",
    "Policy": "convert",
    "convert": "convert",
    "get_policy": "convert",
    "list_policies": "convert",
    "load_plain_state_dict": "convert",
    "register_policy": "convert",
    "unconvert": "convert",
    "VARIANTS": "module",
    "PoolSkip": "module",
    "PoolSkip1d": "module",
    "PoolSkip2d": "module",
    "PoolSkip3d": "module",
}

__all__ = [
    "VARIANTS",
    "ConvertReport",
    "Policy",
    "PoolSkip",
    "PoolSkip1d",
    "PoolSkip2d",
    "PoolSkip3d",
    "convert",
    "get_policy",
    "list_policies",
    "load_plain_state_dict",
    "register_policy",
    "unconvert",
]

if TYPE_CHECKING:
    from .convert import (
        ConvertReport,
        Policy,
        convert,
        get_policy,
        list_policies,
        load_plain_state_dict,
        register_policy,
        unconvert,
    )
    from .module import VARIANTS, PoolSkip, PoolSkip1d, PoolSkip2d, PoolSkip3d


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """Keeps ``poolskip.convert`` the function: importing the submodule ``poolskip.convert`` would set the
    package attribute to the module (an eager ``from .convert import convert`` used to overwrite it)."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
