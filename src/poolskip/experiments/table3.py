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

__all__ = ["PAPER_TABLE3", "format_table3", "save_slices"]

#: Table 3 of the paper: (dataset, model, variant) -> (Dice, NSD, mIoU) in percent.
PAPER_TABLE3: dict[tuple[str, str, str], tuple[float, float, float]] = {
    ("BTCV", "vnet", "plain"): (78.32, 70.77, 68.08),
    ("BTCV", "vnet", "pool_skip"): (79.70, 72.35, 69.48),
    ("BTCV", "nnunet", "plain"): (81.52, 76.10, 72.14),
    ("BTCV", "nnunet", "pool_skip"): (82.47, 77.00, 73.08),
    ("AMOS", "vnet", "plain"): (77.15, 62.97, 66.32),
    ("AMOS", "vnet", "pool_skip"): (80.02, 67.32, 69.81),
    ("AMOS", "nnunet", "plain"): (89.75, 85.58, 83.13),
    ("AMOS", "nnunet", "pool_skip"): (89.78, 85.52, 83.13),
}

_NAMES = {"vnet": "V-Net", "nnunet": "nnUNet"}


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}"


def format_table3(rows: Sequence[Mapping]) -> str:
    """Table 3's layout: per dataset and model, plain and ``+ours`` (Pool Skip), ours beside the paper's.

    Several rows for one (dataset, model, variant) (seeds, folds) are averaged and counted in ``n``.
    """
    groups: dict[tuple[str, str, str], list[Mapping]] = {}
    for r in rows:
        key = (str(r["dataset"]), str(r["model"]), str(r["variant"]))
        groups.setdefault(key, []).append(r)
    datasets = list(dict.fromkeys([k[0] for k in groups] or ["BTCV", "AMOS"]))
    head = f"{'model':<10}{'n':>3}  {'Dice':>7} {'NSD':>7} {'mIoU':>7}   {'paper: Dice':>11} {'NSD':>7} {'mIoU':>7}"
    lines = []
    for ds in datasets:
        lines += [f"{ds}", head, "-" * len(head)]
        for model in ("vnet", "nnunet"):
            base = None
            for variant in ("plain", "pool_skip"):
                got = groups.get((ds, model, variant), [])
                ours = [sum(float(r[m]) for r in got) / len(got) if got else None for m in ("dice", "nsd", "iou")]
                paper = PAPER_TABLE3.get((ds.upper() if ds.upper() in ("BTCV", "AMOS") else ds, model, variant))
                if not got and paper is None:
                    continue
                name = _NAMES[model] if variant == "plain" else "+ours"
                cells = " ".join(f"{_fmt(v):>7}" for v in ours)
                if variant == "pool_skip" and base is not None and ours[0] is not None:
                    cells += f"  ({ours[0] - base:+.2f} Dice)"
                pcells = " ".join(f"{_fmt(v):>7}" for v in paper) if paper else "(not in the paper)"
                lines.append(f"{name:<10}{len(got):>3}  {cells}   {'':>4}{pcells}")
                if variant == "plain":
                    base = ours[0]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def save_slices(
    path: str | Path,
    image: torch.Tensor,
    label: torch.Tensor,
    predictions: Mapping[str, torch.Tensor],
    slices: Sequence[int] | None = None,
    title: str = "",
) -> Path:
    """A PNG grid: rows are slices along the last axis, columns image, ground truth and each prediction."""
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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
