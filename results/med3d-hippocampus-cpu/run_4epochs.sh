#!/bin/bash
# As run.sh, but 4 epochs x 25 steps (100 steps of batch 2): the longest pair that fit the time left.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/work/shared/data/hippocampus-msd}
OUT=results/med3d-hippocampus-cpu
export PYTHONPATH=src
for v in plain pool_skip; do
  ps=(); [ $v = pool_skip ] && ps=(--pool-skip true)
  /usr/bin/time -v python3 -m poolskip train --recipe hippocampus --data-dir "$DATA" "${ps[@]}" --epochs 4 \
    --out-dir $OUT/runs --run-name nnunet_${v}_4ep --seed 0 \
    --set fold=0 eval_subset=20 threads=1 cache_dir=/tmp/med3d-cache > $OUT/nnunet_${v}_4ep.log 2>&1 &
done
wait
