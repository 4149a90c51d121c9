"""2D semantic segmentation (DeepLabv3+ on VOC, Cityscapes, CamVid or an image/mask folder): mIoU (higher is better).

Data: :func:`poolskip.data.seg2d.load_segmentation` decodes each split once into a cache; training
batches are random-scaled, cropped (padding: image 0, mask ignored), flipped and optionally colour-jittered
on the training device, deterministic in (seed, epoch, step). Loss: per-pixel cross-entropy with the ignore
label 255; evaluation: whole images at full resolution (or, with ``segmentation.eval_window``, overlapping
windows whose logits are averaged: :func:`sliding_window_logits`), one confusion matrix over the evaluation
split (all-reduced under torchrun), mIoU = nan-mean of the per-class IoUs (a class absent from both the
predictions and the targets is NaN and left out of the mean).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import option
from ..data import Batch, DatasetError
from ..data.errors import other_task_hint
from ..data.seg2d import Seg2dAugment, SegLoader
from ..data.seg2d.readers import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    IGNORE,
    SEG_DATASETS,
    VOC_CLASSES,
    SegData,
    load_segmentation,
)
from ..metrics import confusion_matrix, iou_from_confusion
from ..progress import tick, track
from .base import (
    Autocast,
    ModelSpec,
    Monitor,
    NominalGeometry,
    PictureExamples,
    TaskContext,
    check_state,
    register_task,
)

#: The datasets' standard splits: training images (VOC: SBD's trainaug set), evaluation images, classes and
#: the evaluation image's (height, width) (VOC: its largest, 500 on the longer side; Cityscapes' and CamVid's).
NOMINAL = {
    "voc": (10582, 1449, len(VOC_CLASSES), (500, 500)),
    "cityscapes": (2975, 500, len(CITYSCAPES_CLASSES), (1024, 2048)),
    "camvid": (367, 233, len(CAMVID_CLASSES), (360, 480)),
}

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class SegmentationOptions:
    """The segmentation task's config section (``segmentation:``). Augmentation follows DeepLab's
    RandomScale -> RandomCrop(pad_if_needed) -> RandomHorizontalFlip (-> ColorJitter for driving scenes)."""

    crop_size: list[int] = option([513, 513], "training crop (height, width); smaller scaled images are padded")
    scale_range: list[float] = option([0.5, 2.0], "random scale factor range [min, max] before the crop")
    hflip: bool = option(True, "random horizontal flip")
    color_jitter: float = option(
        0.0, "brightness/contrast/saturation factors in [1-x, 1+x] (0 = off)", min=0.0, max=1.0
    )
    train_split: str = option("train", "the training split; join several with '+', e.g. train+val")
    eval_split: str = option("val", "the evaluation split (whole images, full resolution); CamVid: test")
    voc_trainaug: bool = option(True, "voc: train on SBD's trainaug set when SegmentationClassAug/ is present")
    segfolder_classes: int | None = option(
        None, "segfolder: number of classes (null = largest training label + 1)", min=1
    )
    segfolder_ignore: int = option(255, "segfolder: the mask value that is ignored", min=0, max=255)
    eval_subset: int | None = option(
        None, "evaluate only N images of the evaluation split, a fixed seeded choice (quick runs; null = all)", min=1
    )
    eval_window: list[int] | None = option(
        None, "sliding-window evaluation: window [height, width] (null = whole images, the reference's way)"
    )
    eval_overlap: float = option(1 / 3, "sliding-window evaluation: overlap of neighbouring windows", min=0.0, max=0.9)
    pixel_mean: list[float] = option(IMAGENET_MEAN, "per-channel mean in [0, 1] (ImageNet's, as the reference)")
    pixel_std: list[float] = option(IMAGENET_STD, "per-channel std in [0, 1] (ImageNet's, as the reference)")

    def check(self) -> None:
        self.crop_size = _size_pair("crop_size", self.crop_size)
        lo_hi = self.scale_range
        if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
            raise ValueError(
                f"config key 'segmentation.scale_range' must be [min, max] with 0 < min <= max, got {lo_hi}"
            )
        if self.eval_window is not None:
            self.eval_window = _size_pair("eval_window", self.eval_window, " or null")
        if len(self.pixel_mean) != 3 or len(self.pixel_std) != 3 or any(s <= 0 for s in self.pixel_std):
            raise ValueError("config keys 'segmentation.pixel_mean' / 'pixel_std' must hold 3 values (std > 0)")


def _size_pair(key: str, value: list[int], alternative: str = "") -> list[int]:
    """``[height, width]`` from a config value (one number means a square), both >= 1."""
    pair = value * 2 if len(value) == 1 else value
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"config key 'segmentation.{key}' must be [height, width] >= 1{alternative}, got {value}")
    return pair


@register_task
class SegmentationTask:
    """Semantic segmentation of RGB images into classes; ignored pixels (255) count in neither loss nor mIoU."""

    name = "segmentation"
    Options = SegmentationOptions
    monitor = Monitor("miou", "max")

    def __init__(self, ctx: TaskContext, state: dict | None = None):
        o, d = ctx.options, ctx.data
        if d.dataset not in SEG_DATASETS:
            raise DatasetError(
                f"the segmentation task reads datasets {', '.join(SEG_DATASETS)}; got dataset={d.dataset!r}"
                + other_task_hint(d.dataset)
            )
        self.data: SegData = load_segmentation(
            d.dataset, d.data_dir, train_split=o.train_split, eval_split=o.eval_split, voc_trainaug=o.voc_trainaug,
            segfolder_classes=o.segfolder_classes, segfolder_ignore=o.segfolder_ignore, cache_dir=d.cache_dir,
            train_subset=d.train_subset, eval_subset=o.eval_subset,
        )  # fmt: skip
        if state is not None:  # as the checkpoint was trained, on data like this
            self.mean, self.std = list(state["pixel_mean"]), list(state["pixel_std"])
            found = {"dataset": self.data.name, "classes": list(self.data.classes), "ignore_index": IGNORE}
            check_state({k: state[k] for k in found if k in state}, found, f"{d.dataset} at {d.data_dir}")
        else:
            self.mean, self.std = list(o.pixel_mean), list(o.pixel_std)
            self._refuse_one_class(o, d.train_subset)
        self.device, self.dist = ctx.device, ctx.dist
        self.options = o
        if len(self.data.train) < ctx.batch_size:
            raise DatasetError(
                f"{d.dataset}: {len(self.data.train)} training images, fewer than one batch of "
                f"{ctx.batch_size} (the last incomplete batch is dropped)"
            )
        common = dict(
            mean=self.mean, std=self.std, dist=self.dist, device=self.device,
            channels_last=ctx.channels_last,
        )  # fmt: skip
        augment = Seg2dAugment(tuple(o.crop_size), tuple(o.scale_range), o.hflip, o.color_jitter)
        self.train = SegLoader(self.data.train, ctx.batch_size, augment=augment, seed=ctx.seed, **common)
        self.eval = SegLoader(self.data.eval, ctx.eval_batch_size, **common)

    def _refuse_one_class(self, o: SegmentationOptions, train_subset: int | None) -> None:
        """A DatasetError for a new run on fewer than 2 classes (declared, or present in the training masks):
        its mIoU would be 100 without learning anything."""
        data = self.data
        if data.num_classes < 2:
            found = f"declares {data.num_classes} class"
            if data.name == "segfolder":
                found += (
                    f" (segfolder_classes={o.segfolder_classes})" if o.segfolder_classes is not None
                    else " (its largest training label + 1; set segmentation.segfolder_classes)"
                )  # fmt: skip
        elif len(data.train_classes) < 2:
            names = [data.classes[c] for c in data.train_classes]
            found = f"has training masks ({o.train_split}) holding only class {names[0]!r}" if names else (
                f"has training masks ({o.train_split}) holding no class, only the ignore value"
            )  # fmt: skip
            if train_subset is not None:
                found += f" (train_subset={train_subset} picked only these images; use more)"
        else:
            return
        raise DatasetError(
            f"{data.name} {found}; a segmentation needs at least 2 classes to learn anything (its mIoU would say "
            "nothing)"
        )

    # --------------------------------------------------------------------------------- the contract

    def model_spec(self) -> ModelSpec:
        return ModelSpec(in_channels=3, num_classes=self.data.num_classes, spatial_dims=2)

    @classmethod
    def nominal_geometry(cls, ctx: TaskContext) -> NominalGeometry | None:
        """The dataset's standard splits, trained on ``crop_size`` crops in steps of whole batches (the last
        incomplete one is dropped) and evaluated on whole images (also with ``eval_window``: counted as whole
        images); None for a segfolder (its folders tell)."""
        o, d = ctx.options, ctx.data
        if d.dataset not in NOMINAL:
            return None
        n_train, n_eval, classes, image = NOMINAL[d.dataset]
        if d.train_subset:
            n_train = min(n_train, d.train_subset)
        if o.eval_subset:
            n_eval = min(n_eval, o.eval_subset)
        return NominalGeometry(
            classes, n_train, n_eval, (3, *o.crop_size), (3, *image),
            steps_per_epoch=max(1, n_train // ctx.batch_size), eval_batch=min(ctx.eval_batch_size, n_eval),
        )  # fmt: skip

    def state(self) -> dict[str, Any]:
        return {
            "dataset": self.data.name,
            "classes": list(self.data.classes),
            "palette": [list(c) for c in self.data.palette],
            "pixel_mean": list(self.mean),
            "pixel_std": list(self.std),
            "ignore_index": IGNORE,
        }

    def describe(self) -> str:
        d, o = self.data, self.options
        notes = f" ({'; '.join(d.notes)})" if d.notes else ""
        return (
            f"{d.name}: {len(d.train):,} {o.train_split} / {len(d.eval):,} {o.eval_split} images, "
            f"{d.num_classes} classes, crop {o.crop_size[0]}x{o.crop_size[1]}{notes}"
        )

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        return self.train.batches(epoch, start)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-image losses (N,): each image's mean cross-entropy over its non-ignored pixels (0 for an image
        with none). The reference averages over all valid pixels of the batch instead; the two differ only in
        how images with fewer valid pixels are weighted."""
        pixels = F.cross_entropy(outputs.float(), targets, ignore_index=IGNORE, reduction="none")
        valid = (targets != IGNORE).flatten(1).sum(1)
        return pixels.flatten(1).sum(1) / valid.clamp(min=1)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, autocast: Autocast) -> dict[str, Any]:
        k = self.data.num_classes
        cm = torch.zeros(k, k, dtype=torch.int64, device=self.device)
        loss = torch.zeros(2, dtype=torch.float64, device=self.device)  # cross-entropy sum, valid pixels
        window = self.options.eval_window
        batches = len(self.dist.every_nth(range(len(self.eval))))  # this process's share
        for batch in track(self.eval.eval_batches(), batches, "eval"):
            if window is None:
                with autocast():
                    out = model(batch.inputs)
            else:
                out = sliding_window_logits(model, batch.inputs, window, self.options.eval_overlap, autocast)
            out = out.float()
            loss[0] += F.cross_entropy(out, batch.targets, ignore_index=IGNORE, reduction="sum").double()
            loss[1] += (batch.targets != IGNORE).sum()
            cm += confusion_matrix(out.argmax(1), batch.targets, k)
        self.dist.all_reduce_sum(cm)
        self.dist.all_reduce_sum(loss)
        metrics = iou_from_confusion(cm)
        metrics["eval_loss"] = float(loss[0] / loss[1]) if loss[1] > 0 else float("nan")
        return metrics

    def probe_batch(self, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` evaluation images chosen by ``seed`` (with repeats if there are fewer), each centre-cropped
        (or padded: image 0, mask ignored) to the training crop size so they stack into one batch."""
        split = self.data.eval
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(len(split), generator=g)
        pick = pick.repeat(-(-n // len(split)))[:n].tolist()
        h, w = self.options.crop_size
        xs, ys = [], []
        for i in pick:
            img, mask = split.images[i], split.masks[i]
            x = torch.zeros(img.shape[0], h, w, dtype=torch.uint8)
            y = torch.full((h, w), IGNORE, dtype=torch.uint8)
            ih, iw = img.shape[-2:]
            top, left = (ih - h) // 2, (iw - w) // 2  # negative: the image sits in the middle of the padding
            sy, sx = slice(max(top, 0), max(top, 0) + min(h, ih)), slice(max(left, 0), max(left, 0) + min(w, iw))
            dy, dx = slice(max(-top, 0), max(-top, 0) + min(h, ih)), slice(max(-left, 0), max(-left, 0) + min(w, iw))
            x[:, dy, dx], y[dy, dx] = img[:, sy, sx], mask[sy, sx]
            xs.append(x)
            ys.append(y)
        x = torch.stack(xs).to(self.device).float()
        return self.eval.normalise(x), torch.stack(ys).to(self.device).long()

    def probe_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean cross-entropy over the batch's pixels that are not ignored (NaN if there are none)."""
        return F.cross_entropy(outputs.float(), targets, ignore_index=IGNORE)

    def probe_loss_weight(self, targets: torch.Tensor) -> int:
        """How many pixels :meth:`probe_loss` is a mean over (not ignored): its batch weight in the diagnostics."""
        return int((targets != IGNORE).sum())

    # -- capability: PicturesPredictions

    @torch.no_grad()
    def prediction_examples(self, models: Mapping[str, nn.Module], count: int = 3, seed: int = 0) -> PictureExamples:
        """``count`` evaluation images chosen by ``seed``, each with its ground truth and every model's
        prediction at full resolution, in the dataset's palette."""
        split = self.data.eval
        pick = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:count].tolist()
        samples = []
        for i in pick:
            x = self.eval.normalise(split.images[i][None].to(self.device).float())
            preds = {}
            for name, model in models.items():
                was = model.training
                model.eval()
                preds[name] = model(x)[0].argmax(0).cpu()
                model.train(was)
            image = split.images[i].permute(1, 2, 0).cpu()
            samples.append({"image": image, "target": split.masks[i].cpu(), "preds": preds})
        return PictureExamples(2, samples, [list(c) for c in self.data.palette], list(self.data.classes))


def sliding_window_logits(
    model: nn.Module, x: torch.Tensor, window: Sequence[int], overlap: float = 1 / 3, autocast: Autocast | None = None
) -> torch.Tensor:
    """``model``'s logits for images ``x`` (N, C, H, W) from overlapping ``window`` crops, averaged where they
    overlap. Windows step by ``window * (1 - overlap)`` (at least 1 pixel) and the last one in each direction
    ends at the border, so every pixel is covered; a window larger than the image shrinks to it (one window:
    exactly the whole-image output)."""
    h, w = x.shape[-2:]
    wh, ww = min(int(window[0]), h), min(int(window[1]), w)

    def starts(size: int, win: int) -> list[int]:
        step = max(1, int(win * (1 - overlap)))
        return sorted({*range(0, size - win, step), size - win})

    out = count = None
    windows = [(top, left) for top in starts(h, wh) for left in starts(w, ww)]
    for n, (top, left) in enumerate(windows):
        tick(f"window {n + 1}/{len(windows)}")  # on a terminal, inside an evaluation's progress bar
        with autocast() if autocast is not None else nullcontext():
            logits = model(x[..., top : top + wh, left : left + ww]).float()
        if out is None:
            out = logits.new_zeros(*logits.shape[:2], h, w)
            count = logits.new_zeros(1, 1, h, w)
        out[..., top : top + wh, left : left + ww] += logits
        count[..., top : top + wh, left : left + ww] += 1
    return out / count
