#!/usr/bin/env bash
# The eighteenth check (2026-12-04, eleventh session): Fig. 3 quick's ResNet50 plain and Pool Skip with seed 1 (seed 0
# in the fifth and sixth checks), for a second seed of the one Fig. 3 depth the time allowed and two more estimates;
# the scale's threads (both cores), each row's dry run made just before its run, nothing else on the machine.
# From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
for row in plain pool_skip; do
    test ! -e "$OUT/fig3-quick.dry-run-ResNet50-$row-seed1.txt"  # never overwrite a kept dry run
    python "$OUT/rows.py" --seed 1 fig3 "$D/cifar10-jpg" ResNet50 "$row" > "$OUT/fig3-quick-ResNet50-$row-seed1.log.tmp" 2>&1
    mv "$OUT/fig3-quick-ResNet50-$row-seed1.log.tmp" "$OUT/fig3-quick-ResNet50-$row-seed1.log"
    mv "$OUT/fig3-quick.dry-run-ResNet50-seed1.txt" "$OUT/fig3-quick.dry-run-ResNet50-$row-seed1.txt"
done
