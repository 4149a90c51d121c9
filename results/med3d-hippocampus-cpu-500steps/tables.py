"""report/ and report_2seeds/ (report.md, report.csv) and the README's tables, from the committed run files.

`poolskip report` wrote report/ and report_2seeds/ on 2026-11-28; today's `report` refuses these summaries
(written before summaries had `model_kwargs` and `placement`), so this script rebuilds them with
../legacy_report.py from each run's `files/*/summary.json` (the monitored Dice %, and NSD and IoU, at the
final evaluation); the Table 3 section is today's `format_table3`. It then prints the README's tables (from
summary.json and metrics.jsonl) and each run's wall clock, peak RSS (GNU time, in the `*.log` files) and
seconds per step. The per-volume block is per_volume.py's (per_volume_*.txt), not this script's.

    python3 results/med3d-hippocampus-cpu-500steps/tables.py
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

from poolskip.experiments.table3 import format_table3

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent))
from legacy_report import write_report  # noqa: E402

NAMES = {"nnunet": "nnU-Net", "vnet": "V-Net", "plain": "plain", "pool_skip": "Pool Skip"}


def read(name: str) -> dict:
    d = here / "files" / name
    s = json.loads((d / "summary.json").read_text())
    s["history"] = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return s


def report(runs: list[str], out: Path) -> None:
    """report.md and report.csv of ``runs`` (names under files/) in ``out`` (../legacy_report.py), with the
    Table 3 layout below the table."""
    summaries = [read(name) for name in runs]
    records = [
        {"model": s["model"], "dataset": s["dataset"], "seed": s["seed"], "variant": s["variant"],
         "value": s["final"], **s["monitor"]}
        for s in summaries
    ]  # fmt: skip
    rows = [{"dataset": s["dataset"], "model": s["model"], "variant": s["variant"],
             **{m: s["final_metrics"][m] for m in ("dice", "nsd", "iou")}} for s in summaries]  # fmt: skip
    note = (
        "\nDice, NSD and mIoU at each run's final evaluation, mean ± sample std over its seeds (and folds, each its "
        "own run); the paper's numbers are 5-fold ensembles on BTCV / AMOS.\n"
    )
    write_report(records, out, "\n### Table 3 layout (3D segmentation, %)\n\n" + format_table3(rows) + note)


report([f"{m}_{v}" for m in ("nnunet", "vnet") for v in ("plain", "pool_skip")], here / "report")
report([f"nnunet_{v}{s}" for v in ("plain", "pool_skip") for s in ("", "_seed1")], here / "report_2seeds")

seed0 = {(m, v): read(f"{m}_{v}") for m in ("nnunet", "vnet") for v in ("plain", "pool_skip")}
print("| model | variant | Dice | NSD (1 mm) | IoU | Dice Anterior / Posterior |\n|---|---|---:|---:|---:|---:|")
for (m, v), s in seed0.items():
    f = s["final_metrics"]
    a, p = f["dice_per_class"]
    print(f"| {NAMES[m]} | {NAMES[v]} | {f['dice']:.2f} | {f['nsd']:.2f} | {f['iou']:.2f} | {a:.2f} / {p:.2f} |")

print("\n| run | step 125 | step 250 | step 375 | step 500 |\n|---|---:|---:|---:|---:|")
for (m, v), s in seed0.items():
    dice = {25 * r["epoch"]: f"{r['dice']:.2f}" for r in s["history"] if "dice" in r}
    print(f"| {NAMES[m]} {NAMES[v]} | " + " | ".join(dice.get(step, "") for step in (125, 250, 375, 500)) + " |")

print(
    "\n| nnU-Net | seed 0 Dice / NSD / IoU | seed 1 Dice / NSD / IoU | mean ± std over the 2 seeds (Dice, NSD, IoU) |"
)
print("|---|---:|---:|---:|")
two = {v: [read(f"nnunet_{v}{s}")["final_metrics"] for s in ("", "_seed1")] for v in ("plain", "pool_skip")}
for v, runs in two.items():
    seeds = " | ".join(" / ".join(f"{f[m]:.2f}" for m in ("dice", "nsd", "iou")) for f in runs)
    spread = ", ".join(f"{statistics.fmean(f[m] for f in runs):.2f} ± {statistics.stdev(f[m] for f in runs):.2f}"
                       for m in ("dice", "nsd", "iou"))  # fmt: skip
    print(f"| {NAMES[v]} | {seeds} | {spread} |")
diffs = [" / ".join(f"{ps[m] - pl[m]:+.2f}" for m in ("dice", "nsd", "iou")) for pl, ps in zip(*two.values())]
means = ", ".join(
    f"{statistics.fmean(f[m] for f in two['pool_skip']) - statistics.fmean(f[m] for f in two['plain']):+.2f}"
    for m in ("dice", "nsd", "iou")
)
print(f"| Pool Skip − plain | {diffs[0]} | {diffs[1]} | {means} |")

print("\nrun: wall clock (GNU time), peak RSS, s per step (mean over the 20 epochs of 25 steps), evaluations")
for name in sorted(p.name for p in (here / "files").iterdir()):
    log = (here / f"{name}.log").read_text()
    wall = re.search(r"Elapsed \(wall clock\) time.*: ([\d:.]+)", log)[1]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", log)[1])
    h = read(name)["history"]
    step = sum(r["epoch_seconds"] for r in h) / (25 * len(h))
    evals = ", ".join(f"{r['eval_seconds']:.0f}" for r in h if "eval_seconds" in r)
    print(f"  {name}: {wall}, {rss:,} KiB = {rss / 1024**2:.2f} GiB, {step:.2f} s/step, evaluations {evals} s")
