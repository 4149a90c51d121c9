"""Evaluation metrics: top-1 error, confusion-matrix IoU, and Dice / IoU / NSD of volumes.

Each metric accumulates sums or counts that add over batches and all-reduce across processes, then turns
the totals into the reported percentages. The tests check them against torchmetrics and MONAI on random
inputs; each module's docstring states where a convention differs (absent classes) and why ours is kept.
"""

from .classification import top1_error, top1_wrong
from .segmentation import IGNORE_INDEX, confusion_matrix, iou_from_confusion
from .volumetric import METRICS, VolumeScores, dice_iou, normalised_surface_dice, score_volume

__all__ = [
    "IGNORE_INDEX",
    "METRICS",
    "VolumeScores",
    "confusion_matrix",
    "dice_iou",
    "iou_from_confusion",
    "normalised_surface_dice",
    "score_volume",
    "top1_error",
    "top1_wrong",
]
