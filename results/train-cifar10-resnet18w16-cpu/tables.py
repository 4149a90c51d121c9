"""report.md and report.csv of this folder, and the README's per-run errors, from the committed run files.

`poolskip report` wrote report.md/report.csv on 2026-11-27; today's `report` refuses these summaries (written
before summaries had `task`, `model_kwargs`, `monitor`, `final`, `placement`), so this script rebuilds the
table with ../legacy_report.py from each run's summary.json (`final_error`, the top-1 test error % after the
last epoch) and config.yaml (the model's options and the data folder):

    python3 results/train-cifar10-resnet18w16-cpu/tables.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent))
from legacy_report import NAMES, pair_records, read_pair, write_report  # noqa: E402

runs, summaries, config, model = read_pair(here, "runs/resnet18w16_ps-{v}")
dataset = f"{config['dataset']}:{Path(config['data_dir']).name}"
records = pair_records(
    summaries, lambda s: s["final_error"], model=model, dataset=dataset, metric="test_error", mode="min"
)
print(write_report(records, here))
for v, name in NAMES.items():
    history = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in runs[v]]
    epochs = [" -> ".join(f"{r['test_error']:.2f}" for r in h) for h in history]
    per_run = ", ".join(
        f"{s['final_error']:.2f} (seed {s['seed']}; per epoch {e})" for s, e in zip(summaries[v], epochs)
    )
    print(f"{name}: {per_run}")
