"""3D medical segmentation (the paper's Table 3): Dice + cross-entropy, sliding-window evaluation, Dice / NSD / IoU.

Data: a Decathlon, nnU-Net raw, BTCV or AMOS folder (:mod:`poolskip.data.seg3d`), preprocessed once
and cached. Splits: the layout's fixed test set (BTCV 12 of 30, AMOS its 120 validation scans, none for the
Decathlon and nnU-Net's raw layout) and a seeded k-fold cross-validation of the rest, in a JSON file that
every fold reuses (by default beside the cache, its name keyed by the case list; a file made for another
case list, fold count or seed is refused). ``fold: k`` trains on fold k's training part and evaluates on its
validation part; ``fold: -1`` trains on the whole training part and evaluates on the test set.

Training: random patches (foreground oversampling, nnU-Net-like augmentation), loss per sample =
``ce_weight * CE + dice_weight * (1 - soft Dice over the foreground classes)``; a deep-supervision model's
list of outputs (``nnunet``) gets nnU-Net's weights 1, 1/2, 1/4, ... with the lowest resolution at 0,
normalised, against nearest-downsampled labels.

Evaluation: every validation volume whole, by MONAI's ``sliding_window_inference`` (patch-sized windows,
``sw_overlap``, Gaussian weighting), argmax, then per foreground class and volume: Dice, IoU, and NSD at
``nsd_tolerance`` mm given the volume's spacing, so the tolerance is in mm (:mod:`poolskip.metrics`).
NaN handling: a class absent from both the prediction and the ground truth of a volume is NaN for all three
metrics and left out of that class's mean (present in only one of them: 0). A class's score is the mean over
the volumes where it is not NaN; ``dice``/``nsd``/``iou`` are the means over classes, in percent. Metrics
are computed in each case's own voxel grid at its own spacing, as nnU-Net does: the prediction's probabilities
are resampled back from the target spacing and uncropped (:func:`poolskip.data.seg3d.to_original`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, option
from ..data import Batch, DatasetError
from ..data.cache import cache_root
from ..data.seg3d import (
    PatchSampler,
    Preprocessing,
    Seg3dAugment,
    VolumeDataset,
    crop_patch,
    default_splits_name,
    header_geometry,
    load_volumes,
    make_splits,
    patch_start,
    plan_from_headers,
    plan_geometry,
    preprocess_all,
    read_splits,
    resampled_size,
    to_original,
)
from ..metrics import VolumeScores, score_volume
from ..optional import require
from ..progress import tick, track
from .base import (
    Autocast,
    ModelSpec,
    Monitor,
    NominalGeometry,
    PictureExamples,
    StateMismatch,
    TaskContext,
    check_state,
    register_task,
)

__all__ = [
    "DATA_KEYS",
    "Segmentation3dOptions",
    "Segmentation3dTask",
    "check_ensemble_members",
    "check_ensemble_test_set",
    "deep_supervision_weights",
    "ensemble",
    "sliding_windows",
]

#: The paper's datasets and the CPU stand-in as a cost estimate assumes them: training and evaluation volumes
#: of one fold (BTCV 18, AMOS 240, Hippocampus 260 cross-validated volumes in 5 folds), classes, channels,
#: the median shape the patch is planned from, capped at 128 (Hippocampus: nnU-Net's planned patch) and a
#: whole evaluation volume (CT: 512x512 slices, at most 200 slices after resampling: an upper bound we
#: choose, not a count). ``decathlon`` is the Decathlon's Hippocampus task, the recipes' stand-in. Used only
#: where the data folder is not there to tell (:func:`_read_geometry`).
NOMINAL = {
    "btcv": (14, 4, 14, 1, (128, 128, 128), (512, 512, 200)),
    "amos": (192, 48, 16, 1, (128, 128, 128), (512, 512, 200)),
    "decathlon": (208, 52, 3, 1, (40, 56, 40), (40, 56, 40)),
}


_WEIGHT_WHY = "nnU-Net weighs both terms 1; a weight scales the loss and so the learning rate"


@dataclass
class Segmentation3dOptions:
    """The 3D segmentation task's config section (``segmentation3d:``)."""

    fold: int = option(
        0, "cross-validation fold to train (its val part is evaluated); -1 = all, evaluate on test", min=-1
    )
    num_folds: int = option(5, "folds of the cross-validation", min=2)
    split_seed: int = option(0, "seed of the folds (and of BTCV's 12-case test choice)", min=0)
    split_file: str | None = option(
        None, "splits JSON, written if missing, reused if it fits (folds, seed, cases); null = beside the cache"
    )
    target_spacing: list[float] | None = option(None, "resample to this spacing in mm (RAS axes); null = median")
    patch_size: list[int] | None = option(None, "training patch / sliding window; null = median shape, capped")
    patch_max: int = option(128, "cap per axis of the planned patch size", min=8)
    patch_multiple: int = option(1, "round the patch up to a multiple of this (16 for vnet)", min=1)
    ct_window: list[float] = option([-175.0, 250.0], "CT channels: clip to [lo, hi] HU, scale to [0, 1]")
    iterations: int = option(250, "training steps per epoch (nnU-Net: 250)", min=1)
    oversample: float = option(1 / 3, "share of each batch centred on foreground (nnU-Net: 1/3)", min=0.0, max=1.0)
    rotation: float = option(30.0, "random rotation in [-deg, deg] per axis, p=0.2 (0 = off)", min=0.0, max=180.0)
    zoom: list[float] = option([0.7, 1.4], "random zoom range, p=0.2 ([1, 1] = off)")
    mirror: bool = option(True, "random flips along each axis, p=0.5")
    intensity_aug: bool = option(True, "Gaussian noise, brightness and gamma augmentation")
    dice_weight: float = option(1.0, "weight of (1 - soft Dice) in the loss", min=0.0, max=10.0, why=_WEIGHT_WHY)
    ce_weight: float = option(1.0, "weight of cross-entropy in the loss", min=0.0, max=10.0, why=_WEIGHT_WHY)
    sw_overlap: float = option(0.5, "sliding-window overlap", min=0.0, max=0.95)
    nsd_tolerance: float = option(
        1.0, "NSD tolerance in mm", above=0.0, max=50.0,
        why="the benchmarks use 1 to 5 mm; at a tolerance this wide every boundary counts as matching",
    )  # fmt: skip
    eval_subset: int | None = option(None, "evaluate only the first N evaluation volumes (quick runs)", min=1)

    def check(self) -> None:
        ts = self.target_spacing
        if ts is not None and (len(ts) != 3 or not all(math.isfinite(s) and s > 0 for s in ts)):
            raise ValueError(f"segmentation3d.target_spacing must be 3 positive finite numbers, got {ts}")
        if self.patch_size is not None and (len(self.patch_size) != 3 or min(self.patch_size) < 1):
            raise ValueError(f"segmentation3d.patch_size must be 3 positive ints, got {self.patch_size}")
        if len(self.ct_window) != 2 or self.ct_window[0] >= self.ct_window[1]:
            raise ValueError(f"segmentation3d.ct_window must be [lo, hi] with lo < hi, got {self.ct_window}")
        if len(self.zoom) != 2 or not 0 < self.zoom[0] <= self.zoom[1]:
            raise ValueError(f"segmentation3d.zoom must be [lo, hi] with 0 < lo <= hi, got {self.zoom}")
        if self.fold >= self.num_folds:
            raise ValueError(f"segmentation3d.fold must be < num_folds ({self.num_folds}) or -1, got {self.fold}")
        if self.dice_weight == 0 and self.ce_weight == 0:
            raise ValueError("segmentation3d.dice_weight and ce_weight cannot both be 0")


# ------------------------------------------------------------------------------------------ helpers


def sliding_windows(volume: Sequence[int], patch: Sequence[int], overlap: float) -> int:
    """Windows per volume of a sliding-window evaluation, as MONAI places them (step = patch * (1 - overlap))."""
    n = 1
    for v, p in zip(volume, patch):
        step = max(1, int(p * (1 - overlap)))
        n *= 1 if v <= p else math.ceil((v - p) / step) + 1
    return n


def _splits_path(
    ds: VolumeDataset, split_file: str | None, num_folds: int, split_seed: int, cache_dir: str | None
) -> Path:
    """The run's splits file: ``split_file``, else one beside the cache named by the case list, folds and seed."""
    return Path(split_file or cache_root(cache_dir) / "volumetric" / default_splits_name(ds, num_folds, split_seed))


def _fold_parts(ds: VolumeDataset, splits: dict, fold: int) -> tuple[list[str], list[str]]:
    """The training and evaluated case ids of ``fold`` in ``splits`` (-1: every training case, the test set
    evaluated)."""
    if fold >= 0:
        part = splits["folds"][fold]
        return list(part["train"]), list(part["val"])
    if not splits["test"]:
        raise DatasetError(
            f"segmentation3d.fold=-1 evaluates on the test set, but {ds.root} ({ds.layout}) has no labelled test "
            "set; train a fold (0..num_folds-1) instead"
        )
    return sorted(ds.train_ids), list(splits["test"])


@functools.lru_cache(maxsize=16)
def _dataset_headers(dataset: str, data_dir: str, split_seed: int) -> tuple[VolumeDataset, dict[str, Any]]:
    """The dataset at ``data_dir`` and a cache of its cases' NIfTI headers, filled as they are asked for: a dry
    run reads each header once, however many runs it sizes."""
    return load_volumes(dataset, data_dir, split_seed), {}


def _read_geometry(dataset: str, data_dir: str | None, cache_dir: str | None, o: Segmentation3dOptions):
    """``(n_train, n_eval, classes, channels, median shape, the evaluated volumes' shapes, target spacing, the
    evaluated case ids)`` of
    the run's fold, from the data folder's ``dataset.json`` and its images' NIfTI headers (no voxel read), at
    ``target_spacing`` (else the median spacing, as the task plans it). The fold is the run's: its splits file
    where one is there (``split_file``, or the one beside the cache; its folds may have been edited by hand),
    else the seeded split the run will write (:func:`~poolskip.data.seg3d.make_splits`); nothing is written.
    None where the folder or the splits file is not there or not readable (the run itself will say why)."""
    if not data_dir or not Path(data_dir).expanduser().is_dir():
        return None
    try:
        ds, headers = _dataset_headers(dataset, data_dir, o.split_seed)
        path = _splits_path(ds, o.split_file, o.num_folds, o.split_seed, cache_dir)
        if path.is_file():  # read_splits writes only a missing file
            splits = read_splits(path, ds, o.num_folds, o.split_seed)
        else:
            splits = make_splits(ds, o.num_folds, o.split_seed)
        train, evaluated = _fold_parts(ds, splits, o.fold)
        for i in {*ds.train_ids, *evaluated} - headers.keys():
            headers[i] = header_geometry(ds.cases[i])
    except (DatasetError, ValueError, OSError, ImportError, IndexError):
        return None
    spacing = None if o.target_spacing is None else tuple(float(v) for v in o.target_spacing)
    target, median = plan_from_headers([headers[i] for i in ds.train_ids], spacing)  # as the task plans
    volumes = [tuple(resampled_size(headers[i][1], headers[i][0], target)) for i in evaluated] or [tuple(median)]
    return len(train), len(evaluated), ds.num_classes, len(ds.channels), median, volumes, target, evaluated


@functools.lru_cache(maxsize=8)
def _timed_scoring(label: str, num_classes: int, tolerance: float) -> tuple[float, int]:
    """``(seconds, voxels)`` of :func:`~poolskip.metrics.score_volume` on the label map in the NIfTI file
    ``label`` (at its own spacing) against itself moved by one voxel along its first axis (after a call on a
    corner of it, which pays for importing MONAI's metrics once, as a run's first evaluation does)."""
    import time

    nib = require("nibabel", "med", "reading NIfTI volumes")
    img = nib.load(label)
    lab = torch.from_numpy(np.asarray(img.dataobj).reshape(img.shape[:3]).astype(np.uint8))
    spacing = [float(z) for z in img.header.get_zooms()[:3]]
    pred = torch.roll(lab, 1, 0)
    score_volume(pred[:4, :4, :4], lab[:4, :4, :4], num_classes, spacing, tolerance)  # imports MONAI's metrics
    t = time.perf_counter()
    score_volume(pred, lab, num_classes, spacing, tolerance)
    return time.perf_counter() - t, lab.numel()


@functools.lru_cache(maxsize=8)
def _timed_resampling(
    classes: int, shape: tuple[int, ...], spacing: tuple[float, ...], target: tuple[float, ...]
) -> float:
    """Seconds :func:`~poolskip.data.seg3d.to_original` takes a prediction of ``classes`` made at ``target`` mm
    back to a case of ``shape`` voxels at ``spacing`` mm (its whole grid the crop: the largest cost; after a call
    on a few voxels, which pays for importing MONAI's resampling once)."""
    import time

    def case(shape, spacing, target):
        new = resampled_size(shape, spacing, target)
        diag = [torch.diag(torch.tensor([*s, 1.0], dtype=torch.float64)) for s in (target, spacing)]
        geometry = {"resampled": True, "original_spacing": list(spacing), "shape": new, "crop": [[0, n] for n in new],
                    "affine": diag[0], "original_affine": diag[1], "original_shape": list(shape),
                    "original_label": None}  # fmt: skip
        return torch.rand(classes, *new).softmax(0), {"geometry": geometry}

    to_original(*case((4, 4, 4), spacing, spacing))
    probs, rec = case(shape, spacing, target)
    t = time.perf_counter()
    to_original(probs, rec)
    return time.perf_counter() - t


def _planned_patch(o: Segmentation3dOptions, median: Sequence[int], spacing: Sequence[float]) -> list[int]:
    """``patch_size``, else the median shape capped at ``patch_max``, rounded up to ``patch_multiple`` and padded
    as nnU-Net pads its planned patch (to the total stride)."""
    from ..models import get_planner  # the registry: nnU-Net's rule, without naming a model module

    if o.patch_size is not None:
        return list(o.patch_size)
    patch = [math.ceil(min(s, o.patch_max) / o.patch_multiple) * o.patch_multiple for s in median]
    return list(get_planner("nnunet_3d_fullres")(patch, spacing).patch_size)


def _window_batch(eval_batch_size: int) -> int:
    """Windows per forward pass of the sliding-window evaluation."""
    return max(1, min(eval_batch_size, 8))


def deep_supervision_weights(n: int) -> list[float]:
    """nnU-Net's deep-supervision weights for ``n`` outputs (full resolution first): 1/2^i, the last 0, sum 1."""
    w = [1 / 2**i for i in range(n)]
    if n > 1:
        w[-1] = 0.0
    s = sum(w)
    return [x / s for x in w]


# ------------------------------------------------------------------------------------------ the task


@register_task
class Segmentation3dTask:
    """3D segmentation of NIfTI volumes (Decathlon, nnU-Net raw, BTCV, AMOS), the paper's Table 3."""

    name = "segmentation3d"
    Options = Segmentation3dOptions
    monitor = Monitor("dice", "max")

    def __init__(self, ctx: TaskContext, state: dict | None = None):
        o, d = ctx.options, ctx.data
        self.options, self.device, self.dist = o, ctx.device, ctx.dist
        self.seed, self.eval_batch_size = ctx.seed, ctx.eval_batch_size
        self.ds = load_volumes(d.dataset, d.data_dir, o.split_seed)
        cache = cache_root(d.cache_dir)
        log = partial(print, file=sys.stderr, flush=True) if self.dist.is_main else None  # stdout stays the command's
        if state is not None:  # as the checkpoint was trained
            self.train_ids, self.eval_ids = list(state["train_ids"]), list(state["eval_ids"])
            spacing, patch = tuple(state["spacing"]), list(state["patch_size"])
            self.split_path = state.get("split_file")
        else:
            spacing, patch = self._plan()  # reads the training part's headers: a 2D image is refused before any write
            self.split_path = str(_splits_path(self.ds, o.split_file, o.num_folds, o.split_seed, d.cache_dir))
            splits = read_splits(self.split_path, self.ds, o.num_folds, o.split_seed)
            self.train_ids, self.eval_ids = _fold_parts(self.ds, splits, o.fold)
            if d.train_subset is not None:
                order = np.random.default_rng(o.split_seed).permutation(len(self.train_ids))
                self.train_ids = sorted(self.train_ids[i] for i in order[: d.train_subset])
            if o.eval_subset is not None:
                self.eval_ids = self.eval_ids[: o.eval_subset]
        self.prep = Preprocessing(spacing, tuple(o.ct_window))
        self.spacing, self.patch_size = spacing, [int(p) for p in patch]
        if state is not None:
            self._check_restored(state)  # before anything is preprocessed (and cached)
        self.train_vols = list(preprocess_all(self.ds, self.train_ids, self.prep, cache, log).values())
        self.eval_vols = list(preprocess_all(self.ds, self.eval_ids, self.prep, cache, log).values())
        if state is None and not any(v.get("locations") for v in self.train_vols):
            raise DatasetError(
                f"{self.ds.name} ({self.ds.root}): the {len(self.train_ids)} training volumes' labels hold only the "
                "background, no voxel of any foreground class; there is nothing to learn (check the labels, or the "
                "train_subset / fold that picked these cases)"
            )
        augment = Seg3dAugment(o.rotation, (o.zoom[0], o.zoom[1]), o.mirror, o.intensity_aug)
        self.sampler = PatchSampler(
            self.train_vols, self.patch_size, ctx.batch_size, o.iterations, seed=self.seed,
            oversample=o.oversample, augment=augment, dist=self.dist, device=self.device,
        )  # fmt: skip
        self._loss_fns: dict[str, Any] = {}

    # -- capability: HasNominalGeometry

    @classmethod
    def nominal_geometry(cls, ctx: TaskContext) -> NominalGeometry | None:
        """One fold of the dataset: patches of ``patch_size``, an epoch of ``iterations`` steps, each evaluation
        volume whole by sliding windows of the patch. Where the data folder is readable, its ``dataset.json`` and
        its images' headers tell the cases, classes, channels and the volumes' shapes at the target spacing (the
        windows: their mean over the volumes; the evaluation's memory: the largest volume) of the run's fold (as
        its splits file has it where one is there, else the seeded split), and a patch left unset is planned as
        the task plans it; elsewhere :data:`NOMINAL` assumes them (the patch: its median shape capped at
        ``patch_max`` and rounded up to ``patch_multiple``; None for a dataset it does not know)."""
        o, d = ctx.options, ctx.data
        read = _read_geometry(d.dataset, d.data_dir, d.cache_dir, o)
        if read is not None:  # the patch planned as the task plans it
            n_train, n_eval, classes, channels, median, volumes, target, _ = read
            patch = tuple(_planned_patch(o, median, target))
        elif d.dataset in NOMINAL:
            n_train, n_eval, classes, channels, median, volume = NOMINAL[d.dataset]
            volumes = [volume]
            m = o.patch_multiple
            patch = tuple(o.patch_size or (math.ceil(min(s, o.patch_max) / m) * m for s in median))
        else:
            return None
        if d.train_subset:
            n_train = min(n_train, d.train_subset)
        if o.eval_subset:
            n_eval = min(n_eval, o.eval_subset)
            volumes = volumes[: o.eval_subset]  # the first ones, as evaluated
        largest = tuple(int(v) for v in np.max(volumes, 0))
        windows = sum(sliding_windows(v, patch, o.sw_overlap) for v in volumes) / len(volumes)
        return NominalGeometry(
            classes, n_train, n_eval, (channels, *patch), (channels, *largest), steps_per_epoch=o.iterations,
            eval_batch=_window_batch(ctx.eval_batch_size), eval_window=(channels, *patch),
            eval_windows=windows,
        )  # fmt: skip

    # -- capability: HasScoringCost

    @classmethod
    def scoring_seconds(cls, ctx: TaskContext) -> float | None:
        """Seconds to score one evaluation volume after its forward pass (Dice, IoU and NSD in the case's own
        grid): :func:`~poolskip.metrics.score_volume` timed on the first evaluated case's label as read, against
        itself moved by one voxel (surfaces near, as a prediction's), scaled by voxels to the mean of the
        evaluated cases; plus, for the evaluated cases read at another spacing than the target one, taking the
        probabilities back to their grid (:func:`~poolskip.data.seg3d.to_original`, timed on the first such case's
        sizes, scaled by voxels). None where the data folder cannot be read."""
        o, d = ctx.options, ctx.data
        read = _read_geometry(d.dataset, d.data_dir, d.cache_dir, o)
        if read is None or not read[-1]:
            return None
        target = read[6]
        evaluated = read[-1][: o.eval_subset] if o.eval_subset else read[-1]
        ds, headers = _dataset_headers(d.dataset, d.data_dir, o.split_seed)
        seconds, voxels = _timed_scoring(str(ds.cases[evaluated[0]].label), ds.num_classes, o.nsd_tolerance)
        seconds = seconds * float(np.mean([math.prod(headers[i][1]) for i in evaluated])) / voxels
        moved = [i for i in evaluated if not np.allclose(headers[i][0], target, rtol=1e-3)]  # as preprocessing
        if moved:
            spacing, shape = headers[moved[0]]
            back = _timed_resampling(ds.num_classes, tuple(shape), tuple(spacing), tuple(target))
            seconds += back * sum(math.prod(headers[i][1]) for i in moved) / math.prod(shape) / len(evaluated)
        return seconds

    # -- capability: CrossValidated

    @classmethod
    def num_folds(cls, options: Segmentation3dOptions) -> int:
        return options.num_folds

    @classmethod
    def fold_options(
        cls,
        options: Segmentation3dOptions,
        fold: int | None,
        split_file: str | None = None,
        replace_split_file: bool = False,
    ) -> Segmentation3dOptions:
        """``options`` for fold ``fold`` (None: all folds, evaluated on the whole test set, i.e. ``fold: -1``
        without the folds' ``eval_subset``: an ensemble is scored on every test volume); ``split_file`` is the
        splits file every fold shares, used where the options name none (or instead of theirs:
        ``replace_split_file``)."""
        if fold is not None and not 0 <= fold < options.num_folds:
            raise ValueError(f"segmentation3d has folds 0..{options.num_folds - 1}, got fold {fold}")
        split_file = split_file if replace_split_file else options.split_file or split_file
        if fold is None:
            return dataclasses.replace(options, fold=-1, split_file=split_file, eval_subset=None)
        return dataclasses.replace(options, fold=fold, split_file=split_file)

    @classmethod
    def test_cases(cls, ctx: TaskContext) -> list[str] | None:
        """The layout's fixed labelled test set (BTCV's 12 of 30 scans, AMOS' 120 validation scans; none for the
        Decathlon and nnU-Net's raw layout), from the data folder's ``dataset.json``; None where it cannot be
        read."""
        d = ctx.data
        if not d.data_dir or not Path(d.data_dir).expanduser().is_dir():
            return None
        try:
            ds, _ = _dataset_headers(d.dataset, d.data_dir, ctx.options.split_seed)
        except (DatasetError, ValueError, OSError, ImportError):
            return None
        return sorted(ds.test_ids)

    def _plan(self) -> tuple[tuple[float, ...], list[int]]:
        """Spacing and patch, planned once per dataset from the whole training part (every fold: one network)."""
        spacing, median = plan_geometry(self.ds, self.ds.train_ids, self.options.target_spacing)
        return spacing, _planned_patch(self.options, median, spacing)

    # -- the contract

    def model_spec(self) -> ModelSpec:
        hints = {"patch_size": tuple(self.patch_size), "spacing": tuple(self.spacing)}
        return ModelSpec(
            in_channels=len(self.ds.channels), num_classes=self.ds.num_classes, spatial_dims=3, hints=hints
        )

    def state(self) -> dict[str, Any]:
        """The split (``train_ids``, ``eval_ids``, ``split_file``, ``fold``), the plan (``spacing``,
        ``patch_size``) and the data's identity (:data:`DATA_KEYS`: layout, dataset name, every case id, the
        channels, each channel's normalisation, the classes) with the layout's fixed ``test_ids``: what
        ``eval`` and ``ensemble`` check the data and the other members against."""
        return {
            "train_ids": list(self.train_ids), "eval_ids": list(self.eval_ids), "spacing": list(self.spacing),
            "patch_size": list(self.patch_size), "classes": list(self.ds.classes), "channels": list(self.ds.channels),
            "split_file": self.split_path, "fold": self.options.fold, "layout": self.ds.layout,
            "dataset": self.ds.name, "cases": sorted(self.ds.cases), "test_ids": sorted(self.ds.test_ids),
            "normalisation": self.prep.normalisation(self.ds),
        }  # fmt: skip

    def _check_restored(self, state: Mapping[str, Any]) -> None:
        """Refuse data unlike the data the checkpoint's model was trained on: other channels, normalisation
        or classes (a state without ``normalisation``, written before it was recorded, is compared by its
        channels, which decide the normalisation), or without the cases the state's split names."""
        where = f"the {self.ds.layout} data at {self.ds.root}"
        found = {"channels": list(self.ds.channels), "normalisation": self.prep.normalisation(self.ds),
                 "classes": list(self.ds.classes)}  # fmt: skip
        check_state({k: list(v) for k, v in state.items() if k in found}, found, where)
        missing = sorted((set(state["train_ids"]) | set(state["eval_ids"])) - set(self.ds.cases))
        if missing:
            raise StateMismatch(
                f"the checkpoint's split names {len(missing)} case(s) that {where} lacks ({_few(missing)}); "
                "point --data-dir/--dataset at the data it was trained on"
            )

    def describe(self) -> str:
        o, p = self.options, "x".join(map(str, self.patch_size))
        which = f"fold {o.fold} of {o.num_folds}" if o.fold >= 0 else "all folds, test set"
        sp = "x".join(f"{s:g}" for s in self.spacing)
        return (
            f"{self.ds.name} ({self.ds.layout}): {len(self.train_ids)} train / {len(self.eval_ids)} eval volumes "
            f"({which}), {self.ds.num_classes} classes, patch {p} at {sp} mm; splits {self.split_path}"
        )

    def steps_per_epoch(self) -> int:
        return len(self.sampler)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        return self.sampler.batches(epoch, start)

    def _dice_loss(self):
        if "dice" not in self._loss_fns:
            losses = require("monai.losses", "med", "the 3D segmentation loss")
            self._loss_fns["dice"] = losses.DiceLoss(
                include_background=False, to_onehot_y=True, softmax=True, reduction="none", smooth_nr=1e-5,
                smooth_dr=1e-5,
            )  # fmt: skip
        return self._loss_fns["dice"]

    def _loss_one(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = out.float()
        if target.shape[1:] != out.shape[2:]:
            target = F.interpolate(target[:, None].float(), size=out.shape[2:], mode="nearest")[:, 0].long()
        o = self.options
        total = out.new_zeros(out.shape[0])
        if o.ce_weight:
            total = total + o.ce_weight * F.cross_entropy(out, target, reduction="none").flatten(1).mean(1)
        if o.dice_weight:
            total = total + o.dice_weight * self._dice_loss()(out, target[:, None]).flatten(1).mean(1)
        return total

    def loss(self, outputs: Any, targets: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, (list, tuple)):
            weights = deep_supervision_weights(len(outputs))
            return sum(w * self._loss_one(out, targets) for w, out in zip(weights, outputs) if w)
        return self._loss_one(outputs, targets)

    def predict(self, model: nn.Module, image: torch.Tensor, autocast: Autocast) -> torch.Tensor:
        """Softmax probabilities (K, X, Y, Z) of one volume ``image`` (C, X, Y, Z) by Gaussian sliding window."""
        inferers = require("monai.inferers", "med", "sliding-window inference")

        windows = 0

        def predictor(x: torch.Tensor) -> torch.Tensor:
            nonlocal windows
            windows += len(x)
            tick(f"{windows} windows")  # on a terminal, inside the evaluation's progress bar
            with autocast():
                out = model(x)
            return (out[0] if isinstance(out, (list, tuple)) else out).float()

        logits = inferers.sliding_window_inference(
            image[None].to(self.device), self.patch_size, _window_batch(self.eval_batch_size), predictor,
            overlap=self.options.sw_overlap, mode="gaussian",
        )  # fmt: skip
        return torch.softmax(torch.as_tensor(logits).float()[0], 0)

    def score(self, probs: torch.Tensor, vol: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prediction, per-class scores)`` of class probabilities ``probs`` over the evaluation volume ``vol``:
        the argmax in the case's own grid (:func:`~poolskip.data.seg3d.to_original`) and its
        :func:`~poolskip.metrics.score_volume` against the label as read, at the case's spacing."""
        pred, label, spacing = to_original(probs, vol)
        return pred, score_volume(pred, label, self.ds.num_classes, spacing, self.options.nsd_tolerance)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, autocast: Autocast) -> dict[str, Any]:
        scores = VolumeScores(self.ds.num_classes, self.ds.classes, device=self.device)
        mine = self.dist.every_nth(self.eval_vols)  # this process's share
        for vol in track(mine, len(mine), "eval", "volumes"):
            scores.add(self.score(self.predict(model, vol["image"], autocast), vol)[1])
        self.dist.all_reduce_sum(scores.totals)
        return scores.result()

    def probe_batch(self, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng(seed)
        xs, ys = [], []
        for _ in range(n):
            vol = self.eval_vols[int(rng.integers(len(self.eval_vols)))]
            locs = vol.get("locations", {})
            center = None
            if locs:
                pts = locs[sorted(locs, key=int)[int(rng.integers(len(locs)))]]
                center = pts[int(rng.integers(len(pts)))].tolist()
            x, y = crop_patch(
                vol["image"],
                vol["label"],
                self.patch_size,
                patch_start(vol["image"].shape[1:], self.patch_size, rng, center),
            )
            xs.append(x)
            ys.append(y.long())
        return torch.stack(xs).to(self.device), torch.stack(ys).to(self.device)

    def probe_loss(self, outputs: Any, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(outputs, targets).mean()

    # -- capability: PicturesPredictions

    @torch.no_grad()
    def prediction_examples(self, models: Mapping[str, nn.Module], count: int = 3) -> PictureExamples:
        """The first evaluation volume with its label map and every model's prediction; ``slices``: the
        ``count`` axial slices with the most foreground, in order."""
        from contextlib import nullcontext

        vol = self.eval_vols[0]
        preds = {k: self.predict(m, vol["image"], nullcontext).argmax(0).cpu() for k, m in models.items()}
        area = (vol["label"] > 0).flatten(0, 1).sum(0)
        slices = sorted(torch.argsort(area, descending=True)[:count].tolist())
        samples = [{"image": vol["image"][0], "target": vol["label"], "preds": preds, "slices": slices}]
        return PictureExamples(3, samples, classes=list(self.ds.classes))


# ------------------------------------------------------------------------------------------ folds, ensemble

#: the task-state keys every member of an ensemble and the test set it is scored on must share (in this order
#: of checking); a state written before a key was recorded is compared by the keys it has
DATA_KEYS = ("layout", "dataset", "cases", "channels", "normalisation", "classes", "spacing", "patch_size")

Member = tuple[str, Mapping[str, Any]]  # (run directory as the user named it, its checkpoint's task state)


def _plain(key: str, value: Any) -> Any:
    """``value`` of state key ``key`` in a form two states compare by (spacing to 1e-6 mm, case ids as a set)."""
    if key == "spacing":
        return [round(float(v), 6) for v in value]
    if key == "patch_size":
        return [int(v) for v in value]
    if key == "cases":
        return set(value)
    return list(value) if isinstance(value, (list, tuple)) else value


def _show(key: str, value: Any) -> str:
    if key == "cases":
        return f"{len(value)} cases"
    if key in ("spacing", "patch_size"):
        return "x".join(f"{float(v):g}" for v in value) + (" mm" if key == "spacing" else "")
    return repr(list(value) if isinstance(value, (list, tuple)) else value)


def _few(ids: Sequence[str], n: int = 3) -> str:
    return ", ".join(ids[:n]) + (f", ... ({len(ids)} in all)" if len(ids) > n else "")


def _difference(a: Mapping[str, Any], b: Mapping[str, Any], other: str) -> str | None:
    """The first of :data:`DATA_KEYS` that states ``a`` (of ``other``) and ``b`` both record and differ in,
    in words."""
    for key in DATA_KEYS:
        if key in a and key in b and _plain(key, a[key]) != _plain(key, b[key]):
            if key == "cases":
                only_b, only_a = sorted(set(b[key]) - set(a[key])), sorted(set(a[key]) - set(b[key]))
                parts = [f"{len(only_b)} only in its data ({_few(only_b)})"] if only_b else []
                parts += [f"{len(only_a)} only in {other} ({_few(only_a)})"] if only_a else []
                return f"its data has {len(b[key])} cases where {other} has {len(a[key])}, {'; '.join(parts)}"
            return f"its {key.replace('_size', '')} {_show(key, b[key])} where {other} has {_show(key, a[key])}"
    return None


def _same_fold(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two states are one fold: the same training cases, or the same held-out (validation) cases of a
    fold (its training part cut by another ``train_subset``, or its validation part by another ``eval_subset``
    still leaves one of the two equal)."""
    if set(a["train_ids"]) == set(b["train_ids"]):
        return True
    held_out = a.get("fold", 0) >= 0 and b.get("fold", 0) >= 0 and a["eval_ids"]
    return bool(held_out) and set(a["eval_ids"]) == set(b["eval_ids"])


def _fold(state: Mapping[str, Any]) -> str:
    k = state.get("fold")
    return "all folds (fold -1)" if k == -1 else f"fold {k} of splits {state.get('split_file')}"


def _check_unseen(members: Sequence[Member], test_ids: Sequence[str], what: str) -> None:
    test = set(test_ids)
    for name, s in members:
        seen = set(s["train_ids"]) | (set(s["eval_ids"]) if s.get("fold", 0) >= 0 else set())
        leaked = sorted(seen & test)
        if leaked:
            raise ConfigError(
                f"ensemble member {name} was trained or validated on {len(leaked)} of the {len(test)} cases of "
                f"{what} ({_few(leaked)}): its split ({_fold(s)}) is not the one whose test set is scored; "
                "ensemble the folds of one split (one `poolskip train --folds` run)"
            )


def check_ensemble_members(members: Sequence[Member]) -> None:
    """Refuse, before any model predicts, an ensemble whose members (run directory, task state) are not folds of
    one run on one dataset: a :class:`~poolskip.config.ConfigError` naming the member and the reason when

    - a member's data differs from the first member's in any of :data:`DATA_KEYS` (layout, dataset name,
      the data folder's case ids, channels, each channel's normalisation, classes, spacing, patch size);
    - two members are the same fold (the same training or the same validation cases: one run given twice,
      a copy of it, or the same fold trained again); an ensemble averages different folds;
    - a member was trained or validated on a case of the first member's test set (folds of another split
      seed on BTCV, whose test choice follows the seed).

    Members of different splits that saw no test case (AMOS's fixed test set) are accepted. States written
    before ``normalisation``, ``cases`` and ``layout`` were recorded are compared by the keys they have (the
    channels, which decide the normalisation, the classes, spacing and patch).
    """
    first, ref = members[0]
    for name, state in members[1:]:
        why = _difference(ref, state, first)
        if why is not None:
            raise ConfigError(f"ensemble member {name}: {why}; an ensemble's members are folds of one run")
    for i, (name, state) in enumerate(members):
        for other, earlier in members[:i]:
            if _same_fold(earlier, state):
                same = "is given twice" if other == name else f"is the same fold as {other}"
                raise ConfigError(
                    f"ensemble member {name} {same} ({_fold(state)}, {len(state['train_ids'])} training and "
                    f"{len(state['eval_ids'])} validation cases): an ensemble averages different folds; leave one out"
                )
    if "test_ids" in ref:
        _check_unseen(members, ref["test_ids"], f"{first}'s test set")


def check_ensemble_test_set(task: Segmentation3dTask, members: Sequence[Member]) -> None:
    """Refuse members whose data differs from the data ``task`` (``fold: -1``) found for the test set, in any
    of :data:`DATA_KEYS`, or that were trained or validated on a case it scores (a ConfigError naming both)."""
    found = task.state()
    where = f"the test set's data ({task.ds.layout} at {task.ds.root})"
    for name, state in members:
        why = _difference(found, state, where)
        if why is not None:
            raise ConfigError(f"ensemble member {name}: {why}; was the data changed since it was trained?")
    _check_unseen(members, task.eval_ids, "the test set")


@torch.no_grad()
def ensemble(
    task: Segmentation3dTask,
    models: Sequence[nn.Module],
    autocast: Autocast | None = None,
    volumes: Sequence[dict] | None = None,
    save_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Average the models' softmax probabilities on ``volumes`` (default: the task's evaluation volumes,
    i.e. the test set with ``fold: -1``), take the argmax and score it (:class:`~poolskip.metrics.VolumeScores`).

    With ``save_dir``, each volume's predicted label map, in the case's own voxel grid (RAS-oriented, as it is
    scored), is saved there as ``<case>.pt`` (uint8).
    """
    from contextlib import nullcontext

    autocast = autocast or nullcontext
    volumes = task.eval_vols if volumes is None else volumes
    scores = VolumeScores(task.ds.num_classes, task.ds.classes)
    for m in models:
        m.eval()
    for vol in track(volumes, len(volumes), f"ensemble of {len(models)}", "volumes"):
        pred, per_class = task.score(sum(task.predict(m, vol["image"], autocast) for m in models) / len(models), vol)
        scores.add(per_class)
        if save_dir is not None:
            from ..files import atomic_save

            atomic_save(pred.to("cpu", torch.uint8), Path(save_dir) / f"{vol['id']}.pt")
    out = scores.result()
    out["models"] = len(models)
    return out
