#!/bin/bash
# CPU runs on the Decathlon Task04 Hippocampus copy (T2 MRI, not the paper's BTCV/AMOS CT), through
# `poolskip train --recipe hippocampus`: nnU-Net (PlainConvUNet as nnU-Net plans it, patch 40x56x40) and V-Net
# (MONAI's VNet, patch 32x48x32), each plain vs Pool Skip (--pool-skip true: nnunet_btcv = every encoder conv;
# vnet = the first two encoder stages), 20 epochs x 25 steps of batch 2 (500 steps; the recipe's nnU-Net
# optimiser and poly schedule over those 500 steps), fold 0 of the seeded 5-fold split (split_seed 0), seed 0,
# Dice / NSD (1 mm) / IoU on all 52 validation volumes of the fold every 5 epochs (V-Net: every 10, as its
# 32x48x32 window needs ~8 windows per volume where nnU-Net's 40x56x40 needs ~1).
# Four runs, two at a time (one thread each), longest first. Run from the worktree root.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/work/shared/data/hippocampus-msd}
OUT=results/med3d-hippocampus-cpu-500steps
export PYTHONPATH=src DATA OUT
one() {  # one() MODEL VARIANT
  local model=$1 v=$2 extra=() sets=(fold=0 threads=1 eval_every=5 cache_dir=/tmp/med3d-cache)
  [ "$v" = pool_skip ] && extra+=(--pool-skip true)
  [ "$model" = vnet ] && sets+=("patch_size=[32,48,32]" eval_every=10)
  /usr/bin/time -v python3 -m poolskip train --recipe hippocampus --model "$model" --data-dir "$DATA" \
    --epochs 20 --out-dir "$OUT/runs" --run-name "${model}_$v" --seed 0 "${extra[@]}" \
    --set "${sets[@]}" > "$OUT/${model}_$v.log" 2>&1
}
export -f one
printf '%s\n' "nnunet pool_skip" "nnunet plain" "vnet plain" "vnet pool_skip" |
  xargs -P 2 -L 1 bash -c 'one $0 $1'
