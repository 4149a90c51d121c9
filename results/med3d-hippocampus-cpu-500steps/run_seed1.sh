#!/bin/bash
# A second seed of the nnU-Net pair of run.sh (same recipe, data, fold 0 and split; seed 1), to measure how far
# two seeds of the same variant fall apart next to the plain vs Pool Skip difference. Both runs at once, one
# thread each, at nice 19 (they shared the CPU with nnU-Net's own pipeline run, ../nnunet-plugin-hippocampus-cpu,
# so their wall times are not a speed measurement). Run from the worktree root.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/work/shared/data/hippocampus-msd}
OUT=results/med3d-hippocampus-cpu-500steps
export PYTHONPATH=src DATA OUT
one() {  # one() VARIANT
  local v=$1 extra=()
  [ "$v" = pool_skip ] && extra+=(--pool-skip true)
  /usr/bin/time -v nice -n 19 python3 -m poolskip train --recipe hippocampus --model nnunet --data-dir "$DATA" \
    --epochs 20 --out-dir "$OUT/runs" --run-name "nnunet_${v}_seed1" --seed 1 "${extra[@]}" \
    --set fold=0 threads=1 eval_every=5 cache_dir=/tmp/med3d-cache > "$OUT/nnunet_${v}_seed1.log" 2>&1
}
export -f one
printf '%s\n' pool_skip plain | xargs -P 2 -L 1 bash -c 'one $0'
