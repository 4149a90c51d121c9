#!/usr/bin/env bash
# The ninth check (2026-12-03, sixth session): Fig. 3 quick's ResNet101 Pool Skip row (seed 0, the scale's threads:
# both cores), its dry run made just before its run, nothing else on the machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
net=ResNet101
python "$OUT/rows.py" --seed 0 fig3 "$D/cifar10-jpg" "$net" pool_skip > "$OUT/fig3-quick-$net-pool_skip-seed0.log.tmp" 2>&1
mv "$OUT/fig3-quick-$net-pool_skip-seed0.log.tmp" "$OUT/fig3-quick-$net-pool_skip-seed0.log"
mv "$OUT/fig3-quick.dry-run-$net-seed0.txt" "$OUT/fig3-quick.dry-run-$net-pool_skip-seed0.txt"
