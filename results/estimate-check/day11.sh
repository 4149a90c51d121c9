#!/usr/bin/env bash
# The eleventh check (2026-12-04, eighth session): Fig. 4 quick's plain ResNet350 (width 4, seed 0, the scale's
# threads: both cores), never timed at quick scale, its dry run made just before its run, nothing else on the
# machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
net=ResNet350
test ! -e "$OUT/fig4-quick.dry-run-$net-plain-seed0.txt"  # never overwrite a kept dry run
python "$OUT/rows.py" --seed 0 fig4 "$D/cifar10-jpg" "$net" plain > "$OUT/fig4-quick-$net-plain-seed0.log.tmp" 2>&1
mv "$OUT/fig4-quick-$net-plain-seed0.log.tmp" "$OUT/fig4-quick-$net-plain-seed0.log"
mv "$OUT/fig4-quick.dry-run-$net-seed0.txt" "$OUT/fig4-quick.dry-run-$net-plain-seed0.txt"
