"""The README's stage tables, from the per-layer CSVs that `poolskip diagnose` wrote into this folder.

analyze.py made the README's tables of 2026-11-27 from the run directories (checkpoints, metrics.jsonl), which
are not kept; this script rebuilds, from the committed CSVs alone, the rows they still hold: each trained model's
mean Hoyer sparsity per ResNet stage, the largest l2/l1 and the layer it is at, the dead-unit fraction of the
ReLU sites per stage and the mean near-zero weight fraction, as analyze.py computed them (Pool Skip's inner
convs and outputs left out, `diagnose`'s `plain_layers()` and `activation_sites()`). The largest l2/l1 is
checked against the `summary.json` beside each CSV.

    python3 results/diagnose-deep-resnet/tables.py
"""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

here = Path(__file__).resolve().parent
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
# (label, weights, CSV, its label in summary.json): the models run.sh and run_long.sh probed
RUNS = [
    ("plain seed 0", "epoch 4", "plain.csv", "plain"),
    ("Pool Skip S2", "epoch 4", "Pool_Skip_S2.csv", "Pool Skip S2"),
    ("Pool Skip S4", "epoch 4", "Pool_Skip_S4.csv", "Pool Skip S4"),
    ("plain", "epoch 10", "10-epochs/plain_10_ep.csv", "plain 10 ep"),
    ("Pool Skip S2", "epoch 10", "10-epochs/Pool_Skip_S2_10_ep.csv", "Pool Skip S2 10 ep"),
]


def stage_of(name: str) -> str | None:
    """The ResNet stage of a layer or site name: the stem is ``conv1`` and its ReLU ``relu``; fc: None."""
    head = name.split(".")[0]
    return "stem" if head in ("conv1", "relu") else head if head in STAGES else None


rows = []
for label, when, path, key in RUNS:
    with open(here / path, newline="") as f:
        table = list(csv.DictReader(f))
    layers = [r for r in table if r["kind"] in ("conv", "linear") and r["called"] == "True"]
    sites = [r for r in table if r["kind"] == "activation"]
    stages = {
        s: {
            "hoyer": statistics.fmean(float(r["hoyer"]) for r in layers if stage_of(r["name"]) == s),
            "dead": statistics.fmean(float(r["dead_units"]) for r in sites if stage_of(r["module"]) == s),
        }
        for s in STAGES
    }
    top = max(layers, key=lambda r: float(r["l2_l1"]))
    near_zero = statistics.fmean(float(r["near_zero"]) for r in layers)
    summary = json.loads((here / path).with_name("summary.json").read_text())[key]
    assert (float(top["l2_l1"]), float(top["index"])) == (summary["l2_l1_max"], summary["l2_l1_argmax"]), path
    assert abs(near_zero - summary["near_zero_mean"]) < 1e-12, path
    rows.append((label, when, stages, float(top["l2_l1"]), top["index"], top["name"], near_zero))

print("| run | weights | " + " | ".join(f"Hoyer {s}" for s in STAGES) + " | l2/l1 max (layer) |")
print("|---|---|" + "---:|" * (len(STAGES) + 1))
for label, when, st, l2_l1, index, _, _ in rows:
    print(
        f"| {label} | {when} | " + " | ".join(f"{st[s]['hoyer']:.3f}" for s in STAGES) + f" | {l2_l1:.3f} ({index}) |"
    )
print("\n| run | weights | " + " | ".join(f"dead units {s}" for s in STAGES) + " | near-zero mean |")
print("|---|---|" + "---:|" * (len(STAGES) + 1))
for label, when, st, _, _, _, near_zero in rows:
    print(f"| {label} | {when} | " + " | ".join(f"{st[s]['dead']:.3f}" for s in STAGES) + f" | {near_zero:.4f} |")
print("\nlargest l2/l1 at:", ", ".join(f"{label} {when}: {name}" for label, when, _, _, _, name, _ in rows))
