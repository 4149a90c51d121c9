"""Metrics: poolskip.metrics against torchmetrics and MONAI computing the same numbers, timed in one run.

For each metric the library call gets the same inputs and returns the same values (``tests/test_metrics.py``
checks them to 1e-6); the table gives seconds per call and the library's time over ours (> 1: ours is faster).

- top-1 error of (N, C) logits: ``top1_wrong`` vs torchmetrics' ``multiclass_accuracy(average="micro")``
  (with and without its input checks, ``validate_args``);
- 2D confusion matrix with ignored pixels: ``confusion_matrix`` vs torchmetrics' ``multiclass_confusion_matrix``;
- Dice and IoU of a 3D label map: ``dice_iou`` vs MONAI's ``DiceMetric`` + ``MeanIoU`` on one-hot tensors
  (one-hot conversion included: that is what a label map costs them);
- one volume's Dice + IoU + NSD: ``score_volume`` vs the same three from MONAI's metric classes on float one-hot
  tensors, NSD by area (``use_subvoxels=True``, as ``score_volume``).

    python benchmarks/bench_metrics.py
    python benchmarks/bench_metrics.py --volume 160 160 128 --classes 14 --threads 2
"""

from __future__ import annotations

import argparse
import warnings

import torch
import torch.nn.functional as F

from common import interleaved_min_times, machine, markdown_table
from poolskip.metrics import IGNORE_INDEX, confusion_matrix, dice_iou, score_volume, top1_wrong


def blobs(shape: tuple[int, ...], k: int, g: torch.Generator) -> torch.Tensor:
    """A label map of smooth regions (arg-max of box-filtered noise), like an organ segmentation."""
    noise = torch.rand((1, k, *shape), generator=g)
    pool = F.avg_pool3d if len(shape) == 3 else F.avg_pool2d
    return pool(noise, 9, stride=1, padding=4).argmax(1)[0]


def monai_scores(pred: torch.Tensor, label: torch.Tensor, k: int, spacing, tolerance: float) -> torch.Tensor:
    """Dice, NSD, IoU per foreground class from MONAI's metric classes on float one-hot tensors."""
    from monai.metrics import DiceMetric, MeanIoU, SurfaceDiceMetric

    p = F.one_hot(pred[None], k).movedim(-1, 1).float()
    y = F.one_hot(label[None], k).movedim(-1, 1).float()
    dice = DiceMetric(include_background=False, reduction="none", ignore_empty=False)(p, y)[0]
    iou = MeanIoU(include_background=False, reduction="none", ignore_empty=False)(p, y)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nsd = SurfaceDiceMetric([tolerance] * (k - 1), include_background=False, reduction="none", use_subvoxels=True)(
            p, y, spacing=list(spacing)
        )[0]
    return torch.stack([dice, nsd, iou])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=10000, help="top-1 error: samples")
    ap.add_argument("--logit-classes", type=int, default=100, help="top-1 error: classes")
    ap.add_argument("--image", type=int, nargs=3, default=[4, 512, 1024], help="2D: batch, height, width")
    ap.add_argument("--image-classes", type=int, default=19)
    ap.add_argument("--volume", type=int, nargs=3, default=[96, 96, 64])
    ap.add_argument("--classes", type=int, default=8, help="3D: classes including background")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from monai.metrics import DiceMetric, MeanIoU
    from torchmetrics.functional.classification import multiclass_accuracy, multiclass_confusion_matrix

    g = torch.Generator().manual_seed(0)
    rows = []

    def compare(what: str, ours, library: dict, number: int = 3) -> None:
        t = interleaved_min_times({"ours": ours, **library}, args.rounds, number)
        for name, fn_t in t.items():
            if name != "ours":
                rows.append([what, name, f"{t['ours']:.4f}", f"{fn_t:.4f}", f"{fn_t / t['ours']:.2f}"])

    c = args.logit_classes
    logits, labels = torch.randn(args.samples, c, generator=g), torch.randint(0, c, (args.samples,), generator=g)
    compare(
        f"top-1 error, {args.samples} x {c} logits",
        lambda: top1_wrong(logits, labels),
        {
            "torchmetrics multiclass_accuracy": lambda: multiclass_accuracy(logits, labels, c, average="micro"),
            "  (validate_args=False)": lambda: multiclass_accuracy(
                logits, labels, c, average="micro", validate_args=False
            ),
        },
        number=20,
    )

    k = args.image_classes
    target = torch.randint(0, k, tuple(args.image), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.1] = IGNORE_INDEX
    pred = torch.randint(0, k, tuple(args.image), generator=g)
    cm = lambda **kw: multiclass_confusion_matrix(pred, target, k, ignore_index=IGNORE_INDEX, **kw)  # noqa: E731
    compare(
        "confusion matrix, " + " x ".join(map(str, args.image)) + f", {k} classes, 10% ignored",
        lambda: confusion_matrix(pred, target, k),
        {"torchmetrics multiclass_confusion_matrix": cm, "  (validate_args=False)": lambda: cm(validate_args=False)},
    )

    k, shape = args.classes, tuple(args.volume)
    label = blobs(shape, k, g)
    pred = torch.roll(label, shifts=(1, -1, 2), dims=(0, 1, 2))  # a near miss: overlaps, surfaces 1-2 voxels off

    def monai_dice_iou():
        p = F.one_hot(pred[None], k).movedim(-1, 1).float()
        y = F.one_hot(label[None], k).movedim(-1, 1).float()
        kw = dict(include_background=False, reduction="none", ignore_empty=False)
        return DiceMetric(**kw)(p, y), MeanIoU(**kw)(p, y)

    vol = " x ".join(map(str, shape)) + f", {k} classes"
    compare(f"Dice + IoU, {vol}", lambda: dice_iou(pred, label, k), {"MONAI DiceMetric + MeanIoU": monai_dice_iou})
    spacing = (0.8, 0.8, 2.5)
    compare(
        f"Dice + NSD + IoU (score_volume), {vol}, spacing {spacing} mm",
        lambda: score_volume(pred, label, k, spacing, 1.0),
        {"MONAI metric classes, float one-hot": lambda: monai_scores(pred, label, k, spacing, 1.0)},
        number=1,
    )

    print(machine())
    print(markdown_table(["metric", "library", "ours s", "library s", "library / ours"], rows))


if __name__ == "__main__":
    main()
