#!/usr/bin/env bash
# The fifth check (2026-12-03, second session): the mended estimator on quick runs no check had timed with it,
# each dry run made just before its runs, one process at a time. First (started by hand at 07:31 UTC, before this
# script was written; its dry run and log renamed after it like day4.sh's Table 3 rows):
#   python results/estimate-check/rows.py --seed 0 table3 ../shared/data/hippocampus-msd V-Net plain \
#     > results/estimate-check/table3-quick-V-Net-seed0.log
# then this script, which waits for that run to end: Fig. 3 quick's plain ResNet50 (seed 0, the config of its
# calibration run, ../calib-quick-cifar10/) and Table 5 quick's plain CVT (seed 0, likewise), both on the scale's
# threads (both cores). From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
while [ ! -e "$OUT/vnet-plain.end" ]; do sleep 20; done
mv "$OUT/table3-quick.dry-run-V-Net-seed0.txt" "$OUT/table3-quick.dry-run-V-Net-plain-seed0.txt"
mv "$OUT/table3-quick-V-Net-seed0.log" "$OUT/table3-quick-V-Net-plain-seed0.log"
python "$OUT/rows.py" --seed 0 fig3 "$D/cifar10-jpg" ResNet50 plain > "$OUT/fig3-quick-ResNet50-seed0.log" 2>&1
python "$OUT/rows.py" --seed 0 table5 "$D/cifar10-jpg" CVT plain > "$OUT/table5-quick-CVT-seed0.log" 2>&1
