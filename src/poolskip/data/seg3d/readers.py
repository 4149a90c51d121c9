"""3D medical volumes in their standard layouts: which cases, images, labels and classes a dataset has.

Layouts (``data.dataset``):

- ``decathlon``: the Medical Segmentation Decathlon's ``dataset.json`` (``modality``, ``labels``,
  ``training: [{image, label}]``) with ``imagesTr/`` and ``labelsTr/``; multi-modal images are 4D.
- ``nnunet``: nnU-Net v2's raw layout, the ``Dataset###_Name`` folder: ``dataset.json`` (``channel_names``,
  ``labels`` as name -> value, ``file_ending``), ``imagesTr/{case}_{channel:04d}{ending}``, ``labelsTr/``.
- ``btcv``: BTCV as MONAI's tutorial stores it, ``dataset_0.json`` (``training`` + ``validation``, 30
  labelled CT); the paper's split keeps 12 of them (a seeded choice: the paper does not list them) for test.
- ``amos``: AMOS 2022's ``dataset.json``; its 240 ``training`` cases are the paper's train+val part and its
  120 ``validation`` cases the paper's test set (240/120); ids <= 500 are CT, above are MRI.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError, other_task_hint
from ..paths import confined

__all__ = ["LAYOUTS", "Case", "VolumeDataset", "load_volumes"]

LAYOUTS = ("decathlon", "nnunet", "btcv", "amos")


@dataclass
class Case:
    """One labelled (or unlabelled) volume: its channel files, label file and per-channel modality."""

    id: str
    images: list[Path]  # one file per channel, or one 4D file holding every channel
    label: Path | None
    modalities: list[str]  # "CT", "MRI", ... per channel


@dataclass
class VolumeDataset:
    """A dataset's cases and classes as its ``dataset.json`` describes them."""

    name: str
    layout: str
    root: Path
    classes: list[str]  # class names by label value, background first
    channels: list[str]  # channel names (modalities) of the dataset
    cases: dict[str, Case]  # every labelled case, by id
    test_ids: list[str] = field(default_factory=list)  # the layout's fixed test set (labelled), if any

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def train_ids(self) -> list[str]:
        """Labelled cases outside the fixed test set (the part that is cross-validated)."""
        test = set(self.test_ids)
        return sorted(i for i in self.cases if i not in test)


# ------------------------------------------------------------------------------------------ reading


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"{path} not found: expected the dataset's description file there")
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    return data


def _resolve(root: Path, entry: Any, desc: Path, what: str) -> Path:
    if not isinstance(entry, str) or not entry:
        raise DatasetError(f"{desc}: {what} must be a relative file path, got {entry!r}")
    path = confined(root / entry.removeprefix("./"), root, f"{desc}: {what} {entry!r}")
    if not path.is_file():
        raise DatasetError(f"{desc} names {entry!r} ({what}), but {path} does not exist")
    return path


def _case_id(path: Path) -> str:
    name = path.name
    for ending in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return path.stem


def _int_key(key: Any) -> int | None:
    """A ``dataset.json`` key (or nnU-Net label value) that is an integer: ``"1"`` or ``1``, not ``"one"``,
    ``1.5`` or ``true``."""
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return key
    if isinstance(key, str) and re.fullmatch(r"\s*[+-]?\d+\s*", key):
        return int(key)
    return None


def _classes_from_values(labels: Any, desc: Path) -> list[str]:
    """``{"0": "background", "1": "liver"}`` (Decathlon) -> names by value, checking 0..K-1 are all there."""
    if not isinstance(labels, dict) or any(_int_key(k) is None or not isinstance(v, str) for k, v in labels.items()):
        raise DatasetError(
            f'{desc}: \'labels\' must map label values to class names, e.g. {{"0": "background", "1": "liver"}}, '
            f"got {labels!r}"
        )
    by_value = {_int_key(k): v for k, v in labels.items()}
    if sorted(by_value) != list(range(len(by_value))) or len(by_value) < 2:
        raise DatasetError(f"{desc}: 'labels' must name the values 0..K-1 (K >= 2), got {sorted(by_value)}")
    return [by_value[v] for v in range(len(by_value))]


def _channels(names: Any, desc: Path, key: str) -> list[str]:
    """``{"0": "CT", "1": "T2"}`` (``modality`` / ``channel_names``) -> channel names by index 0..C-1."""
    if (
        not isinstance(names, dict)
        or not names
        or any(_int_key(k) is None or not isinstance(v, str) for k, v in names.items())
        or sorted(_int_key(k) for k in names) != list(range(len(names)))
    ):
        raise DatasetError(
            f'{desc}: {key!r} must map the channel indices 0..C-1 to modality names, e.g. {{"0": "CT"}}, got {names!r}'
        )
    return [names[k] for k in sorted(names, key=_int_key)]


def _read_listed(root: Path, desc: Path, data: dict, keys: Sequence[str], modalities) -> list[Case]:
    cases = []
    for key in keys:
        entries = data.get(key, [])
        if not isinstance(entries, list):
            raise DatasetError(f"{desc}: {key!r} must be a list of {{image, label}} entries")
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or "image" not in e or "label" not in e:
                raise DatasetError(f"{desc}: {key}[{i}] must be an object with 'image' and 'label', got {e!r}")
            image = _resolve(root, e["image"], desc, f"{key}[{i}].image")
            label = _resolve(root, e["label"], desc, f"{key}[{i}].label")
            cid = _case_id(image)
            cases.append(Case(cid, [image], label, modalities(cid)))
    return cases


def _unique(cases: list[Case], desc: Path) -> dict[str, Case]:
    out: dict[str, Case] = {}
    for c in cases:
        if c.id in out:
            raise DatasetError(f"{desc}: case {c.id!r} is listed twice")
        out[c.id] = c
    if not out:
        raise DatasetError(f"{desc}: lists no labelled cases")
    return out


def read_decathlon(root: Path) -> VolumeDataset:
    desc = root / "dataset.json"
    data = _read_json(desc)
    classes = _classes_from_values(data.get("labels"), desc)
    channels = _channels(data["modality"], desc, "modality") if "modality" in data else ["unknown"]
    cases = _read_listed(root, desc, data, ["training"], lambda cid: list(channels))
    return VolumeDataset(str(data.get("name", root.name)), "decathlon", root, classes, channels, _unique(cases, desc))


def read_nnunet_raw(root: Path) -> VolumeDataset:
    desc = root / "dataset.json"
    data = _read_json(desc)
    key = "channel_names" if "channel_names" in data or "modality" not in data else "modality"
    if key not in data:
        raise DatasetError(f'{desc}: nnU-Net\'s raw layout needs \'channel_names\' (e.g. {{"0": "CT"}})')
    channels = _channels(data[key], desc, key)
    labels = data.get("labels")
    if not isinstance(labels, dict):
        raise DatasetError(f'{desc}: \'labels\' must map names to values (nnU-Net v2, e.g. {{"background": 0}}), '
                           f"got {labels!r}")  # fmt: skip
    if any(isinstance(v, (list, tuple)) for v in labels.values()):
        raise DatasetError(f"{desc}: region-based labels (lists of values) are not supported; use one value per class")
    if "ignore" in labels:  # nnU-Net v2's unlabelled voxels: not a class to learn or score
        raise DatasetError(
            f"{desc}: the 'ignore' label (value {labels['ignore']!r}, nnU-Net v2's voxels left out of the loss) is not "
            "supported: it would be trained and scored as a class; remove it and those voxels' labels, or train with "
            "nnU-Net's own pipeline (poolskip's nnU-Net plugin)"
        )
    if any(_int_key(v) is None or isinstance(v, str) for v in labels.values()):
        raise DatasetError(f"{desc}: 'labels' must map class names to integer values (nnU-Net v2), got {labels!r}")
    classes = _classes_from_values({str(v): k for k, v in labels.items()}, desc)
    ending = data.get("file_ending", ".nii.gz")
    if not isinstance(ending, str) or not re.fullmatch(r"\.[A-Za-z0-9.]+", ending):
        raise DatasetError(f"{desc}: 'file_ending' must be a file extension such as '.nii.gz', got {ending!r}")
    lab_dir, img_dir = root / "labelsTr", root / "imagesTr"
    if not lab_dir.is_dir() or not img_dir.is_dir():
        raise DatasetError(f"{root}: expected nnU-Net's raw layout, imagesTr/ and labelsTr/ beside dataset.json")
    cases = []
    for label in sorted(lab_dir.glob(f"*{ending}")):
        cid = label.name[: -len(ending)]
        images = [img_dir / f"{cid}_{c:04d}{ending}" for c in range(len(channels))]
        for p in [label, *images]:
            confined(p, root, f"{p} (case {cid!r})")
        for p in images:
            if not p.is_file():
                raise DatasetError(
                    f"{label} has no image {p} (nnU-Net's layout: imagesTr/{{case}}_{{channel:04d}}{ending})"
                )
        cases.append(Case(cid, images, label, list(channels)))
    return VolumeDataset(str(data.get("name", root.name)), "nnunet", root, classes, channels, _unique(cases, desc))


def read_btcv(root: Path, split_seed: int = 0) -> VolumeDataset:
    desc = root / "dataset_0.json"
    data = _read_json(desc)
    classes = _classes_from_values(data.get("labels"), desc)
    cases = _unique(_read_listed(root, desc, data, ["training", "validation"], lambda cid: ["CT"]), desc)
    ids = sorted(cases)
    n_test = round(len(ids) * 12 / 30)  # the paper: 12 of the 30 labelled scans for test
    pick = np.random.default_rng(split_seed).permutation(len(ids))[:n_test]
    test = sorted(ids[i] for i in pick)
    return VolumeDataset(str(data.get("name", "btcv")), "btcv", root, classes, ["CT"], cases, test)


def amos_modality(case_id: str) -> str:
    """AMOS 2022: scans with id <= 500 are CT, above 500 MRI."""
    m = re.search(r"(\d+)$", case_id)
    if m is None:
        raise DatasetError(f"AMOS case id {case_id!r} does not end in a number (amos_NNNN)")
    return "CT" if int(m.group(1)) <= 500 else "MRI"


def read_amos(root: Path) -> VolumeDataset:
    desc = root / "dataset.json"
    data = _read_json(desc)
    classes = _classes_from_values(data.get("labels"), desc)
    train = _read_listed(root, desc, data, ["training"], lambda cid: [amos_modality(cid)])
    test = _read_listed(root, desc, data, ["validation"], lambda cid: [amos_modality(cid)])
    if not train:  # its folds are made of these; 'validation' is the test set
        raise DatasetError(f"{desc}: 'training' lists no cases; AMOS trains on them and tests on 'validation'")
    cases = _unique(train + test, desc)
    return VolumeDataset("AMOS", "amos", root, classes, ["CT/MRI"], cases, sorted(c.id for c in test))


def load_volumes(layout: str, data_dir: str | os.PathLike | None, split_seed: int = 0) -> VolumeDataset:
    """The dataset at ``data_dir`` in ``layout`` (one of :data:`LAYOUTS`), every listed file checked to exist."""
    if layout not in LAYOUTS:
        raise DatasetError(
            f"unknown 3D dataset layout {layout!r}; choose one of {', '.join(LAYOUTS)}{other_task_hint(layout)}"
        )
    if data_dir is None:
        raise DatasetError(f"data.data_dir must point at the {layout} dataset's folder")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory: expected the {layout} dataset's folder")
    if layout == "decathlon":
        return read_decathlon(root)
    if layout == "nnunet":
        return read_nnunet_raw(root)
    if layout == "btcv":
        return read_btcv(root, split_seed)
    return read_amos(root)
