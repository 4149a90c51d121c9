"""3D medical volumes in their standard layouts: reading, splits, preprocessing (cached) and patch sampling.

Layouts (``data.dataset``):

- ``decathlon``: the Medical Segmentation Decathlon's ``dataset.json`` (``modality``, ``labels``,
  ``training: [{image, label}]``) with ``imagesTr/`` and ``labelsTr/``; multi-modal images are 4D.
- ``nnunet``: nnU-Net v2's raw layout, the ``Dataset###_Name`` folder: ``dataset.json`` (``channel_names``,
  ``labels`` as name -> value, ``file_ending``), ``imagesTr/{case}_{channel:04d}{ending}``, ``labelsTr/``.
- ``btcv``: BTCV as MONAI's tutorial stores it, ``dataset_0.json`` (``training`` + ``validation``, 30
  labelled CT); the paper's split keeps 12 of them (a seeded choice: the paper does not list them) for test.
- ``amos``: AMOS 2022's ``dataset.json``; its 240 ``training`` cases are the paper's train+val part and its
  120 ``validation`` cases the paper's test set (240/120); ids <= 500 are CT, above are MRI.

Preprocessing (MONAI transforms, once per case, cached with :func:`poolskip.files.atomic_save`): RAS
orientation, resampling to the target spacing (trilinear image, nearest label), cropping to the
image's non-zero box, then per channel a CT window clipped and scaled to [0, 1] or a per-volume z-score.
Each cached case also holds up to 10,000 voxel positions per foreground class for oversampling.

:class:`PatchSampler` cuts random training patches (foreground-oversampled as nnU-Net does: the last third
of each batch is centred on a voxel of a random present class) and augments them with MONAI's random
transforms, every random choice drawn from ``mix_seed(seed, epoch, step)``: batch ``b`` of epoch ``e`` is
the same whatever ran before, on every process.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..dist import Dist
from ..files import atomic_save, atomic_write_text
from ..optional import require
from .cache import cache_root
from .errors import DatasetError, other_task_hint
from .loader import Batch, mix_seed

__all__ = [
    "LAYOUTS",
    "Augment",
    "Case",
    "PatchSampler",
    "Preprocessing",
    "VolumeDataset",
    "crop_patch",
    "header_geometry",
    "load_volumes",
    "make_splits",
    "patch_start",
    "plan_geometry",
    "preprocess_all",
    "preprocess_case",
    "read_case",
    "read_splits",
]

LAYOUTS = ("decathlon", "nnunet", "btcv", "amos")
CACHE_VERSION = 1
MAX_LOCATIONS = 10_000


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
    path = root / entry.removeprefix("./")
    if not path.is_file():
        raise DatasetError(f"{desc} names {entry!r} ({what}), but {path} does not exist")
    return path


def _case_id(path: Path) -> str:
    name = path.name
    for ending in (".nii.gz", ".nii", ".nrrd", ".mha"):
        if name.endswith(ending):
            return name[: -len(ending)]
    return path.stem


def _classes_from_values(labels: dict, desc: Path) -> list[str]:
    """``{"0": "background", "1": "liver"}`` (Decathlon) -> names by value, checking 0..K-1 are all there."""
    try:
        by_value = {int(k): str(v) for k, v in labels.items()}
    except (TypeError, ValueError):
        raise DatasetError(f"{desc}: 'labels' must map label values to names, got {labels!r}") from None
    if sorted(by_value) != list(range(len(by_value))) or len(by_value) < 2:
        raise DatasetError(f"{desc}: 'labels' must name the values 0..K-1 (K >= 2), got {sorted(by_value)}")
    return [by_value[v] for v in range(len(by_value))]


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
    classes = _classes_from_values(data.get("labels", {}), desc)
    mods = data.get("modality", {"0": "unknown"})
    channels = [str(mods[k]) for k in sorted(mods, key=int)]
    cases = _read_listed(root, desc, data, ["training"], lambda cid: list(channels))
    return VolumeDataset(str(data.get("name", root.name)), "decathlon", root, classes, channels, _unique(cases, desc))


def read_nnunet_raw(root: Path) -> VolumeDataset:
    desc = root / "dataset.json"
    data = _read_json(desc)
    names = data.get("channel_names", data.get("modality"))
    if not isinstance(names, dict) or not names:
        raise DatasetError(f'{desc}: nnU-Net\'s raw layout needs \'channel_names\' (e.g. {{"0": "CT"}})')
    channels = [str(names[k]) for k in sorted(names, key=int)]
    labels = data.get("labels")
    if not isinstance(labels, dict):
        raise DatasetError(f"{desc}: 'labels' must map names to values (nnU-Net v2), got {labels!r}")
    if any(not isinstance(v, int) for v in labels.values()):
        raise DatasetError(f"{desc}: region-based labels (lists of values) are not supported; use one value per class")
    classes = _classes_from_values({v: k for k, v in labels.items()}, desc)
    ending = data.get("file_ending", ".nii.gz")
    lab_dir, img_dir = root / "labelsTr", root / "imagesTr"
    if not lab_dir.is_dir() or not img_dir.is_dir():
        raise DatasetError(f"{root}: expected nnU-Net's raw layout, imagesTr/ and labelsTr/ beside dataset.json")
    cases = []
    for label in sorted(lab_dir.glob(f"*{ending}")):
        cid = label.name[: -len(ending)]
        images = [img_dir / f"{cid}_{c:04d}{ending}" for c in range(len(channels))]
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
    classes = _classes_from_values(data.get("labels", {}), desc)
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
    classes = _classes_from_values(data.get("labels", {}), desc)
    train = _read_listed(root, desc, data, ["training"], lambda cid: [amos_modality(cid)])
    test = _read_listed(root, desc, data, ["validation"], lambda cid: [amos_modality(cid)])
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


# ------------------------------------------------------------------------------------------ splits


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


# ------------------------------------------------------------------------------------------ one case


@dataclass(frozen=True)
class Preprocessing:
    """How volumes are prepared, the key of the cache."""

    spacing: tuple[float, float, float]
    ct_window: tuple[float, float] = (-175.0, 250.0)  # MONAI's BTCV tutorial
    crop_foreground: bool = True

    def key(self) -> dict[str, Any]:
        return {"spacing": list(self.spacing), "ct_window": list(self.ct_window), "crop": self.crop_foreground}


def _load_nifti(path: Path):
    nib = require("nibabel", "med", "reading NIfTI volumes")
    try:
        img = nib.load(str(path))
        arr = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:  # nibabel raises many types (gzip, zlib, EOF, ImageFileError) for a bad file
        raise DatasetError(f"{path}: not a readable NIfTI volume ({type(e).__name__}: {e})") from None
    return arr, np.asarray(img.affine, dtype=np.float64)


def read_case(case: Case, num_classes: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(image (C, X, Y, Z) float32, label (X, Y, Z) uint8 or None, affine)``, checked against each other."""
    arrays, affine = [], None
    for path in case.images:
        arr, aff = _load_nifti(path)
        if arr.ndim == 4:  # the Decathlon's multi-modal volumes: channels last
            arrays += [arr[..., c] for c in range(arr.shape[-1])]
        elif arr.ndim == 3:
            arrays.append(arr)
        else:
            raise DatasetError(f"{path}: expected a 3D volume (or 4D with channels last), got shape {arr.shape}")
        if affine is None:
            affine = aff
        elif not np.allclose(aff, affine, atol=1e-3):
            raise DatasetError(f"{path}: affine differs from {case.images[0]}'s")
        if arrays[-1].shape != arrays[0].shape:
            raise DatasetError(f"{path}: shape {arrays[-1].shape} differs from {case.images[0]}'s {arrays[0].shape}")
    image = np.stack(arrays)
    if len(image) != len(case.modalities):
        raise DatasetError(f"{case.images[0]}: {len(image)} channel(s), the dataset.json names {len(case.modalities)}")
    label = None
    if case.label is not None:
        lab, lab_aff = _load_nifti(case.label)
        if lab.ndim == 4 and lab.shape[-1] == 1:
            lab = lab[..., 0]
        if lab.shape != image.shape[1:]:
            raise DatasetError(f"{case.label}: label shape {lab.shape} differs from image shape {image.shape[1:]}")
        if not np.allclose(lab_aff, affine, atol=1e-3):
            raise DatasetError(f"{case.label}: label affine differs from the image's ({case.images[0]})")
        values = np.unique(lab)
        bad = [v for v in values.tolist() if v != int(v) or not 0 <= v < num_classes]
        if bad:
            raise DatasetError(
                f"{case.label}: label values {bad[:5]} outside the {num_classes} classes 0..{num_classes - 1}"
            )
        label = lab.astype(np.uint8)
    return image, label, affine


def ras_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing in mm along the axes of the RAS-reoriented volume."""
    nib = require("nibabel", "med", "reading NIfTI volumes")
    zooms = np.sqrt((affine[:3, :3] ** 2).sum(0))
    ornt = nib.io_orientation(affine)
    out = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(ornt):
        out[int(target)] = float(zooms[axis])
    return tuple(out)


def header_geometry(case: Case) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """The RAS spacing (mm) and RAS shape of ``case``, read from its first image's header only."""
    nib = require("nibabel", "med", "reading NIfTI volumes")
    try:
        img = nib.load(str(case.images[0]))
        affine, shape = np.asarray(img.affine), img.shape[:3]
    except Exception as e:
        raise DatasetError(f"{case.images[0]}: not a readable NIfTI header ({type(e).__name__}: {e})") from None
    ornt = nib.io_orientation(affine)
    ras_shape = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        ras_shape[int(target)] = int(shape[axis])
    return ras_spacing(affine), tuple(ras_shape)


def plan_geometry(ds: VolumeDataset, ids: Sequence[str], spacing: Sequence[float] | None = None):
    """nnU-Net's defaults from the headers of ``ids``: the median spacing (unless ``spacing`` is given) and the
    median shape after resampling to it (before foreground cropping)."""
    geo = [header_geometry(ds.cases[i]) for i in ids]
    sp = np.array([g[0] for g in geo])
    target = np.median(sp, 0) if spacing is None else np.asarray(spacing, dtype=float)
    shapes = np.array([g[1] for g in geo]) * sp / target
    return tuple(float(s) for s in target), [int(math.ceil(s)) for s in np.median(shapes, 0)]


def _locations(label: torch.Tensor, num_classes: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for c in range(1, num_classes):
        where = torch.nonzero(label == c).to(torch.int32)
        if len(where) > MAX_LOCATIONS:
            where = where[torch.randperm(len(where), generator=g)[:MAX_LOCATIONS]]
        if len(where):
            out[str(c)] = where
    return out


def preprocess_case(case: Case, num_classes: int, prep: Preprocessing) -> dict[str, Any]:
    """One case read, checked, reoriented, resampled, cropped and normalised (see the module docstring)."""
    require("monai", "med", "3D preprocessing")
    from monai.data import MetaTensor
    from monai.transforms import Orientationd, Spacingd

    image, label, affine = read_case(case, num_classes)
    d = {"image": MetaTensor(torch.from_numpy(image), affine=torch.from_numpy(affine))}
    keys = ["image"]
    if label is not None:
        d["label"] = MetaTensor(torch.from_numpy(label[None].astype(np.float32)), affine=torch.from_numpy(affine))
        keys.append("label")
    d = Orientationd(keys, axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S")))(d)
    if not np.allclose(ras_spacing(np.asarray(d["image"].affine)), prep.spacing, rtol=1e-3):
        modes = ["bilinear", "nearest"][: len(keys)]
        d = Spacingd(keys, pixdim=prep.spacing, mode=modes, dtype=np.float32)(d)
    img = d["image"].as_tensor().float()
    lab = d["label"].as_tensor()[0].round().to(torch.uint8) if label is not None else None
    if prep.crop_foreground:
        nz = torch.nonzero((img != 0).any(0))
        if len(nz):
            lo, hi = nz.min(0).values.tolist(), (nz.max(0).values + 1).tolist()
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            img = img[(slice(None), *sl)]
            lab = lab[sl] if lab is not None else None
    out = torch.empty_like(img)
    for c, modality in enumerate(case.modalities):
        x = img[c]
        if modality.upper() == "CT":
            a, b = prep.ct_window
            out[c] = (x.clamp(a, b) - a) / (b - a)
        else:  # MRI and anything else: z-score over the volume
            out[c] = (x - x.mean()) / x.std().clamp_min(1e-8)
    rec = {"id": case.id, "image": out.contiguous(), "spacing": list(prep.spacing), "modalities": list(case.modalities)}
    if lab is not None:
        rec["label"] = lab.contiguous()
        rec["locations"] = _locations(lab, num_classes, int(hashlib.sha1(case.id.encode()).hexdigest()[:8], 16))
    return rec


def _fingerprint(ds: VolumeDataset, ids: Sequence[str], prep: Preprocessing) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "layout": ds.layout, "classes": ds.classes, **prep.key()}).encode())
    for cid in ids:
        c = ds.cases[cid]
        for p in [*c.images, c.label]:
            if p is not None:
                st = p.stat()
                h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def preprocess_all(
    ds: VolumeDataset, ids: Sequence[str], prep: Preprocessing, cache_dir: str | os.PathLike | None = None, log=None
) -> dict[str, dict[str, Any]]:
    """Every case of ``ids`` preprocessed, read from the cache when it is there (written there otherwise).

    The cache folder is keyed by the files (path, size, mtime) and ``prep``, one ``.pt`` per case; cached
    volumes are memory-mapped, so a large dataset is paged in as patches are cut.
    """
    root = cache_root(cache_dir)
    folder = root / "volumetric" / f"{ds.layout}-{_fingerprint(ds, sorted(ds.cases), prep)}"
    out = {}
    made = 0
    for cid in ids:
        path = folder / f"{cid}.pt"
        if path.exists():
            try:
                out[cid] = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                continue
            except Exception:  # a damaged cache file is rebuilt
                pass
        rec = preprocess_case(ds.cases[cid], ds.num_classes, prep)
        atomic_save(rec, path)
        out[cid] = rec
        made += 1
    if made and log is not None:
        log(f"preprocessed {made} volume(s) into {folder}")
    return out


# ------------------------------------------------------------------------------------------ patches


@dataclass
class Augment:
    """nnU-Net-like patch augmentation, each transform with its probability (MONAI transforms)."""

    rotation: float = 30.0  # degrees, each axis, p=0.2
    scale: tuple[float, float] = (0.7, 1.4)  # zoom, p=0.2
    flip: bool = True  # each axis, p=0.5
    intensity: bool = True  # noise p=0.1, brightness x[0.75, 1.25] p=0.15, gamma [0.7, 1.5] p=0.3

    def compose(self):
        require("monai", "med", "3D augmentation")
        from monai.transforms import (
            Compose,
            RandAdjustContrastd,
            RandFlipd,
            RandGaussianNoised,
            RandRotated,
            RandScaleIntensityd,
            RandZoomd,
        )

        both, t = ["image", "label"], []
        if self.rotation > 0:
            r = math.radians(self.rotation)
            t.append(RandRotated(both, r, r, r, prob=0.2, mode=["bilinear", "nearest"], padding_mode="zeros"))
        if self.scale[0] != 1 or self.scale[1] != 1:
            t.append(
                RandZoomd(both, prob=0.2, min_zoom=self.scale[0], max_zoom=self.scale[1], mode=["trilinear", "nearest"],
                          padding_mode="constant")
            )  # fmt: skip
        if self.intensity:
            t += [
                RandGaussianNoised("image", prob=0.1, std=0.1),
                RandScaleIntensityd("image", factors=0.25, prob=0.15),
                RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
            ]
        if self.flip:
            t += [RandFlipd(both, prob=0.5, spatial_axis=a) for a in range(3)]
        return Compose(t) if t else None


def crop_patch(
    image: torch.Tensor, label: torch.Tensor, patch: Sequence[int], start: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch of size ``patch`` whose lower corner is ``start`` (may lie outside: zero padded)."""
    shape = image.shape[1:]
    out_img = image.new_zeros((image.shape[0], *patch))
    out_lab = label.new_zeros(tuple(patch))
    src, dst = [], []
    for s, p, n in zip(start, patch, shape):
        a, b = max(s, 0), min(s + p, n)
        src.append(slice(a, b))
        dst.append(slice(a - s, b - s))
    out_img[(slice(None), *dst)] = image[(slice(None), *src)]
    out_lab[tuple(dst)] = label[tuple(src)]
    return out_img, out_lab


def patch_start(
    shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator, center: Sequence[int] | None = None
) -> list[int]:
    """A random lower corner: anywhere the patch fits (centred when the volume is smaller), or around ``center``."""
    start = []
    for d, (n, p) in enumerate(zip(shape, patch)):
        lo, hi = min(0, n - p), max(0, n - p)  # a smaller volume sits inside the patch, padded
        if center is None:
            s = int(rng.integers(lo, hi + 1)) if n >= p else (n - p) // 2
        else:
            s = min(max(int(center[d]) - p // 2, lo), hi)
        start.append(s)
    return start


def _plain(x) -> torch.Tensor:
    """A MONAI MetaTensor as a plain tensor (batches and losses want no metadata)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)


class PatchSampler:
    """Training batches of random patches, every choice a function of (seed, epoch, step, sample)."""

    def __init__(
        self,
        volumes: Sequence[dict[str, Any]],
        patch_size: Sequence[int],
        batch_size: int,
        steps: int,
        *,
        seed: int = 0,
        oversample: float = 1 / 3,
        augment: Augment | None = None,
        dist: Dist | None = None,
        device: torch.device | str = "cpu",
    ):
        if not volumes:
            raise DatasetError("no training volumes to sample patches from")
        self.volumes, self.patch = list(volumes), tuple(int(p) for p in patch_size)
        self.batch_size, self.steps, self.seed, self.oversample = batch_size, steps, seed, oversample
        self.transform = augment.compose() if augment is not None else None
        self.dist, self.device = dist or Dist(), torch.device(device)

    def __len__(self) -> int:
        return self.steps

    def sample(self, index: int, force_fg: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One patch of volume ``index`` (centred on a random foreground class voxel if ``force_fg``)."""
        vol = self.volumes[index]
        image, label = vol["image"], vol["label"]
        rng = np.random.default_rng(seed)
        center = None
        locs = vol.get("locations", {})
        if force_fg and locs:
            cls = sorted(locs, key=int)[int(rng.integers(len(locs)))]
            pts = locs[cls]
            center = pts[int(rng.integers(len(pts)))].tolist()
        start = patch_start(image.shape[1:], self.patch, rng, center)
        x, y = crop_patch(image, label, self.patch, start)
        if self.transform is not None:
            self.transform.set_random_state(seed=seed % 2**32)
            d = self.transform({"image": x, "label": y[None].float()})
            x, y = _plain(d["image"]).float(), _plain(d["label"])[0].round().long()
        return x, y.long()

    def plan(self, epoch: int, step: int) -> list[tuple[int, bool, int]]:
        """The global batch ``step`` of ``epoch``: (volume index, force foreground, sample seed) per sample."""
        rng = np.random.default_rng(mix_seed(self.seed, epoch, step))
        n = self.batch_size
        which = rng.integers(len(self.volumes), size=n)
        seeds = rng.integers(2**62, size=n)
        fg_from = round(n * (1 - self.oversample))  # nnU-Net: the last third of each batch sees foreground
        return [(int(which[i]), i >= fg_from, int(seeds[i])) for i in range(n)]

    def batch(self, epoch: int, step: int) -> Batch:
        plan = self.plan(epoch, step)
        share = self.dist.shard(len(plan)).tolist()
        xs, ys = zip(*(self.sample(*plan[i]) for i in share)) if share else ((), ())
        if not share:
            c = self.volumes[0]["image"].shape[0]
            return Batch(torch.zeros(0, c, *self.patch, device=self.device),
                         torch.zeros(0, *self.patch, dtype=torch.long, device=self.device), len(plan))  # fmt: skip
        return Batch(torch.stack(xs).to(self.device), torch.stack(ys).to(self.device), len(plan))

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        for b in range(start, self.steps):
            yield self.batch(epoch, b)
