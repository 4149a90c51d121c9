"""validation_scores_5epochs.txt and the README's tables, from this folder's committed files.

score_validation.py scored nnU-Net's 52 predicted label maps (fold_0/validation/*.nii.gz, not kept) against the
Hippocampus labels (the shared data, not kept here), wrote the per-case scores (validation_scores_5epochs.csv)
and printed their means beside nnU-Net's own (validation_scores_5epochs.txt). This script rebuilds that printout
from the two committed files it was made of: the per-case CSV and nnU-Net's summary (summary_5epochs.json;
class k of the CSV's header order is nnU-Net's label k). Then it prints the README's table of nnU-Net's
training log (training_log_5epochs.txt), each value as the log wrote it.

    python3 results/nnunet-plugin-hippocampus-cpu/tables.py
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np

here = Path(__file__).resolve().parent
scores_csv = here / "validation_scores_5epochs.csv"
with open(scores_csv, newline="") as f:
    header, *body = list(csv.reader(f))
classes = [h.split("_", 1)[1] for h in header[1:] if h.startswith("dice_")]
scores = np.array([[float(x) for x in r[1:]] for r in body]).reshape(len(body), 3, len(classes))
mean = np.nanmean(scores, 0)  # (metric, class): a class absent from prediction and label is left out
theirs_all = json.loads((here / "summary_5epochs.json").read_text())
nn = theirs_all["mean"]

lines = [f"{len(body)} cases scored by poolskip (%), written to {scores_csv.relative_to(here.parents[1])}",
         "class | Dice | NSD 1 mm | IoU | nnU-Net's Dice | nnU-Net's IoU"]  # fmt: skip
for i, c in enumerate(classes):
    theirs = nn[str(i + 1)]
    d, q = (100 * theirs[k] if not math.isnan(theirs[k]) else float("nan") for k in ("Dice", "IoU"))
    lines.append(f"{c} | {mean[0, i]:.2f} | {mean[1, i]:.2f} | {mean[2, i]:.2f} | {d:.2f} | {q:.2f}")
fg = theirs_all["foreground_mean"]
lines.append(f"mean | {mean[0].mean():.2f} | {mean[1].mean():.2f} | {mean[2].mean():.2f} | "
             f"{100 * fg['Dice']:.2f} | {100 * fg['IoU']:.2f}")  # fmt: skip
(here / "validation_scores_5epochs.txt").write_text("\n".join(lines) + "\n")
print("\n".join(lines))

log = (here / "training_log_5epochs.txt").read_text()
epochs = re.split(r"^\S+ \S+: Epoch (\d+) *$", log, flags=re.M)[1:]
print("\n| epoch | train loss | val loss | pseudo Dice Anterior / Posterior (validation patches) | epoch time (s) |")
print("|---:|---:|---:|---:|---:|")
for number, text in zip(epochs[::2], epochs[1::2]):
    train, val = (re.search(rf"{k} (\S+)", text)[1] for k in ("train_loss", "val_loss"))
    dice = " / ".join(re.findall(r"np\.float32\(([\d.]+)\)", re.search(r"Pseudo dice \[(.*)\]", text)[1]))
    time = re.search(r"Epoch time: (\S+) s", text)[1]
    print(f"| {number} | {train} | {val} | {dice} | {time} |")
print("\n" + re.search(r"Mean Validation Dice: +(\S+)", log)[0])
