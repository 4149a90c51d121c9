"""report.md and report.csv of this folder, and the README's per-run errors, from the committed run files.

`poolskip report` wrote report.md/report.csv on 2026-11-27; today's `report` refuses these summaries (written
before summaries had `task`, `model_kwargs`, `monitor`, `final`, `placement`), so this script rebuilds the same
two files, in the layout of that time, from each run's summary.json (`final_error`, the top-1 test error % after
the last epoch) and config.yaml (the model's options and the data folder):

    python3 results/train-cifar10-resnet18w16-cpu/tables.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml

here = Path(__file__).resolve().parent
runs = {v: sorted((here / "runs" / f"resnet18w16_ps-{v}").glob("seed*")) for v in ("false", "true")}
summaries = {v: [json.loads((d / "summary.json").read_text()) for d in ds] for v, ds in runs.items()}
config = yaml.safe_load((runs["false"][0] / "config.yaml").read_text())
kwargs = ", ".join(f"{k}={v}" for k, v in sorted(config["model_kwargs"].items()))
model = f"{config['model']} ({kwargs})"
dataset = f"{config['dataset']}:{Path(config['data_dir']).name}"
values = {v: [s["final_error"] for s in ss] for v, ss in summaries.items()}
seeds = {v: " ".join(str(s["seed"]) for s in ss) for v, ss in summaries.items()}
mean = {v: sum(x) / len(x) for v, x in values.items()}
std = {v: statistics.stdev(x) for v, x in values.items()}
n = {v: len(x) for v, x in values.items()}
diff = mean["true"] - mean["false"]

cell = {v: f"{mean[v]:.2f} ± {std[v]:.2f} (n={n[v]})" for v in values}
(here / "report.md").write_text(
    "| model | dataset | plain | +Pool Skip | Pool Skip − plain |\n|---|---|---:|---:|---:|\n"
    f"| {model} | {dataset} | {cell['false']} | {cell['true']} | {diff:.2f} |\n\n"
    "Top-1 test error (%) of the final epoch, mean ± sample std over seeds.\n"
)
(here / "report.csv").write_text(  # csv's line ends, as the file was written
    "model,dataset,plain_n,plain_mean,plain_std,plain_seeds,pool_skip_n,pool_skip_mean,pool_skip_std,"
    "pool_skip_seeds,difference\r\n"
    f"{model},{dataset},{n['false']},{mean['false']!r},{std['false']!r},{seeds['false']},"
    f"{n['true']},{mean['true']!r},{std['true']!r},{seeds['true']},{diff!r}\r\n"
)
print((here / "report.md").read_text())
for v, name in (("false", "plain"), ("true", "Pool Skip")):
    history = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()] for d in runs[v]]
    epochs = [" -> ".join(f"{r['test_error']:.2f}" for r in h) for h in history]
    per_run = ", ".join(
        f"{s['final_error']:.2f} (seed {s['seed']}; per epoch {e})" for s, e in zip(summaries[v], epochs)
    )
    print(f"{name}: {per_run}")
