"""The segmentation report's picture: a few evaluation images with ground truth and each model's prediction,
label maps drawn in the dataset's palette (ignored pixels black), with a legend of the classes shown.

``poolskip report`` builds the models from the runs' checkpoints, asks the task for
:meth:`~poolskip.tasks.PicturesPredictions.prediction_examples` and draws them with :func:`save_prediction_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.seg2d import IGNORE
from .figures import add_class_legend, save_figure

__all__ = ["colorize", "save_prediction_figure"]


def colorize(labels: torch.Tensor, palette: Sequence[Sequence[int]]) -> torch.Tensor:
    """uint8 RGB ``(H, W, 3)`` of a label map ``(H, W)``: class ``k`` in ``palette[k]``, ignored pixels black."""
    table = torch.zeros(256, 3, dtype=torch.uint8)
    table[: len(palette)] = torch.tensor([list(c) for c in palette], dtype=torch.uint8)
    table[IGNORE] = 0
    return table[labels.long().clamp(0, 255).cpu()]


def save_prediction_figure(
    examples: Sequence[dict],
    palette: Sequence[Sequence[int]],
    path: str | Path,
    classes: Sequence[str] | None = None,
) -> Path:
    """One row per example: image, ground truth, then each prediction (columns named by the models); below, a
    legend of the classes that occur, named by ``classes`` (``class k`` without them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(examples[0]["preds"]) if examples else []
    cols = 2 + len(names)
    fig, axes = plt.subplots(len(examples), cols, figsize=(3 * cols, 2.4 * len(examples)), squeeze=False)
    for r, ex in enumerate(examples):
        panels = [("image", ex["image"]), ("ground truth", colorize(ex["target"], palette))]
        panels += [(name, colorize(ex["preds"][name], palette)) for name in names]
        for c, (title, img) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img.numpy())
            ax.set_axis_off()
            if r == 0:
                ax.set_title(title, fontsize=9)
    maps = [m for ex in examples for m in (ex["target"], *ex["preds"].values())]
    rgb = colorize(torch.arange(256), palette).float() / 255
    add_class_legend(fig, maps, classes, lambda k: tuple(rgb[k].tolist()), extra={IGNORE: "ignored"})
    return save_figure(fig, path, dpi=100)
