"""report.md and report.csv of this folder, and the README's per-run tables, from the committed run files.

`poolskip report` wrote report.md/report.csv on 2026-11-28 (the layout of that day, with an empty paper
column); today's `report` refuses these summaries (written before summaries had `model_kwargs` and
`placement`), so this script rebuilds the same two files, in the layout of that time, from each run's
summary.json (the monitored metric, mIoU %, at the final evaluation) and config.yaml (the model's options),
then prints the README's per-run tables (from metrics.jsonl and `final_metrics`):

    python3 results/seg2d-camvid-cpu-12ep/tables.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import yaml

here = Path(__file__).resolve().parent
VARIANTS = {"false": "plain", "true": "Pool Skip"}
runs = {v: sorted((here / "runs" / f"pool_skip_{v}").glob("seed*")) for v in VARIANTS}
summaries = {v: [json.loads((d / "summary.json").read_text()) for d in ds] for v, ds in runs.items()}
config = yaml.safe_load((runs["false"][0] / "config.yaml").read_text())
first = summaries["false"][0]
kwargs = ", ".join(f"{k}={v}" for k, v in sorted(config["model_kwargs"].items()))
model, dataset, metric, mode = f"{first['model']} ({kwargs})", first["dataset"], *first["monitor"].values()
values = {v: [s["final"] for s in ss] for v, ss in summaries.items()}
seeds = {v: " ".join(str(s["seed"]) for s in ss) for v, ss in summaries.items()}
mean = {v: sum(x) / len(x) for v, x in values.items()}
std = {v: statistics.stdev(x) for v, x in values.items()}
n = {v: len(x) for v, x in values.items()}
diff = mean["true"] - mean["false"]
better = "lower" if mode == "min" else "higher"

cell = {v: f"{mean[v]:.2f} ± {std[v]:.2f} (n={n[v]})" for v in values}
(here / "report.md").write_text(
    "| model | dataset | metric | plain | +Pool Skip | Pool Skip − plain | paper (plain / +Pool Skip) |\n"
    "|---|---|---|---:|---:|---:|---:|\n"
    f"| {model} | {dataset} | {metric} ({better} is better) | {cell['false']} | {cell['true']} | {diff:+.2f} | - |\n\n"
    "The metric each run's task monitors, at the final evaluation; mean ± sample std over seeds.\n"
)
(here / "report.csv").write_text(  # csv's line ends, as the file was written
    "model,dataset,metric,plain_n,plain_mean,plain_std,plain_seeds,mode,pool_skip_n,pool_skip_mean,pool_skip_std,"
    "pool_skip_seeds,difference,paper_plain,paper_pool_skip\r\n"
    f"{model},{dataset},{metric},{n['false']},{mean['false']!r},{std['false']!r},{seeds['false']},{mode},"
    f"{n['true']},{mean['true']!r},{std['true']!r},{seeds['true']},{diff!r},,\r\n"
)
print((here / "report.md").read_text())
print("| run | mIoU, epoch 6 | mIoU, epoch 12 | pixel acc. | mean class acc. | test loss | train loss (epoch 12) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for v, name in VARIANTS.items():
    for d, s in zip(runs[v], summaries[v]):
        history = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
        evals = " | ".join(f"{r['miou']:.2f}" for r in history if "miou" in r)
        f = s["final_metrics"]
        print(f"| {name}, seed {s['seed']} | {evals} | {f['pixel_acc']:.2f} | {f['mean_acc']:.2f} "
              f"| {f['eval_loss']:.3f} | {f['train_loss']:.3f} |")  # fmt: skip
print("\n| run | IoU per class |\n|---|---|")
for v, name in VARIANTS.items():
    for s in summaries[v]:
        print(f"| {name}, seed {s['seed']} | {', '.join(f'{x:.1f}' for x in s['final_metrics']['class_iou'])} |")
print("\nwall seconds:", ", ".join(f"{VARIANTS[v]} seed {s['seed']} {s['wall_seconds']:,.0f}" for v in VARIANTS
                                for s in summaries[v]))  # fmt: skip
