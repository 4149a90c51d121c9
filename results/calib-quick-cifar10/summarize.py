"""Print the calibration runs as a Markdown table (read from each run's config.yaml, summary.json, metrics.jsonl)."""

import json
from pathlib import Path

import yaml

from poolskip.experiments.results import model_label

root = Path(__file__).parent / "runs"
print(
    "| run | model (factory options) | train images | epochs | batch | peak lr | warm-up (epochs) | channels_last "
    "| torch threads | test error % (10,000 images) | train samples/s (mean of epochs) | wall |"
)
print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
for d in sorted(root.glob("*/seed0")):
    c = yaml.safe_load((d / "config.yaml").read_text())
    s = json.loads((d / "summary.json").read_text()) if (d / "summary.json").is_file() else None
    m = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
    sps = sum(r["samples_per_s"] for r in m) / len(m) if m else float("nan")
    o, r = c["optim"], c["run"]
    err = f"{s['final']:.2f}" if s else f"unfinished ({len(m)}/{o['epochs']} epochs)"
    wall = f"{s['wall_seconds'] / 60:.0f} min" if s else "—"
    print(
        f"| {d.parent.name} | {model_label(c['model'], c['model_kwargs'] or {})} "
        f"| {c['data']['train_subset'] or 'all'} "
        f"| {o['epochs']} | {o['batch_size']} | {o['lr']} | {o['warmup_epochs']} | {r['channels_last']} "
        f"| {r['threads']} | {err} | {sps:.0f} | {wall} |"
    )
