"""Splits of a 3D dataset: its fixed test set and a seeded k-fold cross-validation of the other labelled
cases, written once to a splits JSON that later runs read back.

The file stores what it was made for: the fold count, the seed and the case set (a hash of the training and
test case ids, :func:`case_set_hash`). Reading it back checks all three against what the run asks, and that
every fold splits exactly the dataset's training cases, so a file made for another copy of the dataset
(10 cases, not 260), another ``num_folds`` or another ``split_seed`` is refused, never silently used. The
default file name (:func:`default_splits_name`) holds the case-set hash: another case list gets its own file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from ...files import atomic_write_text
from ..errors import DatasetError
from .readers import VolumeDataset

__all__ = ["SPLITS_FORMAT", "case_set_hash", "default_splits_name", "make_splits", "read_splits"]

SPLITS_FORMAT = 2  # 1: no stored fold count / seed / case set (refused)
_HOW_TO = "delete it to have it written again, or point segmentation3d.split_file at another file"


def case_set_hash(ds: VolumeDataset) -> str:
    """16 hex digits of the SHA-256 of the dataset's sorted training and test case ids."""
    key = json.dumps({"train": sorted(ds.train_ids), "test": sorted(ds.test_ids)}, separators=(",", ":"))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def default_splits_name(ds: VolumeDataset, num_folds: int, seed: int) -> str:
    """``splits_<layout>_<name>_<case-set hash>_k<folds>_s<seed>.json``: one file per case list, fold count
    and seed (the name is reduced to letters, digits, ``.``, ``_`` and ``-``)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", ds.name).strip("._")[:64] or "dataset"
    return f"splits_{ds.layout}_{name}_{case_set_hash(ds)[:8]}_k{num_folds}_s{seed}.json"


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
        "format": SPLITS_FORMAT, "dataset": ds.name, "layout": ds.layout, "seed": seed, "num_folds": num_folds,
        "case_set": case_set_hash(ds), "num_train": len(ids), "num_test": len(ds.test_ids),
        "test": sorted(ds.test_ids), "folds": folds,
    }  # fmt: skip


def _examples(ids: set[str]) -> str:
    first = sorted(ids)[:3]
    return ", ".join(first) + (", ..." if len(ids) > len(first) else "")


def _case_difference(splits: dict[str, Any], ds: VolumeDataset) -> str:
    """How the cases the file splits differ from the dataset's (empty when they are the same)."""
    folds = splits["folds"]
    train = {c for f in folds for part in ("train", "val") for c in f[part]}
    test = set(splits["test"])
    want_train, want_test = set(ds.train_ids), set(ds.test_ids)
    if train == want_train and test == want_test:
        return ""
    named, known = train | test, want_train | want_test
    what = [f"splits {len(train)} training + {len(test)} test cases, the dataset at {ds.root} has "
            f"{len(want_train)} + {len(want_test)}"]  # fmt: skip
    if known - named:
        what.append(f"{len(known - named)} of its cases are not in the file ({_examples(known - named)})")
    if named - known:
        what.append(f"{len(named - known)} cases of the file are not in the dataset ({_examples(named - known)})")
    if not known - named and not named - known:
        what.append(f"its test set differs ({_examples(test ^ want_test)})")
    return "; ".join(what)


def _mismatch(splits: Any, ds: VolumeDataset, num_folds: int, seed: int) -> str:
    """What in ``splits`` does not fit the run (empty: it fits)."""
    if not isinstance(splits, dict):
        raise TypeError(f"a JSON object was expected, not {type(splits).__name__}")
    if splits.get("format") != SPLITS_FORMAT:
        return (
            f"has format {splits.get('format', 1)}, not {SPLITS_FORMAT} (an older poolskip wrote it): it does not "
            "record the fold count, seed and case set it was made for, so it cannot be checked"
        )
    if splits.get("num_folds") != num_folds or len(splits["folds"]) != num_folds:
        return f"holds {len(splits['folds'])} folds, the run asks for num_folds={num_folds}"
    if splits.get("seed") != seed:
        return f"was made with split_seed={splits.get('seed')}, the run asks for split_seed={seed}"
    diff = _case_difference(splits, ds)
    if diff:
        return diff
    if splits.get("case_set") != case_set_hash(ds):
        return f"records case set {splits.get('case_set')}, the dataset's is {case_set_hash(ds)}"
    for k, fold in enumerate(splits["folds"]):
        train, val = set(fold["train"]), set(fold["val"])
        if train & val or not val or train | val != set(ds.train_ids):
            return (
                f"fold {k} does not split the {len(ds.train_ids)} training cases into disjoint, non-empty train and "
                "val parts"
            )
    return ""


def read_splits(path: str | os.PathLike, ds: VolumeDataset, num_folds: int, seed: int) -> dict[str, Any]:
    """The splits in ``path``, written there first if missing. A file made for another fold count, seed or
    case set (see the module docstring), or by a version that did not record them, is refused with a
    :class:`DatasetError` that names it, says what differs and how to have it written again. A file whose
    folds were edited by hand is used as written as long as each fold still splits the training cases."""
    path = Path(path)
    if not path.exists():
        splits = make_splits(ds, num_folds, seed)
        atomic_write_text(path, json.dumps(splits, indent=1) + "\n")
        return splits
    try:
        splits = json.loads(path.read_text())
        why = _mismatch(splits, ds, num_folds, seed)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DatasetError(f"{path}: not a splits file ({type(e).__name__}: {e}); {_HOW_TO}") from None
    if why:
        raise DatasetError(f"splits file {path} {why}; {_HOW_TO}")
    return splits
