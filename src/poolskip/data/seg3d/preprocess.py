"""3D preprocessing, once per case, cached.

Preprocessing (MONAI transforms, once per case, cached with :func:`poolskip.files.atomic_save`): RAS
orientation, resampling to the target spacing (trilinear image, nearest label), cropping to the box of the
image's non-zero voxels and the label's foreground (no label voxel is cut off: evaluation scores these volumes,
so a dropped voxel would be a silently missing part of the reference), then per channel a CT window clipped and
scaled to [0, 1] or a per-volume z-score. Each cached case also holds up to 10,000 voxel positions per foreground
class for oversampling.

Evaluation scores in each case's own voxel grid, as nnU-Net and the paper's Table 3 do: a resampled case also
keeps its label as read (RAS-oriented, not resampled) and the geometry to go back, and :func:`to_original`
puts a prediction's probabilities back into the uncropped grid (background outside the crop), resamples them
(trilinear, MONAI's ``SpatialResample`` between the two affines ``Spacingd`` mapped) and takes the argmax there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...files import atomic_save
from ...optional import require
from ..cache import cache_root
from ..errors import DatasetError
from .readers import Case, VolumeDataset

__all__ = [
    "Preprocessing",
    "header_geometry",
    "plan_geometry",
    "preprocess_all",
    "preprocess_case",
    "ras_spacing",
    "read_case",
    "to_original",
]

# 2: cases are checked finite when cached (a cache of 1 may hold NaN volumes); 3: the crop keeps every label voxel;
# 4: a resampled case keeps its label as read and the geometry back to it (evaluation scores there)
CACHE_VERSION = 4
#: Classes resampled together by :func:`to_original` (one resampling grid for them): 14 classes from 259x259x150 back
#: to a 512x512x150 CT took 52.6 s one at a time, 33.2 s four at a time (2 CPU threads; peak RSS 2.8 -> 3.8 GiB);
#: all 14 in one pass would hold 14 volumes of the CT's size.
CLASSES_AT_ONCE = 4
MAX_LOCATIONS = 10_000


@dataclass(frozen=True)
class Preprocessing:
    """How volumes are prepared, the key of the cache."""

    spacing: tuple[float, float, float]
    ct_window: tuple[float, float] = (-175.0, 250.0)  # MONAI's BTCV tutorial
    crop_foreground: bool = True

    def key(self) -> dict[str, Any]:
        return {"spacing": list(self.spacing), "ct_window": list(self.ct_window), "crop": self.crop_foreground}

    def window(self, modality: str) -> tuple[float, float] | None:
        """The CT window a channel of ``modality`` is clipped to and scaled by, or None: a per-volume z-score."""
        return (float(self.ct_window[0]), float(self.ct_window[1])) if modality.upper() == "CT" else None

    def scheme(self, modality: str) -> str:
        """How a channel of ``modality`` is normalised, in words: ``CT window [-175, 250]`` or ``z-score``."""
        w = self.window(modality)
        return "z-score" if w is None else f"CT window [{w[0]:g}, {w[1]:g}]"

    def normalisation(self, ds: VolumeDataset) -> list[str]:
        """Each channel's normalisation over the cases of ``ds``: one scheme, or, where the cases' modalities
        call for several (AMOS: CT and MRI scans), ``CT: CT window [-175, 250]; MRI: z-score``."""
        out = []
        for c in range(len(ds.channels)):
            by_modality = {case.modalities[c]: self.scheme(case.modalities[c]) for case in ds.cases.values()}
            if len(set(by_modality.values())) == 1:
                out.append(next(iter(by_modality.values())))
            else:
                out.append("; ".join(f"{m}: {by_modality[m]}" for m in sorted(by_modality)))
        return out


def _load_nifti(path: Path, what: str):
    """``(array float32, affine)`` of the NIfTI file ``path`` (``what``: "image" or "label"), every voxel
    checked finite: one NaN would turn a z-scored volume into NaN, scored Dice 0 without a word."""
    nib = require("nibabel", "med", "reading NIfTI volumes")
    try:
        img = nib.load(str(path))
        arr = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as e:  # nibabel raises many types (gzip, zlib, EOF, ImageFileError) for a bad file
        raise DatasetError(f"{path}: not a readable NIfTI volume ({type(e).__name__}: {e})") from None
    if not np.isfinite(arr).all():
        nan = int(np.isnan(arr).sum())
        inf = int(np.isinf(arr).sum())
        raise DatasetError(
            f"{path}: {nan} NaN and {inf} Inf voxel(s) of {arr.size} (as float32); {what} volumes must hold "
            "finite numbers: fix the file or leave the case out of the dataset"
        )
    return arr, np.asarray(img.affine, dtype=np.float64)


def _check_dims(path: Path, shape: Sequence[int]) -> None:
    if len(shape) not in (3, 4):
        raise DatasetError(
            f"{path}: a {len(shape)}D image of shape {tuple(shape)}; the 3D task needs 3D volumes "
            "(4D: channels last, as many as the dataset.json names)"
        )


def _wrong_channels(case: Case, found: int) -> None:
    raise DatasetError(
        f"{case.images[0]}: {found} channel(s), but the dataset.json names {len(case.modalities)} "
        f"({', '.join(case.modalities)}); a multi-modal volume is 4D with one channel per modality, last"
    )


def _check_affine(path: Path, affine: np.ndarray) -> None:
    """A header whose voxel-to-mm affine has a NaN/inf or a zero axis cannot be reoriented nor resampled."""
    rotation = np.asarray(affine, dtype=float)[:3, :3]
    if not np.isfinite(rotation).all() or np.linalg.det(rotation) == 0:
        raise DatasetError(
            f"{path}: its header's voxel-to-mm affine {np.round(rotation, 4).tolist()} is "
            f"{'not finite' if not np.isfinite(rotation).all() else 'singular (an axis of spacing 0)'}; fix the "
            "header's spacing (pixdim / sform / qform)"
        )


def read_case(case: Case, num_classes: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(image (C, X, Y, Z) float32, label (X, Y, Z) uint8 or None, affine)``, checked against each other."""
    arrays, affine = [], None
    for path in case.images:
        arr, aff = _load_nifti(path, "image")
        _check_dims(path, arr.shape)
        if arr.ndim == 4:  # the Decathlon's multi-modal volumes: channels last
            arrays += [arr[..., c] for c in range(arr.shape[-1])]
        else:
            arrays.append(arr)
        if affine is None:
            _check_affine(path, aff)
            affine = aff
        elif not np.allclose(aff, affine, atol=1e-3):
            raise DatasetError(f"{path}: affine differs from {case.images[0]}'s")
        if arrays[-1].shape != arrays[0].shape:
            raise DatasetError(f"{path}: shape {arrays[-1].shape} differs from {case.images[0]}'s {arrays[0].shape}")
    image = np.stack(arrays)
    if len(image) != len(case.modalities):
        _wrong_channels(case, len(image))
    label = None
    if case.label is not None:
        lab, lab_aff = _load_nifti(case.label, "label")
        if lab.ndim == 4 and lab.shape[-1] == 1:
            lab = lab[..., 0]
        if lab.shape != image.shape[1:]:
            raise DatasetError(f"{case.label}: label shape {lab.shape} differs from image shape {image.shape[1:]}")
        if not np.allclose(lab_aff, affine, atol=1e-3):
            raise DatasetError(f"{case.label}: label affine differs from the image's ({case.images[0]})")
        values = np.unique(lab)
        fractions = [v for v in values.tolist() if v != int(v)]
        if fractions:
            raise DatasetError(
                f"{case.label}: label values {fractions[:5]} are not integers; a label map holds the class "
                f"numbers 0..{num_classes - 1}"
            )
        bad = [v for v in values.tolist() if not 0 <= v < num_classes]
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
        affine, shape = np.asarray(img.affine), img.shape
    except Exception as e:
        raise DatasetError(f"{case.images[0]}: not a readable NIfTI header ({type(e).__name__}: {e})") from None
    _check_dims(case.images[0], shape)
    _check_affine(case.images[0], affine)
    if len(case.images) == 1 and (shape[3] if len(shape) == 4 else 1) != len(case.modalities):
        _wrong_channels(case, shape[3] if len(shape) == 4 else 1)
    ornt = nib.io_orientation(affine)
    ras_shape = [0, 0, 0]
    for axis, (target, _) in enumerate(ornt):
        ras_shape[int(target)] = int(shape[axis])
    return ras_spacing(affine), tuple(ras_shape)


def plan_geometry(ds: VolumeDataset, ids: Sequence[str], spacing: Sequence[float] | None = None):
    """nnU-Net's defaults from the headers of ``ids``: see :func:`plan_from_headers`."""
    return plan_from_headers([header_geometry(ds.cases[i]) for i in ids], spacing)


def plan_from_headers(geo: Sequence[tuple[Sequence[float], Sequence[int]]], spacing: Sequence[float] | None = None):
    """nnU-Net's defaults from cases' ``(spacing, shape)`` (:func:`header_geometry`): the median spacing (unless
    ``spacing`` is given) and the median shape after resampling to it (before foreground cropping)."""
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


#: voxels of one channel after resampling above which a case is refused (8 GiB of float32; a CT is ~3e8)
MAX_RESAMPLED_VOXELS = 2**31


def resampled_size(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> list[int]:
    """Voxels per axis of a volume of ``shape`` at ``spacing`` mm once resampled to ``target`` mm."""
    return [round(n * s / t) for n, s, t in zip(shape, spacing, target)]


def _check_resampled_size(case: Case, shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]):
    """Refuse a header spacing (zero, non-finite, or absurd next to ``target``) that resampling cannot follow."""
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise DatasetError(f"{case.images[0]}: its affine gives voxel spacing {list(spacing)} mm; fix its header")
    new = resampled_size(shape, spacing, target)
    if math.prod(new) > MAX_RESAMPLED_VOXELS:
        raise DatasetError(
            f"{case.images[0]}: resampling its {list(shape)} voxels of spacing {list(spacing)} mm to "
            f"{list(target)} mm gives {new} voxels (more than {MAX_RESAMPLED_VOXELS:,}); check its header's "
            "spacing, or set segmentation3d.target_spacing"
        )


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
    original_affine = torch.as_tensor(np.asarray(d["image"].affine), dtype=torch.float64)
    original_spacing = ras_spacing(original_affine.numpy())
    _check_resampled_size(case, d["image"].shape[1:], original_spacing, prep.spacing)
    resampled = not np.allclose(original_spacing, prep.spacing, rtol=1e-3)
    geometry: dict[str, Any] = {"resampled": resampled, "original_spacing": list(original_spacing)}
    if resampled:
        if label is not None:  # what evaluation scores against: the label as read, only reoriented
            geometry["original_label"] = d["label"].as_tensor()[0].round().to(torch.uint8).contiguous()
        geometry["original_affine"], geometry["original_shape"] = original_affine, list(d["image"].shape[1:])
        modes = ["bilinear", "nearest"][: len(keys)]
        d = Spacingd(keys, pixdim=prep.spacing, mode=modes, dtype=np.float32)(d)
        geometry["affine"] = torch.as_tensor(np.asarray(d["image"].affine), dtype=torch.float64)
    img = d["image"].as_tensor().float()
    lab = d["label"].as_tensor()[0].round().to(torch.uint8) if label is not None else None
    geometry["shape"], geometry["crop"] = list(img.shape[1:]), [[0, n] for n in img.shape[1:]]
    if prep.crop_foreground:
        keep = (img != 0).any(0)
        if lab is not None:  # a label voxel where the image is zero is kept: it is part of what evaluation scores
            keep |= lab > 0
        nz = torch.nonzero(keep)
        if len(nz):
            lo, hi = nz.min(0).values.tolist(), (nz.max(0).values + 1).tolist()
            sl = tuple(slice(a, b) for a, b in zip(lo, hi))
            img = img[(slice(None), *sl)]
            lab = lab[sl] if lab is not None else None
            geometry["crop"] = [[a, b] for a, b in zip(lo, hi)]
    out = torch.empty_like(img)
    for c, modality in enumerate(case.modalities):
        x = img[c]
        window = prep.window(modality)
        if window is not None:
            a, b = window
            out[c] = (x.clamp(a, b) - a) / (b - a)
        else:  # MRI and anything else: z-score over the volume
            out[c] = (x - x.mean()) / x.std().clamp_min(1e-8)
    if not torch.isfinite(out).all():  # finite input, but too large for float32 sums (|x| near 3e38)
        raise DatasetError(f"{case.images[0]}: normalising gave non-finite values (intensities too large for float32?)")
    rec = {"id": case.id, "image": out.contiguous(), "spacing": list(prep.spacing), "modalities": list(case.modalities),
           "geometry": geometry}  # fmt: skip
    if lab is not None:
        rec["label"] = lab.contiguous()
        rec["locations"] = _locations(lab, num_classes, int(hashlib.sha1(case.id.encode()).hexdigest()[:8], 16))
    return rec


def to_original(probs: torch.Tensor, rec: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """``(prediction, label, spacing)`` of one case in its own voxel grid (RAS-oriented), what evaluation scores:
    ``probs`` (K, X, Y, Z) are class probabilities over the preprocessed (resampled, cropped) volume of ``rec``
    (a :func:`preprocess_case` record with a label).

    A case that was not resampled is scored where it is (the crop keeps every label voxel, and outside it the
    prediction would be background: the same numbers); a resampled one has each class's probabilities put back
    into the uncropped grid (background 1, the rest 0 outside the crop), resampled trilinearly to the grid the
    case was read in, and the argmax taken there, :data:`CLASSES_AT_ONCE` classes at a time (one resampling grid
    for them; a few volumes of that size in memory, not one a class).
    """
    g = rec["geometry"]
    if not g["resampled"]:
        return probs.argmax(0), rec["label"], list(g["original_spacing"])
    from monai.data import MetaTensor
    from monai.transforms import SpatialResample

    resample = SpatialResample(mode="bilinear", padding_mode="border", dtype=torch.float32)
    inside = tuple(slice(a, b) for a, b in g["crop"])
    best = pred = None
    for first in range(0, probs.shape[0], CLASSES_AT_ONCE):
        chunk = probs[first : first + CLASSES_AT_ONCE]
        canvas = torch.zeros((len(chunk), *g["shape"]), dtype=torch.float32, device=probs.device)
        if first == 0:
            canvas[0] = 1.0  # outside the crop: background
        canvas[(slice(None), *inside)] = chunk.float()
        src = MetaTensor(canvas, affine=g["affine"].to(torch.float64))
        back = resample(src, dst_affine=g["original_affine"], spatial_size=g["original_shape"]).as_tensor()
        top, arg = back.max(0)
        if best is None:
            best, pred = top, arg.to(torch.uint8)
        else:
            better = top > best  # ties keep the lower class, as argmax does
            best, pred = torch.where(better, top, best), torch.where(better, (arg + first).to(torch.uint8), pred)
    return pred, g["original_label"], list(g["original_spacing"])


def _fingerprint(ds: VolumeDataset, ids: Sequence[str], prep: Preprocessing) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"v": CACHE_VERSION, "layout": ds.layout, "classes": ds.classes, **prep.key()}).encode())
    for cid in ids:
        c = ds.cases[cid]
        h.update(json.dumps(list(c.modalities)).encode())  # a channel's modality picks its CT window or z-score
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
