#!/bin/bash
# Short CPU runs on the Decathlon Task04 Hippocampus copy (MRI, not the paper's BTCV/AMOS CT), through
# `poolskip train`: nnU-Net (PlainConvUNet as nnU-Net plans it, patch 40x56x40) plain vs Pool Skip
# (--pool-skip true = nnunet_btcv, every encoder conv), recipe `hippocampus` cut to 2 epochs x 25 steps of
# batch 2, fold 0 of the seeded 5-fold split (split_seed 0), seed 0, evaluated after the last epoch on the
# first 20 of the fold's 52 validation volumes. Both variants run at once, one thread each. Run from the
# worktree root; DATA defaults to the shared copy.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/work/shared/data/hippocampus-msd}
OUT=results/med3d-hippocampus-cpu
export PYTHONPATH=src
for v in plain pool_skip; do
  ps=(); [ $v = pool_skip ] && ps=(--pool-skip true)
  /usr/bin/time -v python3 -m poolskip train --recipe hippocampus --data-dir "$DATA" "${ps[@]}" --epochs 2 \
    --out-dir $OUT/runs --run-name nnunet_$v --seed 0 \
    --set fold=0 eval_subset=20 threads=1 cache_dir=/tmp/med3d-cache > $OUT/nnunet_$v.log 2>&1 &
done
wait
