#!/usr/bin/env bash
# The fifth check, continued (written while day5.sh ran; waits for it): the Pool Skip rows beside the plain rows
# day5.sh timed, as time allows: Table 3 quick's V-Net Pool Skip (fold 0, seed 0), then Fig. 3 quick's Pool Skip
# ResNet50 (seed 0). From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
while pgrep -f "bash results/estimate-check/day5.sh" > /dev/null; do sleep 20; done
mv "$OUT/fig3-quick.dry-run-ResNet50-seed0.txt" "$OUT/fig3-quick.dry-run-ResNet50-plain-seed0.txt"
mv "$OUT/fig3-quick-ResNet50-seed0.log" "$OUT/fig3-quick-ResNet50-plain-seed0.log"
python "$OUT/rows.py" --seed 0 table3 "$D/hippocampus-msd" V-Net pool_skip > "$OUT/table3-quick-V-Net-pool_skip-seed0.log" 2>&1
mv "$OUT/table3-quick.dry-run-V-Net-seed0.txt" "$OUT/table3-quick.dry-run-V-Net-pool_skip-seed0.txt"
python "$OUT/rows.py" --seed 0 fig3 "$D/cifar10-jpg" ResNet50 pool_skip > "$OUT/fig3-quick-ResNet50-pool_skip-seed0.log" 2>&1
mv "$OUT/fig3-quick.dry-run-ResNet50-seed0.txt" "$OUT/fig3-quick.dry-run-ResNet50-pool_skip-seed0.txt"
