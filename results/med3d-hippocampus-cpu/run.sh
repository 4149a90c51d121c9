#!/bin/bash
# Short CPU runs on the Decathlon Task04 Hippocampus copy (MRI, not the paper's BTCV/AMOS CT):
# nnU-Net (PlainConvUNet as nnU-Net plans it, patch 40x56x40) plain vs Pool Skip (nnunet_btcv placement),
# fold 0 of the seeded 5-fold split (split_seed 0), seed 0, 2 epochs x 25 steps of batch 2, evaluated on the
# first 20 of the fold's 52 validation volumes. Driven by train_direct.py (the task's methods called directly:
# the task-generic engine was not merged yet). Run from the worktree root.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/work/shared/data/hippocampus-msd}
OUT=results/med3d-hippocampus-cpu
export PYTHONPATH=src OMP_NUM_THREADS=1
for v in plain pool_skip; do
  ps=null; [ $v = pool_skip ] && ps=true
  /usr/bin/time -v python3 $OUT/train_direct.py --model nnunet --pool-skip $ps --data-dir $DATA \
    --cache-dir /tmp/med3d-cache --out $OUT/nnunet_$v --seed 0 --epochs 2 \
    --set eval_subset=20 > $OUT/nnunet_$v.log 2>&1 &
done
wait
