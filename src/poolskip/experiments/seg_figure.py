"""The segmentation report's picture: a few evaluation images with ground truth and each model's prediction,
label maps drawn in the dataset's palette (ignored pixels black), with a legend of the classes shown.

``poolskip report`` builds the models from the runs' checkpoints and calls :func:`predict_examples` then
:func:`save_prediction_figure`; both work on any :class:`~poolskip.tasks.segmentation.SegmentationTask`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from ..data.segmentation import IGNORE
from .figures import add_class_legend, save_figure

__all__ = ["colorize", "predict_examples", "save_prediction_figure"]


def colorize(labels: torch.Tensor, palette: Sequence[Sequence[int]]) -> torch.Tensor:
    """uint8 RGB ``(H, W, 3)`` of a label map ``(H, W)``: class ``k`` in ``palette[k]``, ignored pixels black."""
    table = torch.zeros(256, 3, dtype=torch.uint8)
    table[: len(palette)] = torch.tensor([list(c) for c in palette], dtype=torch.uint8)
    table[IGNORE] = 0
    return table[labels.long().clamp(0, 255).cpu()]


@torch.no_grad()
def predict_examples(task, models: Mapping[str, nn.Module], count: int = 3, seed: int = 0) -> list[dict]:
    """``count`` evaluation images chosen by ``seed``, each with its ground truth and every model's prediction
    at full resolution: ``[{"image": uint8 (H, W, 3), "target": (H, W), "preds": {name: (H, W)}}, ...]``."""
    split = task.data.eval
    pick = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    out = []
    for i in pick:
        x = task.eval.normalise(split.images[i][None].to(task.device).float())
        preds = {}
        for name, model in models.items():
            was = model.training
            model.eval()
            preds[name] = model(x)[0].argmax(0).cpu()
            model.train(was)
        out.append({"image": split.images[i].permute(1, 2, 0).cpu(), "target": split.masks[i].cpu(), "preds": preds})
    return out


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
