"""Score nnU-Net's own fold validation predictions with poolskip's metrics, beside nnU-Net's summary.json.

nnU-Net's validation writes one label map per case (fold_N/validation/CASE.nii.gz, in the raw image's
geometry) and its Dice and IoU per class (summary.json). This scores the same files with
poolskip.metrics.score_volume (Dice, NSD at 1 mm with the header's spacing, IoU; the metrics of
`poolskip train`'s 3D task), so the plugin run gets the Table 3 columns and the two implementations of Dice
and IoU are checked against each other on real predictions. Writes validation_scores.csv (per case, %) and
prints the means per class.

Usage (from the worktree root): PYTHONPATH=src python3 results/nnunet-plugin-hippocampus-cpu/score_validation.py \
    FOLD_DIR RAW_DATASET_DIR [OUT_CSV]
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from poolskip.metrics import score_volume

torch.set_num_threads(1)
fold, raw = Path(sys.argv[1]), Path(sys.argv[2])
out = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parent / "validation_scores.csv"
labels = json.loads((raw / "dataset.json").read_text())["labels"]  # {"background": 0, "Anterior": 1, ...}
classes = [n for n, v in sorted(labels.items(), key=lambda kv: int(kv[1])) if int(v) > 0]
num_classes = len(classes) + 1

rows, scores = [], []
for pred_path in sorted((fold / "validation").glob("*.nii.gz")):
    case = pred_path.name[: -len(".nii.gz")]
    label_img = nib.load(raw / "labelsTr" / pred_path.name)
    pred = torch.from_numpy(np.asarray(nib.load(pred_path).dataobj).astype(np.int64))
    label = torch.from_numpy(np.asarray(label_img.dataobj).astype(np.int64))
    if pred.shape != label.shape:
        sys.exit(f"{pred_path}: shape {tuple(pred.shape)} differs from its label's {tuple(label.shape)}")
    s = score_volume(pred, label, num_classes, label_img.header.get_zooms()[:3], 1.0) * 100  # (3, K-1)
    scores.append(s.numpy())
    rows.append([case, *[f"{x:.4f}" for x in s.flatten().tolist()]])
if not scores:
    sys.exit(f"no predictions in {fold / 'validation'}")
with open(out, "w", newline="") as f:
    header = ["case"] + [f"{m}_{c}" for m in ("dice", "nsd", "iou") for c in classes]
    csv.writer(f).writerows([header, *rows])

mean = np.nanmean(np.stack(scores), 0)  # (3, K-1): a class absent from prediction and label is left out
print(f"{len(scores)} cases scored by poolskip (%), written to {out}")
print("class | Dice | NSD 1 mm | IoU | nnU-Net's Dice | nnU-Net's IoU")
summary = fold / "validation" / "summary.json"
theirs_all = json.loads(summary.read_text()) if summary.is_file() else {}
nn = theirs_all.get("mean", {})
for i, c in enumerate(classes):
    theirs = nn.get(str(labels[c]), {})
    d, q = (100 * theirs[k] if k in theirs and not math.isnan(theirs[k]) else float("nan") for k in ("Dice", "IoU"))
    print(f"{c} | {mean[0, i]:.2f} | {mean[1, i]:.2f} | {mean[2, i]:.2f} | {d:.2f} | {q:.2f}")
print(f"mean | {mean[0].mean():.2f} | {mean[1].mean():.2f} | {mean[2].mean():.2f} | ", end="")
if nn:
    fg = theirs_all["foreground_mean"]
    print(f"{100 * fg['Dice']:.2f} | {100 * fg['IoU']:.2f}")
else:
    print("- | -  (no summary.json)")
