#!/usr/bin/env bash
# A SHORT CPU RUN, not a result: DeepLabv3+ MobileNetV2 (OS16) on real CamVid (SegNet's 11 classes), from
# random initialisation, plain and with Pool Skip (the deeplab placement), seeds 0 and 1, 2 epochs of
# 91 steps at batch 4 and crop 120x160 (the deeplab_camvid recipe shrunk to fit a shared 2-core CPU),
# evaluated once, at the end, on the 233 test images at full resolution (480x360).
# Run from the repository root: bash results/seg2d-camvid-cpu/run.sh   (DATA=... for another CamVid copy)
set -euo pipefail
DATA=${DATA:-../shared/data/camvid}
OUT=results/seg2d-camvid-cpu/runs
for SEED in ${SEEDS:-0 1}; do
  for PS in false true; do
    python3 -m poolskip train --recipe deeplab_camvid --data-dir "$DATA" --device cpu --seed "$SEED" \
      --epochs 2 --batch-size 4 --pool-skip "$PS" --out-dir "$OUT" --run-name "pool_skip_$PS" \
      --set 'crop_size=[120, 160]' eval_every=2 threads=1 cache_dir=/tmp/seg2d/cache
  done
done
python3 -m poolskip report "$OUT" --out results/seg2d-camvid-cpu
python3 results/seg2d-camvid-cpu/figure.py
