#!/usr/bin/env bash
# The seventh check, made again (2026-12-03, fourth session, after the stopped day7.sh): Table 5 quick's CVT size 2
# Pool Skip row (seed 0, the scale's threads: both cores), its dry run made just before its run, nothing else on
# the machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
python "$OUT/rows.py" --seed 0 table5 "$D/cifar10-jpg" CVT pool_skip > "$OUT/table5-quick-CVT-pool_skip-seed0.log.tmp" 2>&1
mv "$OUT/table5-quick-CVT-pool_skip-seed0.log.tmp" "$OUT/table5-quick-CVT-pool_skip-seed0.log"
mv "$OUT/table5-quick.dry-run-CVT-seed0.txt" "$OUT/table5-quick.dry-run-CVT-pool_skip-seed0.txt"
git checkout -- "$OUT/table5-quick.dry-run-CVT-seed0.txt"  # the fifth check's (plain), which rows.py wrote over
