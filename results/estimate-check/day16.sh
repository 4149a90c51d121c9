#!/usr/bin/env bash
# The sixteenth check (2026-12-04, tenth session): Table 3 quick's V-Net plain and Pool Skip on fold 2 (seed 0),
# never timed, and a third fold of the V-Net comparison; both threads, Hippocampus as the stand-in. Each row's dry run
# is made just before its run, nothing else on the machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
one() {  # one() NETWORK ROW SEED FOLD
    local net=$1 row=$2 seed=$3 fold=$4
    local tag="$net-$row-seed$seed-folds$fold"
    test ! -e "$OUT/table3-quick.dry-run-$tag.txt"  # never overwrite a kept dry run
    python "$OUT/rows.py" --seed "$seed" --folds "$fold" table3 "$D/hippocampus-msd" "$net" "$row" \
        > "$OUT/table3-quick-$tag.log.tmp" 2>&1
    mv "$OUT/table3-quick-$tag.log.tmp" "$OUT/table3-quick-$tag.log"
    mv "$OUT/table3-quick.dry-run-$net-seed$seed-folds$fold.txt" "$OUT/table3-quick.dry-run-$tag.txt"
}
one V-Net plain 0 2
one V-Net pool_skip 0 2
