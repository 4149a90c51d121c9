"""Where decoded datasets are cached: one folder for every modality."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir`` (``~`` expanded) or, when it is None or empty, ``$XDG_CACHE_HOME/poolskip``
    (``~/.cache/poolskip`` without XDG_CACHE_HOME): the ``data.cache_dir`` config key's default."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "poolskip"
