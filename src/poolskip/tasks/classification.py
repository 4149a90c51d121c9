"""Image classification: cross-entropy (optionally label-smoothed), top-1 error in percent (lower is better).

The worked example of the task contract (:mod:`.base`): the dataset is decoded once into uint8 tensors
(:func:`poolskip.data.load_dataset`), batches are cut and augmented on the training device by
:class:`~poolskip.data.TensorLoader`, and the model is told the images' channels and the class count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import option
from ..data import Batch, ClassificationAugment, DatasetError, ImageData, TensorLoader, load_dataset
from ..data.classification import imagefolder_counts
from ..metrics import top1_error, top1_wrong
from ..progress import track
from .base import Autocast, ModelSpec, Monitor, NominalGeometry, TaskContext, check_state, register_task

#: The built-in datasets as they come: training images, test images, classes, one image (C, H, W).
NOMINAL = {
    "digits": (1347, 450, 10, (1, 8, 8)),
    "cifar10": (50000, 10000, 10, (3, 32, 32)),
    "cifar100": (50000, 10000, 100, (3, 32, 32)),
}


@dataclass
class ClassificationOptions:
    """The classification task's config section (``classification:``); pixels are in [0, 255] before
    normalisation, augmentation follows torchvision's RandomCrop(padding) -> flip -> rotation -> Cutout."""

    image_size: int | None = option(None, "imagefolder: resize every image to this square size (default: keep)", min=1)
    label_smoothing: float = option(
        0.0, "cross-entropy label smoothing", min=0.0, below=1.0, why="at 1 every target is uniform: nothing to learn"
    )
    crop_padding: int = option(4, "random crop to the original size after zero padding by this much (0 = off)", min=0)
    flip: bool = option(True, "random horizontal flip")
    rotation: float = option(0.0, "random rotation in [-deg, deg], nearest, zero fill (0 = off)", min=0.0, max=180.0)
    cutout: int = option(0, "one square hole of this side after normalisation, centre anywhere (0 = off)", min=0)
    mean: list[float] | None = option(None, "per-channel mean in [0, 1]; null = measured on the training images")
    std: list[float] | None = option(None, "per-channel std in [0, 1]; null = measured on the training images")

    def check(self) -> None:
        if (self.mean is None) != (self.std is None):
            raise ValueError(
                "config keys 'classification.mean' and 'classification.std' must both be lists or both null"
            )
        if self.std is not None and any(s <= 0 for s in self.std):
            raise ValueError(f"config key 'classification.std' must be positive, got {self.std}")


def _refuse_one_class(data: ImageData, train_subset: int | None) -> None:
    """A DatasetError if the training labels hold fewer than 2 classes (a classifier has nothing to tell apart)."""
    present = torch.unique(data.train_y).tolist()
    if len(present) >= 2:
        return
    n = len(data.train_y)
    found = f"only class {data.classes[present[0]]!r} ({n} image{'' if n == 1 else 's'}" if present else "no images ("
    subset = f"; train_subset={train_subset} picked only these, use more" if train_subset is not None else ""
    raise DatasetError(
        f"{data.name}: the training split holds {found}{subset}); a classifier needs images of at least 2 classes "
        "to learn anything (its test error would say nothing)"
    )


@register_task
class ClassificationTask:
    """Image classification on digits, CIFAR-10/100 or an ImageFolder tree."""

    name = "classification"
    Options = ClassificationOptions
    monitor = Monitor("test_error", "min")

    def __init__(self, ctx: TaskContext, state: dict | None = None):
        o, d = ctx.options, ctx.data
        data = load_dataset(
            d.dataset, d.data_dir, download=d.download, cache_dir=d.cache_dir, image_size=o.image_size,
            train_subset=d.train_subset,
        )  # fmt: skip
        self.data: ImageData = data
        if state is None:  # a new training run: one class would score error 0 without learning anything
            _refuse_one_class(data, d.train_subset)
        self.device, self.dist = ctx.device, ctx.dist
        self.options = o
        if state is not None:  # as the checkpoint was trained (its measured normalisation), on data like this
            found = {"channels": data.channels, "classes": data.num_classes}
            where = f"{d.dataset}" + (f" at {d.data_dir}" if d.data_dir else "")
            check_state({"channels": len(state["mean"]), "classes": len(state["classes"])}, found, where)
            # as many classes, in another order or others: every label would mean another class, silently
            check_state({"class names": list(state["classes"])}, {"class names": list(data.classes)}, where)
            mean, std = state["mean"], state["std"]
        elif o.mean is not None:
            mean, std = o.mean, o.std
        else:
            mean, std = data.channel_stats()
        if len(mean) != data.channels or len(std) != data.channels:
            from ..errors import PoolskipError

            raise PoolskipError(
                f"classification.mean/std have {len(mean)}/{len(std)} values but {data.name} images have "
                f"{data.channels} channels; set mean=null std=null to measure them on the training images"
            )
        self.mean, self.std = [float(m) for m in mean], [float(s) for s in std]
        common = dict(
            mean=self.mean, std=self.std, dist=self.dist, device=self.device,
            channels_last=ctx.channels_last,
        )  # fmt: skip
        augment = ClassificationAugment(o.crop_padding, o.flip, o.rotation, o.cutout)
        self.train = TensorLoader(
            data.train_x, data.train_y, ctx.batch_size, augment=augment, shuffle=True, seed=ctx.seed, **common
        )
        self.test = TensorLoader(data.test_x, data.test_y, ctx.eval_batch_size, **common)

    def model_spec(self) -> ModelSpec:
        return ModelSpec(in_channels=self.data.channels, num_classes=self.data.num_classes, spatial_dims=2)

    @classmethod
    def nominal_geometry(cls, ctx: TaskContext) -> NominalGeometry | None:
        """The built-in datasets' sizes, or an ImageFolder tree's files and classes counted from its listing
        (its images taken as ``image_size`` squares, 32x32 when unset); None for a tree that is not there.
        Every batch is a step (the last one may be smaller); evaluation: the test images whole."""
        o, d = ctx.options, ctx.data
        if d.dataset in NOMINAL:
            n_train, n_test, classes, shape = NOMINAL[d.dataset]
        else:
            counts = imagefolder_counts(d.data_dir) if d.dataset == "imagefolder" else None
            if counts is None:
                return None
            n_train, n_test, classes = counts
            side = o.image_size or 32
            shape = (3, side, side)
        if d.train_subset:
            n_train = min(n_train, d.train_subset)
        return NominalGeometry(
            classes, n_train, n_test, shape, shape, steps_per_epoch=math.ceil(n_train / ctx.batch_size),
            eval_batch=min(ctx.eval_batch_size, n_test),
        )  # fmt: skip

    def state(self) -> dict[str, Any]:
        return {"mean": self.mean, "std": self.std, "classes": list(self.data.classes)}

    def describe(self) -> str:
        d = self.data
        return f"{len(d.train_x):,} train / {len(d.test_x):,} test images, {d.num_classes} classes"

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        return self.train.batches(epoch, start)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), targets, reduction="none", label_smoothing=self.options.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, autocast: Autocast) -> dict[str, float]:
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, wrong, count
        for batch in track(self.test.batches(), len(self.test), "eval"):
            with autocast():
                out = model(batch.inputs)
            sums[0] += F.cross_entropy(out.float(), batch.targets, reduction="sum").double()
            sums[1] += top1_wrong(out, batch.targets)
            sums[2] += len(batch.targets)
        loss, wrong, count = self.dist.all_reduce_sum(sums).tolist()
        return {"test_loss": loss / count, "test_error": top1_error(wrong, count)}

    def probe_batch(self, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        # a fixed random subset, not the first n: ImageFolder test sets are sorted by class
        pick = torch.randperm(len(self.test.labels), generator=torch.Generator().manual_seed(seed))[:n]
        x = self.test.images[pick.to(self.test.images.device)].float()
        return (x - self.test.mean) / self.test.std, self.test.labels[pick.to(self.test.labels.device)]

    def probe_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), targets)
