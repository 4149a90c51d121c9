#!/usr/bin/env bash
# The tenth check (2026-12-03, seventh session): Table 5 quick's ViT Pool Skip row (seed 0, the scale's threads:
# both cores), its dry run made just before its run, nothing else on the machine. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
net=ViT
python "$OUT/rows.py" --seed 0 table5 "$D/cifar10-jpg" "$net" pool_skip > "$OUT/table5-quick-$net-pool_skip-seed0.log.tmp" 2>&1
mv "$OUT/table5-quick-$net-pool_skip-seed0.log.tmp" "$OUT/table5-quick-$net-pool_skip-seed0.log"
mv "$OUT/table5-quick.dry-run-$net-seed0.txt" "$OUT/table5-quick.dry-run-$net-pool_skip-seed0.txt"
