"""The decoded-tensor cache of classification datasets: one ``.pt`` file per source, keyed by the source
files' paths, sizes and mtimes, so a second run starts in a second instead of decoding again."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

from ...files import atomic_save
from ..cache import cache_root

FIELDS = ("train_x", "train_y", "test_x", "test_y", "classes")  # what a cache file holds


def file_listing(files: list[Path]) -> list[tuple[str, int, int]]:
    """(absolute path, size, mtime) of each file: what a cache entry is keyed by."""
    return [(str(f.resolve()), (st := f.stat()).st_size, st.st_mtime_ns) for f in files]


def tree_listing(roots: list[Path]) -> list[tuple[str, int, int]]:
    """:func:`file_listing` of every file under ``roots`` (one stat per file: 60k files in seconds), following
    symbolic links to folders as torchvision's ImageFolder does (a tree of linked class folders listed nothing,
    so two such trees, or one re-pointed, shared one cache entry), each file named by its folder's real path."""
    out = []
    for root in roots:
        root = str(root.resolve())
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames.sort()
            real = os.path.realpath(dirpath)
            for name in sorted(filenames):
                st = os.stat(os.path.join(dirpath, name))
                out.append((os.path.join(real, name), st.st_size, st.st_mtime_ns))
    return out


def cached(name: str, listing: list[tuple[str, int, int]], cache_dir, read: Callable[[], dict], extra) -> dict:
    """``read()`` (a dict of :data:`FIELDS`) once per source; the key covers the files' paths, sizes and
    mtimes, and ``extra``."""
    key = hashlib.sha256(json.dumps([name, extra, listing]).encode()).hexdigest()[:16]
    path = cache_root(cache_dir) / f"{name}-{key}.pt"
    if path.is_file():
        try:
            d = torch.load(path, weights_only=True)
            return {k: d[k] for k in FIELDS}
        except Exception:  # a truncated or foreign file: decode again and overwrite it
            pass
    payload = read()
    atomic_save(payload, path)
    return payload
