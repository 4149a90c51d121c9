"""The paper's Table 3 layout (3D medical segmentation) beside ours, and a picture of a few slices.

:func:`format_table3` takes rows ``{"dataset", "model", "variant", "dice", "nsd", "iou"}`` (the
``summary.json`` of segmentation3d runs, or an ensemble's result) and prints Dice / NSD / mIoU per
dataset and model, plain then Pool Skip with the difference, the paper's numbers beside ours.
:func:`save_slices` draws image, ground truth and each prediction for a few axial slices.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .figures import add_class_legend, save_figure
from .stats import format_mean_std, mean_std

__all__ = ["format_table3", "save_slices"]

_NAMES = {"vnet": "V-Net", "nnunet": "nnUNet"}


def _paper(dataset: str, model: str, variant: str) -> list[float | None]:
    """The paper's Dice, NSD and mIoU (%) of this row (``paper_numbers.yaml``, table3), None where absent."""
    from .paper import paper_entry

    out = []
    for metric in ("dice", "nsd", "miou"):
        e = paper_entry("table3", model, dataset.lower(), variant, metric)
        out.append(None if e is None else float(e["mean"]))
    return out


def format_table3(rows: Sequence[Mapping]) -> str:
    """Table 3's layout as Markdown: per dataset and model, plain and ``+ours`` (Pool Skip); our Dice, NSD and
    mIoU (%) as mean ± sample std over the rows of that cell (seeds, folds; ``n``), Pool Skip's Dice minus the
    plain one, and on a Pool Skip row of BTCV or AMOS the paper's +ours − plain (Dice / NSD / mIoU), the
    direction to compare ours with. NaN values (a class absent from every evaluated volume) are left out of a
    cell's mean.
    """
    groups: dict[tuple[str, str, str], list[Mapping]] = {}
    for r in rows:
        groups.setdefault((str(r["dataset"]), str(r["model"]), str(r["variant"])), []).append(r)
    datasets = list(dict.fromkeys([k[0] for k in groups] or ["BTCV", "AMOS"]))
    lines = [
        "| dataset | model | n | Dice | NSD | mIoU | Dice − plain | paper: +ours − plain (Dice / NSD / mIoU) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for ds in datasets:
        for model in ("vnet", "nnunet"):
            base = None
            for variant in ("plain", "pool_skip"):
                got = groups.get((ds, model, variant), [])
                if not got:
                    continue
                # NaN (a class absent from every evaluated volume) is left out of the cell
                columns = [[float(r[m]) for r in got] for m in ("dice", "nsd", "iou")]
                stats = [mean_std(x for x in col if not math.isnan(x)) for col in columns]
                ours = [format_mean_std(*st) for st in stats]
                mean = stats[0][0]  # Dice
                diff = f"{mean - base:+.2f}" if variant == "pool_skip" and None not in (mean, base) else ""
                paper = ""
                if variant == "pool_skip":
                    theirs, plain = _paper(ds, model, variant), _paper(ds, model, "plain")
                    if None not in (*theirs, *plain):
                        paper = " / ".join(f"{a - b:+.2f}" for a, b in zip(theirs, plain))
                name = _NAMES.get(model, model) + (" +ours" if variant == "pool_skip" else "")
                lines.append(f"| {ds} | {name} | {len(got)} | {' | '.join(ours)} | {diff} | {paper} |")
                if variant == "plain":
                    base = mean
    return "\n".join(lines) + "\n"


def save_slices(
    path: str | Path,
    image: torch.Tensor,
    label: torch.Tensor,
    predictions: Mapping[str, torch.Tensor],
    slices: Sequence[int] | None = None,
    title: str = "",
    classes: Sequence[str] | None = None,
) -> Path:
    """A PNG grid: rows are slices along the last axis, columns image, ground truth and each prediction; below,
    a legend of the foreground classes drawn, named by ``classes`` (background first; ``class k`` without)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = image[0] if image.dim() == 4 else image
    if slices is None:  # the three slices with the most foreground
        area = (label > 0).flatten(0, 1).sum(0)
        slices = sorted(torch.argsort(area, descending=True)[:3].tolist())
    cols = ["image", "ground truth", *predictions]
    k = int(max(int(label.max()), *(int(p.max()) for p in predictions.values()), 1))
    fig, axes = plt.subplots(len(slices), len(cols), figsize=(2.2 * len(cols), 2.2 * len(slices)), squeeze=False)
    for i, z in enumerate(slices):
        panels = [image[..., z], label[..., z], *(p[..., z] for p in predictions.values())]
        for j, (name, panel) in enumerate(zip(cols, panels)):
            ax = axes[i][j]
            if j == 0:
                ax.imshow(panel.T.float().numpy(), cmap="gray", origin="lower")
            else:
                ax.imshow(image[..., z].T.float().numpy(), cmap="gray", origin="lower")
                masked = torch.where(panel > 0, panel.float(), torch.tensor(float("nan")))
                ax.imshow(masked.T.numpy(), cmap="tab10", vmin=0, vmax=max(k, 9), alpha=0.6, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=8)
        axes[i][0].set_ylabel(f"slice {z}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    cmap, top = plt.get_cmap("tab10"), max(k, 9)
    maps = [m[..., list(slices)] for m in (label, *predictions.values())]
    add_class_legend(fig, maps, classes, lambda c: cmap(c / top), skip=(0,))
    return save_figure(fig, path, dpi=110)
