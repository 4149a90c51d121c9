"""report/ and report_2seeds/ (report.md, report.csv) and the README's tables, from the committed run files.

`poolskip report` wrote report/ and report_2seeds/ on 2026-11-28; today's `report` refuses these summaries
(written before summaries had `model_kwargs` and `placement`), so this script rebuilds the same files, in the
layout of that time, from each run's `files/*/summary.json` (the monitored Dice %, and NSD and IoU, at the final
evaluation); the Table 3 section is today's `format_table3`. It then prints the README's tables (from
summary.json and metrics.jsonl) and each run's wall clock, peak RSS (GNU time, in the `*.log` files) and
seconds per step. The per-volume block is per_volume.py's (per_volume_*.txt), not this script's.

    python3 results/med3d-hippocampus-cpu-500steps/tables.py
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from poolskip.experiments.table3 import format_table3

here = Path(__file__).resolve().parent
NAMES = {"nnunet": "nnU-Net", "vnet": "V-Net", "plain": "plain", "pool_skip": "Pool Skip"}


def read(name: str) -> dict:
    d = here / "files" / name
    s = json.loads((d / "summary.json").read_text())
    s["history"] = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return s


def cell(values: list[float]) -> str:
    mean = sum(values) / len(values)
    return f"{mean:.2f} ± {statistics.stdev(values):.2f} (n={len(values)})" if len(values) > 1 else f"{mean:.2f} (n=1)"


def report(runs: list[str], out: Path) -> None:
    """report.md and report.csv of ``runs`` (names under files/) in ``out``, as `poolskip report` wrote them."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for name in runs:
        s = read(name)
        groups.setdefault(s["model"], {}).setdefault(s["variant"], []).append(s)
    md = ["| model | dataset | metric | plain | +Pool Skip | Pool Skip − plain | paper (plain / +Pool Skip) |",
          "|---|---|---|---:|---:|---:|---:|"]  # fmt: skip
    csv = ["model,dataset,metric,plain_n,plain_mean,plain_std,plain_seeds,mode,pool_skip_n,pool_skip_mean,"
           "pool_skip_std,pool_skip_seeds,difference,paper_plain,paper_pool_skip"]  # fmt: skip
    rows = []
    for model in sorted(groups):
        by = {v: sorted(ss, key=lambda s: s["seed"]) for v, ss in groups[model].items()}
        first = by["plain"][0]
        metric, mode = first["monitor"]["metric"], first["monitor"]["mode"]
        better = "lower" if mode == "min" else "higher"
        values = {v: [s["final"] for s in ss] for v, ss in by.items()}
        mean = {v: sum(x) / len(x) for v, x in values.items()}
        std = {v: statistics.stdev(x) if len(x) > 1 else 0.0 for v, x in values.items()}
        seeds = {v: " ".join(str(s["seed"]) for s in ss) for v, ss in by.items()}
        diff = mean["pool_skip"] - mean["plain"]
        md.append(f"| {model} | {first['dataset']} | {metric} ({better} is better) | {cell(values['plain'])} "
                  f"| {cell(values['pool_skip'])} | {diff:+.2f} | - |")  # fmt: skip
        csv.append(f"{model},{first['dataset']},{metric},{len(values['plain'])},{mean['plain']!r},{std['plain']!r},"
                   f"{seeds['plain']},{mode},{len(values['pool_skip'])},{mean['pool_skip']!r},{std['pool_skip']!r},"
                   f"{seeds['pool_skip']},{diff!r},,")  # fmt: skip
        rows += [{"dataset": s["dataset"], "model": model, "variant": v, **{m: s["final_metrics"][m] for m in
                  ("dice", "nsd", "iou")}} for v, ss in by.items() for s in ss]  # fmt: skip
    text = "\n".join(md) + (
        "\n\nThe metric each run's task monitors, at the final evaluation; mean ± sample std over seeds (no ± for one "
        "run).\n\n### Table 3 layout (3D segmentation, %)\n\n" + format_table3(rows) + "\nDice, NSD and mIoU at each "
        "run's final evaluation, mean ± sample std over its seeds (and folds, each its own run); the paper's numbers "
        "are 5-fold ensembles on BTCV / AMOS.\n"
    )
    (out / "report.md").write_text(text)
    (out / "report.csv").write_text("\r\n".join(csv) + "\r\n")  # csv's line ends, as the files were written


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
