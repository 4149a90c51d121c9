"""Per-volume scores of run.sh's last checkpoints on the fold's 52 validation volumes, and the paired
Pool Skip - plain difference over volumes (how large a difference the evaluation set alone can show).

Reads only the run directories. Each variant's scores go to per_volume_MODEL_VARIANT.csv (computed once,
then read back); the paired summary of a model whose two variants are scored goes to per_volume_MODEL.txt.
Usage (from the worktree root):
    PYTHONPATH=src python3 results/med3d-hippocampus-cpu-500steps/per_volume.py MODEL [VARIANT]
(MODEL: nnunet or vnet; VARIANT: plain or pool_skip, both when left out)
"""

from __future__ import annotations

import csv
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from poolskip.engine.checkpoint import load_checkpoint
from poolskip.engine.config import make_config
from poolskip.metrics import score_volume
from poolskip.tasks import get_task

torch.set_num_threads(1)
here = Path(__file__).resolve().parent
METRICS, CLASSES = ("dice", "nsd", "iou"), ("anterior", "posterior")


def scores(model: str, variant: str) -> np.ndarray:
    """(volumes, metric, class) in percent, from the CSV if it exists, else from the run's last checkpoint."""
    path = here / f"per_volume_{model}_{variant}.csv"
    if not path.is_file():
        net, info = load_checkpoint(here / "runs" / f"{model}_{variant}" / "seed0", "last", "cpu")
        net.eval()
        task = get_task("segmentation3d")(make_config(info["config"]), torch.device("cpu"), state=info["task_state"])
        rows = []
        with torch.no_grad():
            for vol in task.eval_vols:
                pred = task.predict(net, vol["image"], nullcontext).argmax(0)
                s = score_volume(pred, vol["label"], task.ds.num_classes, task.spacing, 1.0) * 100
                rows.append([vol["id"], *[f"{x:.4f}" for x in s.flatten().tolist()]])
        with open(path, "w", newline="") as f:
            csv.writer(f).writerows([["volume"] + [f"{m}_{c}" for m in METRICS for c in CLASSES], *rows])
    with open(path, newline="") as f:
        body = list(csv.reader(f))[1:]
    return np.array([[float(x) for x in r[1:]] for r in body]).reshape(len(body), len(METRICS), len(CLASSES))


model = sys.argv[1]
variants = sys.argv[2:] or ["plain", "pool_skip"]
per = {v: scores(model, v) for v in variants}
if len(per) == 2:
    lines = [f"{model}: {per['plain'].shape[0]} validation volumes, seed 0 each (mean of the two classes per volume)"]
    for i, name in enumerate(METRICS):
        a, b = np.nanmean(per["plain"][:, i], 1), np.nanmean(per["pool_skip"][:, i], 1)
        diff = b - a
        rng = np.random.default_rng(0)
        lo, hi = np.percentile([rng.choice(diff, diff.size).mean() for _ in range(10000)], [2.5, 97.5])
        lines.append(
            f"  {name}: plain {a.mean():.2f} (volume std {a.std(ddof=1):.2f}), Pool Skip {b.mean():.2f} "
            f"(volume std {b.std(ddof=1):.2f}); Pool Skip - plain {diff.mean():+.2f}, per-volume std "
            f"{diff.std(ddof=1):.2f}, 95% bootstrap CI over volumes [{lo:+.2f}, {hi:+.2f}]; "
            f"Pool Skip better on {(diff > 0).sum()}/{diff.size} volumes"
        )
    text = "\n".join(lines) + "\n"
    (here / f"per_volume_{model}.txt").write_text(text)
    print(text)
