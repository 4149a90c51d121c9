#!/usr/bin/env bash
# The fourth check (2026-12-03 morning): the mended estimator (cc369be; d4724cd changes only tiny runs) on rows
# no check had timed with it: Table 2 quick (seed 1), Table 1 quick's control rows (seed 7, which no run of that
# folder has, so every network is timed): ResNet18 width 8 {Conv,Skip}, widened and depthwise, and Table 3
# quick's nnU-Net plain row (fold 0, seed 0), never checked before. Each dry run made just before its runs; one
# process at a time. As first written, the script's last line ran MobileNet width 8's Pool Skip and depthwise
# rows; it was stopped as its first run started (its partial files removed) and the Table 3 lines (started by
# hand) ran instead: no Table 3 quick run had been timed, and not all would fit the session. From the repository
# root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
poolskip reproduce table2 --scale quick --data-dir "$D/camvid" --seeds 1 --out "$OUT/table2-quick" --dry-run \
  > "$OUT/table2-quick.dry-run-seed1.txt" 2>&1
poolskip reproduce table2 --scale quick --data-dir "$D/camvid" --seeds 1 --out "$OUT/table2-quick" \
  > "$OUT/table2-quick-seed1.log" 2>&1
python "$OUT/rows.py" --seed 7 table1 "$D/cifar10-jpg" ResNet18 conv_skip wide depthwise \
  > "$OUT/table1-quick-ResNet18-seed7.log" 2>&1
# Then, as time allowed: Table 3 quick's nnU-Net Pool Skip row and Table 1 quick's MobileNet depthwise row. rows.py
# names its files by network, so each Table 3 row's dry run and log is renamed after it to keep both rows'.
python "$OUT/rows.py" --seed 0 table3 "$D/hippocampus-msd" nnUNet plain > "$OUT/table3-quick-nnUNet-seed0.log" 2>&1
mv "$OUT/table3-quick.dry-run-nnUNet-seed0.txt" "$OUT/table3-quick.dry-run-nnUNet-plain-seed0.txt"
mv "$OUT/table3-quick-nnUNet-seed0.log" "$OUT/table3-quick-nnUNet-plain-seed0.log"
python "$OUT/rows.py" --seed 0 table3 "$D/hippocampus-msd" nnUNet pool_skip > "$OUT/table3-quick-nnUNet-pool_skip-seed0.log" 2>&1
mv "$OUT/table3-quick.dry-run-nnUNet-seed0.txt" "$OUT/table3-quick.dry-run-nnUNet-pool_skip-seed0.txt"
python "$OUT/rows.py" --seed 7 table1 "$D/cifar10-jpg" MobileNet depthwise > "$OUT/table1-quick-MobileNet-seed7.log" 2>&1
