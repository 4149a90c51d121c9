"""Stage-level numbers for results/diagnose-deep-resnet/README.md, from the run directories of run*.sh.

For each run: the trained model (last checkpoint) and the same model at initialisation (rebuilt with
the run's seed, as `poolskip train` builds it), both probed by `poolskip.diagnostics.diagnose` on the
same 500 test images that `poolskip diagnose --probe-size 500` uses. Prints Markdown tables: mean
Hoyer sparsity, l2/l1 and near-zero fraction per ResNet stage, dead units of the ReLU sites per
stage, and the run's final test error; then the per-epoch training monitor (`diagnostics` in
metrics.jsonl, the engine's 64-image probe).

    python results/diagnose-deep-resnet/analyze.py LABEL=RUN_DIR ...
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import torch

from poolskip.diagnostics import diagnose
from poolskip.engine import build_model, make_config, restore
from poolskip.experiments.report import monitored
from poolskip.tasks import ModelSpec

STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


def stage_of(name: str) -> str | None:
    """The ResNet stage of a layer or site name: the stem is ``conv1`` and its ReLU ``relu``; fc: None."""
    head = name.split(".")[0]
    return "stem" if head in ("conv1", "relu") else head if head in STAGES else None


def stage_means(diag) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        layers = [s for s in diag.plain_layers() if stage_of(s.name) == stage]
        sites = [a for a in diag.activation_sites() if stage_of(a.module) == stage]
        out[stage] = {
            "hoyer": statistics.fmean(s.hoyer for s in layers),
            "l2_l1": statistics.fmean(s.l2_l1 for s in layers),
            "near_zero": statistics.fmean(s.near_zero for s in layers),
            "dead": statistics.fmean(a.dead_units for a in sites) if sites else float("nan"),
        }
    return out


def main(argv: list[str]) -> None:
    runs = dict(a.split("=", 1) for a in argv)
    rows = []
    for label, run_dir in runs.items():
        model, task, info = restore(run_dir, overrides={"data.train_subset": None})
        x, y = task.probe_batch(500, 0)  # the set `poolskip diagnose --probe-size 500` uses
        cfg = make_config(info["config"])
        torch.manual_seed(cfg.run.seed)  # as the engine does right before building the model
        init = build_model(cfg, ModelSpec(**info["model_spec"])).eval()
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
        for when, m in (("init", init), (f"epoch {info['epoch']}", model)):
            d = diagnose(m, x, y, loss_fn=task.probe_loss, batch_size=125)
            err = f"{monitored(summary)[2]:.1f}" if when != "init" else ""
            rows.append((label, when, stage_means(d), d.summary(), err))

    print("| run | weights | " + " | ".join(f"Hoyer {s}" for s in STAGES) + " | l2/l1 max (layer) | test error % |")
    print("|---|---|" + "---:|" * (len(STAGES) + 2))
    for label, when, st, summ, err in rows:
        cells = " | ".join(f"{st[s]['hoyer']:.3f}" for s in STAGES)
        print(f"| {label} | {when} | {cells} | {summ['l2_l1_max']:.3f} ({int(summ['l2_l1_argmax'])}) | {err} |")
    print()
    print("| run | weights | " + " | ".join(f"dead units {s}" for s in STAGES) + " | near-zero mean |")
    print("|---|---|" + "---:|" * (len(STAGES) + 1))
    for label, when, st, summ, _ in rows:
        cells = " | ".join(f"{st[s]['dead']:.3f}" for s in STAGES)
        print(f"| {label} | {when} | {cells} | {summ['near_zero_mean']:.4f} |")
    print()
    print("| run | epoch | test error % | l2/l1 max | Hoyer mean | dead units mean | grad norm median |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, run_dir in runs.items():
        for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
            r = json.loads(line)
            g = r.get("diagnostics", {})
            print(
                f"| {label} | {r['epoch']} | {r['test_error']:.1f} | {g.get('l2_l1_max', float('nan')):.3f} | "
                f"{g.get('hoyer_mean', float('nan')):.3f} | {g.get('dead_units_mean', float('nan')):.3f} | "
                f"{g.get('grad_norm_median', float('nan')):.3g} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
