#!/usr/bin/env bash
# The twelfth check (2026-12-04, eighth session): Table 3 quick's plain nnU-Net on folds 1 and 2 (seed 0, both
# threads; Hippocampus as the stand-in), folds never timed before (every earlier Table 3 quick check was fold 0),
# their dry run made just before their runs, nothing else on the machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
net=nnUNet
test ! -e "$OUT/table3-quick.dry-run-$net-plain-seed0-folds1-2.txt"  # never overwrite a kept dry run
python "$OUT/rows.py" --seed 0 --folds 1,2 table3 "$D/hippocampus-msd" "$net" plain \
    > "$OUT/table3-quick-$net-plain-seed0-folds1-2.log.tmp" 2>&1
mv "$OUT/table3-quick-$net-plain-seed0-folds1-2.log.tmp" "$OUT/table3-quick-$net-plain-seed0-folds1-2.log"
mv "$OUT/table3-quick.dry-run-$net-seed0-folds1-2.txt" "$OUT/table3-quick.dry-run-$net-plain-seed0-folds1-2.txt"
