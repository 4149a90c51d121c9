#!/bin/bash
# The timing experiment of 2026-12-02 00:39-00:45 UTC (README, "How the dry run's time estimate held"), with the
# table's two training commands paused (SIGSTOP) so that the machine was otherwise idle: 50 real training
# steps (6,400 images, one epoch, then one evaluation) of each ResNet18 row with the config of its seed-1 run,
# one alone, then two at a time (seeds 1 and 2), as `poolskip train` runs them. Their config.yaml,
# metrics.jsonl and summary.json are in runs/; steps.txt is the printout (epoch_seconds / 50). From the
# repository root.
cd "$(git rev-parse --show-toplevel)"
R=results/repro-table1-quick-v2/table1-quick/runs
OUT=${OUT:-/tmp/estexp/out}
ROWS=${ROWS:-"plain pool_skip conv_skip wide depthwise"}
one() { # row seed tag
  poolskip train --recipe $R/imagefolder-as-cifar10_ResNet18-width-8-_$1/seed1/config.yaml --seed $2 \
    --set data.train_subset=6400 optim.epochs=1 --out-dir $OUT --run-name $1-$3-s$2 > $OUT/$1-$3-s$2.log 2>&1
}
mkdir -p $OUT
for r in $ROWS; do
  one $r 1 alone
  one $r 1 pair & one $r 2 pair & wait
done
python3 - "$OUT" <<'PY'
import json, sys, pathlib
for d in sorted(pathlib.Path(sys.argv[1]).glob("*/*/metrics.jsonl")):
    m = [json.loads(l) for l in d.read_text().splitlines()][-1]
    print(f"{d.parent.parent.name:28s} {m['epoch_seconds']/50:.3f} s/step")
PY
