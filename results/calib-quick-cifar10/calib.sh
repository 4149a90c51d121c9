#!/usr/bin/env bash
# One calibration run: calib.sh NAME MODEL WIDTH SUBSET EPOCHS LR WARMUP [extra --set args...]
# Plain network (no Pool Skip), DeVries & Taylor recipe (SGD 0.9 Nesterov, wd 5e-4, batch 128, crop+flip)
# with warm-up + cosine to 0 instead of the step schedule; all 10,000 real CIFAR-10 test images.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src
name=$1 model=$2 width=$3 subset=$4 epochs=$5 lr=$6 warm=$7; shift 7
DATA=${DATA:-/work/shared/data/cifar10-jpg}
start=$(date +%s)
nice -n 10 poolskip train --recipe devries_taylor --model "$model" --dataset imagefolder --data-dir "$DATA" \
  --epochs "$epochs" --lr "$lr" --out-dir results/calib-quick-cifar10/runs --run-name "$name" --overwrite \
  --set model_kwargs="{width: $width}" train_subset="$subset" schedule=cosine warmup_epochs="$warm" \
  eval_every="$epochs" threads=1 "$@"
echo "WALL $name $(( $(date +%s) - start )) s"
