#!/usr/bin/env bash
# The eighth check (2026-12-03, fifth session): Fig. 3 quick's ResNet101 and ResNet152 plain rows (seed 0, the
# scale's threads: both cores), each row's dry run made just before its run, nothing else on the machine. From the
# repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
for net in ResNet101 ResNet152; do
  python "$OUT/rows.py" --seed 0 fig3 "$D/cifar10-jpg" "$net" plain > "$OUT/fig3-quick-$net-plain-seed0.log.tmp" 2>&1
  mv "$OUT/fig3-quick-$net-plain-seed0.log.tmp" "$OUT/fig3-quick-$net-plain-seed0.log"
  mv "$OUT/fig3-quick.dry-run-$net-seed0.txt" "$OUT/fig3-quick.dry-run-$net-plain-seed0.txt"
done
