#!/usr/bin/env bash
# The seventh check (2026-12-03, fourth session): Pool Skip rows of quick tables no check had timed, each dry run
# made just before its run by the same estimator, one process at a time, on the scale's threads (both cores):
# Table 5 quick's CVT size 2 Pool Skip (seed 0, beside the plain CVT of the fifth check), then Fig. 3 quick's
# ResNet101 width 4, plain and Pool Skip (seed 0). From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
python "$OUT/rows.py" --seed 0 table5 "$D/cifar10-jpg" CVT pool_skip > "$OUT/table5-quick-CVT-pool_skip-seed0.log.tmp" 2>&1
mv "$OUT/table5-quick-CVT-pool_skip-seed0.log.tmp" "$OUT/table5-quick-CVT-pool_skip-seed0.log"
mv "$OUT/table5-quick.dry-run-CVT-seed0.txt" "$OUT/table5-quick.dry-run-CVT-pool_skip-seed0.txt"
git checkout -- "$OUT/table5-quick.dry-run-CVT-seed0.txt"  # the fifth check's (plain), which rows.py wrote over
python "$OUT/rows.py" --seed 0 fig3 "$D/cifar10-jpg" ResNet101 plain > "$OUT/fig3-quick-ResNet101-plain-seed0.log" 2>&1
mv "$OUT/fig3-quick.dry-run-ResNet101-seed0.txt" "$OUT/fig3-quick.dry-run-ResNet101-plain-seed0.txt"
python "$OUT/rows.py" --seed 0 fig3 "$D/cifar10-jpg" ResNet101 pool_skip > "$OUT/fig3-quick-ResNet101-pool_skip-seed0.log" 2>&1
mv "$OUT/fig3-quick.dry-run-ResNet101-seed0.txt" "$OUT/fig3-quick.dry-run-ResNet101-pool_skip-seed0.txt"
