"""Table 3's layout and a slice picture from the run directories of run.sh (reads only their files)."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path

import torch

from poolskip.engine.checkpoint import load_checkpoint
from poolskip.engine.config import make_config
from poolskip.experiments.table3 import format_table3, save_slices
from poolskip.tasks import get_task

here = Path(__file__).resolve().parent
suffix = sys.argv[1] if len(sys.argv) > 1 else ""  # "" (run.sh) or "_4ep" (run_4epochs.sh)
runs = {v: here / "runs" / f"nnunet_{v}{suffix}" / "seed0" for v in ("plain", "pool_skip")}
rows, models, info = [], {}, {}
for v, d in runs.items():
    s = json.loads((d / "summary.json").read_text())
    last = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if "dice" in line][-1]
    rows.append({"dataset": "Hippocampus (fold 0, 20 val)", "model": "nnunet", "variant": v,
                 "dice": last["dice"], "nsd": last["nsd"], "iou": last["iou"]})  # fmt: skip
    models[v], info[v] = load_checkpoint(d, "last", "cpu")
text = format_table3(rows)
final = {v: json.loads((runs[v] / "metrics.jsonl").read_text().splitlines()[-1]) for v in runs}
per = {v: {m: [round(x, 2) for x in final[v][f"{m}_per_class"]] for m in ("dice", "nsd", "iou")} for v in runs}
text += "\nper class (Anterior, Posterior):\n" + "\n".join(f"  {v}: {per[v]}" for v in per) + "\n"
print(text)
(here / f"table3{suffix}.txt").write_text(text)

cfg = make_config(info["plain"]["config"])
task = get_task("segmentation3d")(cfg, torch.device("cpu"), state=info["plain"]["task_state"])
vol = task.eval_vols[int(sys.argv[2]) if len(sys.argv) > 2 else 0]
steps = info["plain"]["epoch"] * task.steps_per_epoch()
preds = {v: task.predict(models[v], vol["image"], nullcontext).argmax(0) for v in models}
shown = {"plain": preds["plain"], "Pool Skip": preds["pool_skip"]}
title = f"{vol['id']}: nnU-Net after {steps} CPU steps of batch 2 (fold 0)"
save_slices(here / f"slices{suffix}.png", vol["image"], vol["label"], shown, title=title)
