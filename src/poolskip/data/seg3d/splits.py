"""Splits of a 3D dataset: its fixed test set and a seeded k-fold cross-validation of the other labelled
cases, written once to a ``splits.json`` that later runs read back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write_text
from ..errors import DatasetError
from .readers import VolumeDataset

__all__ = ["make_splits", "read_splits"]


def make_splits(ds: VolumeDataset, num_folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """The fixed test set and a seeded ``num_folds``-fold cross-validation of the other labelled cases."""
    ids = ds.train_ids
    if len(ids) < num_folds:
        raise DatasetError(f"{ds.root}: {len(ids)} labelled training cases cannot make {num_folds} folds")
    perm = np.random.default_rng(seed).permutation(len(ids))
    chunks = np.array_split(perm, num_folds)
    folds = []
    for k in range(num_folds):
        val = sorted(ids[i] for i in chunks[k])
        folds.append({"train": sorted(set(ids) - set(val)), "val": val})
    return {
        "dataset": ds.name, "layout": ds.layout, "seed": seed, "num_folds": num_folds,
        "test": list(ds.test_ids), "folds": folds,
    }  # fmt: skip


def read_splits(path: str | os.PathLike, ds: VolumeDataset, num_folds: int, seed: int) -> dict[str, Any]:
    """The splits in ``path``, written there first if missing; a file that does not fit ``ds`` is refused."""
    path = Path(path)
    if not path.exists():
        splits = make_splits(ds, num_folds, seed)
        atomic_write_text(path, json.dumps(splits, indent=1) + "\n")
        return splits
    try:
        splits = json.loads(path.read_text())
        folds = splits["folds"]
        known = set(ds.cases)
        named = set(splits["test"]) | {c for f in folds for part in ("train", "val") for c in f[part]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: not a splits file ({e}); delete it to have it written again") from None
    if named - known:
        raise DatasetError(f"{path} names cases the dataset at {ds.root} lacks: {sorted(named - known)[:5]}")
    return splits
