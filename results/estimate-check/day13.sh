#!/usr/bin/env bash
# The thirteenth check (2026-12-04, eighth session): Table 3 quick's nnU-Net Pool Skip on fold 1 (seed 0, both
# threads; Hippocampus as the stand-in), the Pool Skip row on a fold other than 0 never timed before,
# its dry run made just before its run, nothing else on the machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
net=nnUNet
test ! -e "$OUT/table3-quick.dry-run-$net-pool_skip-seed0-folds1.txt"  # never overwrite a kept dry run
python "$OUT/rows.py" --seed 0 --folds 1 table3 "$D/hippocampus-msd" "$net" pool_skip \
    > "$OUT/table3-quick-$net-pool_skip-seed0-folds1.log.tmp" 2>&1
mv "$OUT/table3-quick-$net-pool_skip-seed0-folds1.log.tmp" "$OUT/table3-quick-$net-pool_skip-seed0-folds1.log"
mv "$OUT/table3-quick.dry-run-$net-seed0-folds1.txt" "$OUT/table3-quick.dry-run-$net-pool_skip-seed0-folds1.txt"
