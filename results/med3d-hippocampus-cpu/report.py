"""Table 3's layout (table3.txt, table3_4ep.txt) and the README's tables from the kept run files, and the slice
picture where run.sh's run directories with their checkpoints are present.

The tables read only this folder's committed files: ``files/nnunet_*`` (each run's config.yaml, metrics.jsonl,
summary.json) and the runs' logs ``nnunet_*.log`` (GNU time's wall clock and peak RSS). The picture
(slices.png, slices_4ep.png) needs the last checkpoints under ``runs/nnunet_*/seed0``, which are not kept:
without them it is not redrawn and the script says so.

    python3 results/med3d-hippocampus-cpu/report.py [_4ep] [VOLUME]    # "" (run.sh) or "_4ep" (run_4epochs.sh)
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from poolskip.experiments.table3 import format_table3

here = Path(__file__).resolve().parent
suffix = sys.argv[1] if len(sys.argv) > 1 else ""
variants = {"plain": "plain", "pool_skip": "Pool Skip"}
files = {v: here / "files" / f"nnunet_{v}{suffix}" for v in variants}
history = {v: [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
           for v, d in files.items()}  # fmt: skip
last = {v: [r for r in h if "dice" in r][-1] for v, h in history.items()}

rows = [{"dataset": "Hippocampus (fold 0, 20 val)", "model": "nnunet", "variant": v, "dice": last[v]["dice"],
         "nsd": last[v]["nsd"], "iou": last[v]["iou"]} for v in variants]  # fmt: skip
text = format_table3(rows)
per = {v: {m: [round(x, 2) for x in last[v][f"{m}_per_class"]] for m in ("dice", "nsd", "iou")} for v in variants}
text += "\nper class (Anterior, Posterior):\n" + "\n".join(f"  {v}: {per[v]}" for v in per) + "\n"
(here / f"table3{suffix}.txt").write_text(text)
print(f"table3{suffix}.txt:\n\n{text}")


def gnu_time(v: str) -> tuple[str, float]:
    """Wall clock (as "M min SS s") and peak RSS (GiB) of the run's log, from GNU time's report (RSS in KiB)."""
    log = (here / f"nnunet_{v}{suffix}.log").read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", log)
    h, m, s = int(wall[1] or 0), int(wall[2]), round(float(wall[3]))
    m, s = 60 * h + m + s // 60, s % 60
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)[1])
    return f"{m} min {s:02d} s", rss / 1024**2


print(f"README table ({len(history['plain'])} epochs x 25 steps):\n")
print("| variant | train loss per epoch | Dice | NSD (1 mm) | IoU | wall (whole run) | s / epoch "
      "| eval of 20 volumes | peak RSS (GiB) |")  # fmt: skip
print("|---|---|---|---|---|---|---|---|---|")
for v, name in variants.items():
    h, wall, rss = history[v], *gnu_time(v)
    losses = ", ".join(f"{r['train_loss']:.3f}" for r in h)
    epochs = ", ".join(f"{r['epoch_seconds']:.0f}" for r in h)
    print(
        f"| {name} | {losses} | {last[v]['dice']:.2f} | {last[v]['nsd']:.2f} | {last[v]['iou']:.2f} | {wall} "
        f"| {epochs} | {last[v]['eval_seconds']:.0f} s | {rss:.2f} |"
    )
train = {v: sum(r["epoch_seconds"] for r in h) for v, h in history.items()}
print(f"\ntraining epochs: Pool Skip {train['pool_skip']:,.0f} s, plain {train['plain']:,.0f} s "
      f"({train['pool_skip'] / train['plain']:.2f}x)")  # fmt: skip

runs = {v: here / "runs" / f"nnunet_{v}{suffix}" / "seed0" for v in variants}
if not all((d / "checkpoints" / "last.pt").is_file() for d in runs.values()):
    print(
        f"\nslices{suffix}.png not redrawn: it needs the last checkpoints under runs/nnunet_*{suffix}/seed0 (not kept)"
    )
    sys.exit(0)

from contextlib import nullcontext  # noqa: E402  (the picture only: torch and the data)

import torch  # noqa: E402

from poolskip.engine.checkpoint import load_checkpoint  # noqa: E402
from poolskip.engine.config import make_config  # noqa: E402
from poolskip.experiments.table3 import save_slices  # noqa: E402
from poolskip.tasks import get_task  # noqa: E402

models, info = {}, {}
for v, d in runs.items():
    models[v], info[v] = load_checkpoint(d, "last", "cpu")
cfg = make_config(info["plain"]["config"])
task = get_task("segmentation3d")(cfg, torch.device("cpu"), state=info["plain"]["task_state"])
vol = task.eval_vols[int(sys.argv[2]) if len(sys.argv) > 2 else 0]
steps = info["plain"]["epoch"] * task.steps_per_epoch()
preds = {v: task.predict(models[v], vol["image"], nullcontext).argmax(0) for v in models}
shown = {"plain": preds["plain"], "Pool Skip": preds["pool_skip"]}
title = f"{vol['id']}: nnU-Net after {steps} CPU steps of batch 2 (fold 0)"
save_slices(here / f"slices{suffix}.png", vol["image"], vol["label"], shown, title=title)
