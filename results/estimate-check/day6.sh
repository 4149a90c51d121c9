#!/usr/bin/env bash
# The sixth check (2026-12-03, third session): rows no check had timed, each dry run made just before its run by
# the same estimator, one process at a time: Table 1 quick's MobileNet width 8 {Conv,Skip} and widened controls
# (seed 3, one thread, like the other Table 1 checks), then Table 5 quick's plain ViT (seed 0, the scale's threads).
# From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
python "$OUT/rows.py" table1 "$D/cifar10-jpg" MobileNet conv_skip > "$OUT/table1-quick-MobileNet-conv_skip.log" 2>&1
mv "$OUT/table1-quick.dry-run-MobileNet.txt" "$OUT/table1-quick.dry-run-MobileNet-conv_skip.txt"
git checkout -- "$OUT/table1-quick.dry-run-MobileNet.txt"  # the first check's, which rows.py wrote over
python "$OUT/rows.py" table1 "$D/cifar10-jpg" MobileNet wide > "$OUT/table1-quick-MobileNet-wide.log" 2>&1
mv "$OUT/table1-quick.dry-run-MobileNet.txt" "$OUT/table1-quick.dry-run-MobileNet-wide.txt"
git checkout -- "$OUT/table1-quick.dry-run-MobileNet.txt"
python "$OUT/rows.py" --seed 0 table5 "$D/cifar10-jpg" ViT plain > "$OUT/table5-quick-ViT-seed0.log" 2>&1
