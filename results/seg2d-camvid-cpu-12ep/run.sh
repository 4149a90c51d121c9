#!/usr/bin/env bash
# A CPU RUN, not the paper's protocol: DeepLabv3+ MobileNetV2 (OS16) on real CamVid (SegNet's 11 classes),
# from random initialisation, plain and with Pool Skip (the deeplab placement), seeds 0 and 1; the
# deeplab_camvid recipe cut to fit a 2-core CPU: 12 epochs x 45 steps at batch 8, crop 120x160 (recipe:
# 30 epochs, crop 240x320), evaluated after epochs 6 and 12 on the 233 test images at full resolution.
# Two runs at a time, one torch thread each. From the repository root:
#   bash results/seg2d-camvid-cpu-12ep/run.sh      (DATA=... for another CamVid copy)
set -euo pipefail
DATA=${DATA:-../shared/data/camvid}
HERE=results/seg2d-camvid-cpu-12ep
OUT=$HERE/runs
one() {  # seed, pool_skip
  python3 -m poolskip train --recipe deeplab_camvid --data-dir "$DATA" --device cpu --seed "$1" \
    --epochs 12 --batch-size 8 --pool-skip "$2" --out-dir "$OUT" --run-name "pool_skip_$2" \
    --set 'crop_size=[120, 160]' eval_every=6 threads=1 cache_dir=/tmp/seg2d/cache
}
# balanced slots: each runs one plain and one Pool Skip model
( one 0 true; one 1 false ) > "$HERE/slot_a.log" 2>&1 &
( one 0 false; one 1 true ) > "$HERE/slot_b.log" 2>&1 &
wait
python3 -m poolskip report "$OUT" --out "$HERE" --pictures 3
