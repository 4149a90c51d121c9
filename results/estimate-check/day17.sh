#!/usr/bin/env bash
# The seventeenth check (2026-12-04, eleventh session): Fig. 3 quick's ResNet152 Pool Skip row (seed 0, the scale's
# threads: both cores), never timed, its dry run made just before its run, nothing else on the machine. With the op of
# c7d2891 (window tables kept). From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
net=ResNet152
test ! -e "$OUT/fig3-quick.dry-run-$net-pool_skip-seed0.txt"  # never overwrite a kept dry run
python "$OUT/rows.py" --seed 0 fig3 "$D/cifar10-jpg" "$net" pool_skip > "$OUT/fig3-quick-$net-pool_skip-seed0.log.tmp" 2>&1
mv "$OUT/fig3-quick-$net-pool_skip-seed0.log.tmp" "$OUT/fig3-quick-$net-pool_skip-seed0.log"
mv "$OUT/fig3-quick.dry-run-$net-seed0.txt" "$OUT/fig3-quick.dry-run-$net-pool_skip-seed0.txt"
