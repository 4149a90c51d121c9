"""report.md and report.csv of this folder, and the README's per-run table, from the committed run files.

`poolskip report` wrote report.md/report.csv on 2026-11-28; today's `report` refuses these summaries (written
before summaries had `model_kwargs` and `placement`), so this script rebuilds the table with
../legacy_report.py from each run's summary.json (the monitored metric, mIoU %, at the final evaluation) and
config.yaml (the model's options), then prints the README's per-run table (from `final_metrics`):

    python3 results/seg2d-camvid-cpu/tables.py
"""

from __future__ import annotations

import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent))
from legacy_report import NAMES, report_pair  # noqa: E402

runs, summaries = report_pair(here, "runs/pool_skip_{v}", lambda s: s["final"])
print("| run | mIoU | pixel acc. | mean class acc. | eval loss |\n|---|---:|---:|---:|---:|")
for v, name in NAMES.items():
    for s in summaries[v]:
        f = s["final_metrics"]
        print(f"| {name}, seed {s['seed']} | {f['miou']:.2f} | {f['pixel_acc']:.2f} | {f['mean_acc']:.2f} "
              f"| {f['eval_loss']:.3f} |")  # fmt: skip
print("\nclass IoU % (CamVid's 11 classes in order), eval seconds, wall seconds:")
for v, name in NAMES.items():
    for s in summaries[v]:
        f = s["final_metrics"]
        below2 = sum(x < 2 for x in f["class_iou"])
        print(
            f"  {name}, seed {s['seed']}: {', '.join(f'{x:.1f}' for x in f['class_iou'])} ({below2} below 2); "
            f"eval {f['eval_seconds']:.0f} s, wall {s['wall_seconds']:.0f} s; mIoU {s['final']:.3f}"
        )
