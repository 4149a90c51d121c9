#!/usr/bin/env bash
# A SHORT CPU RUN, not Table 3: nnU-Net (PlainConvUNet as nnU-Net plans it for Hippocampus, 40x56x40 patch)
# plain vs Pool Skip (nnunet_btcv placement) on the Decathlon's Task04 Hippocampus MRI, fold 0 of the seeded
# 5-fold split, seed 0: the hippocampus recipe cut to 8 epochs x 25 steps of batch 2 (200 steps; nnU-Net
# trains 250,000 of batch 9), evaluated after epochs 4 and 8 on the first 20 of the fold's 52 validation
# volumes. Both variants at once, one torch thread each. From the repository root:
#   bash results/med3d-hippocampus-cpu-200steps/run.sh      (DATA=... for another copy)
set -euo pipefail
DATA=${DATA:-../shared/data/hippocampus-msd}
HERE=results/med3d-hippocampus-cpu-200steps
for PS in false true; do
  python3 -m poolskip train --recipe hippocampus --data-dir "$DATA" --pool-skip "$PS" --epochs 8 --seed 0 \
    --out-dir "$HERE/runs" --run-name "nnunet_pool_skip_$PS" \
    --set fold=0 eval_subset=20 eval_every=4 threads=1 cache_dir=/tmp/med3d-cache > "$HERE/nnunet_pool_skip_$PS.log" 2>&1 &
done
wait
python3 -m poolskip report "$HERE/runs" --out "$HERE" --pictures 1
