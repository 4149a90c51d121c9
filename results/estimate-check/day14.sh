#!/usr/bin/env bash
# The fourteenth check (2026-12-04, ninth session): Table 3 quick rows never timed before (seed 0, both threads;
# Hippocampus as the stand-in): nnU-Net Pool Skip on fold 2, then V-Net plain and V-Net Pool Skip on fold 1
# (every earlier V-Net quick check was fold 0). Each row's dry run is made just before its run, nothing else on
# the machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
one() {  # one() NETWORK ROW FOLD
    local net=$1 row=$2 fold=$3
    test ! -e "$OUT/table3-quick.dry-run-$net-$row-seed0-folds$fold.txt"  # never overwrite a kept dry run
    python "$OUT/rows.py" --seed 0 --folds "$fold" table3 "$D/hippocampus-msd" "$net" "$row" \
        > "$OUT/table3-quick-$net-$row-seed0-folds$fold.log.tmp" 2>&1
    mv "$OUT/table3-quick-$net-$row-seed0-folds$fold.log.tmp" "$OUT/table3-quick-$net-$row-seed0-folds$fold.log"
    mv "$OUT/table3-quick.dry-run-$net-seed0-folds$fold.txt" "$OUT/table3-quick.dry-run-$net-$row-seed0-folds$fold.txt"
}
one nnUNet pool_skip 2
one V-Net plain 1
one V-Net pool_skip 1
