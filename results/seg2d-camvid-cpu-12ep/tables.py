"""report.md and report.csv of this folder, and the README's per-run tables, from the committed run files.

`poolskip report` wrote report.md/report.csv on 2026-11-28 (the layout of that day, with an empty paper
column); today's `report` refuses these summaries (written before summaries had `model_kwargs` and
`placement`), so this script rebuilds the table with ../legacy_report.py from each run's
summary.json (the monitored metric, mIoU %, at the final evaluation) and config.yaml (the model's options),
then prints the README's per-run tables (from metrics.jsonl and `final_metrics`):

    python3 results/seg2d-camvid-cpu-12ep/tables.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent))
from legacy_report import NAMES, report_pair  # noqa: E402

runs, summaries = report_pair(here, "runs/pool_skip_{v}", lambda s: s["final"])
print("| run | mIoU, epoch 6 | mIoU, epoch 12 | pixel acc. | mean class acc. | test loss | train loss (epoch 12) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for v, name in NAMES.items():
    for d, s in zip(runs[v], summaries[v]):
        history = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        evals = " | ".join(f"{r['miou']:.2f}" for r in history if "miou" in r)
        f = s["final_metrics"]
        print(f"| {name}, seed {s['seed']} | {evals} | {f['pixel_acc']:.2f} | {f['mean_acc']:.2f} "
              f"| {f['eval_loss']:.3f} | {f['train_loss']:.3f} |")  # fmt: skip
print("\n| run | IoU per class |\n|---|---|")
for v, name in NAMES.items():
    for s in summaries[v]:
        print(f"| {name}, seed {s['seed']} | {', '.join(f'{x:.1f}' for x in s['final_metrics']['class_iou'])} |")
print("\nwall seconds:", ", ".join(f"{NAMES[v]} seed {s['seed']} {s['wall_seconds']:,.0f}" for v in NAMES
                                for s in summaries[v]))  # fmt: skip
