"""Paths a dataset's own files name (a ``dataset.json`` entry, a split list's id): kept inside the dataset's
folder, links resolved, so an untrusted dataset cannot make a reader open a file elsewhere."""

from __future__ import annotations

from pathlib import Path

from ..files import escapes
from .errors import DatasetError

__all__ = ["confined"]


def confined(path: Path, root: Path, named_by: str) -> Path:
    """``path`` if it resolves (symlinks followed) inside ``root``; else a :class:`DatasetError` that says
    ``named_by`` (which file and entry named it) points outside the dataset's folder."""
    target = escapes(path, root)
    if target is not None:
        raise DatasetError(
            f"{named_by} points outside the dataset folder {root} (to {target}); every file a dataset names must "
            "be inside its folder (links resolved): copy the file in or fix the entry"
        )
    return path
