"""The error every dataset reader raises, and the hint it gives when a dataset belongs to another task."""

from __future__ import annotations

from ..errors import PoolskipError

__all__ = ["DatasetError", "other_task_hint"]


class DatasetError(PoolskipError):
    """A dataset is missing or malformed; the message says which path was expected and how to get it."""


def other_task_hint(dataset: str) -> str:
    """For an unknown-dataset error: which task reads ``dataset`` instead, e.g. ``" ('camvid' is a 2D
    segmentation dataset: set --task segmentation)"``; empty when no task does."""
    from .classification.readers import DATASETS
    from .seg2d.readers import SEG_DATASETS
    from .seg3d.readers import LAYOUTS

    for task, names, what in (
        ("classification", DATASETS, "an image classification"),
        ("segmentation", SEG_DATASETS, "a 2D segmentation"),
        ("segmentation3d", LAYOUTS, "a 3D segmentation"),
    ):
        if dataset in names:
            return f" ({dataset!r} is {what} dataset: set --task {task})"
    return ""
