#!/usr/bin/env bash
# The exact commands of this result (issue 4's real run), from the repository root.
# ResNet18 at width 16 (1/16 of the paper's parameters), plain vs Pool Skip (the paper's placement),
# devries_taylor recipe cut to 2 epochs on the first 5,000 training images of a fixed shuffle,
# evaluated on all 10,000 test images; seeds 0 and 1; CPU. A smoke-scale run, not the paper's protocol.
set -euo pipefail
for seed in 0 1; do
  for ps in false true; do
    poolskip train --recipe devries_taylor --model resnet18 --set "model_kwargs={width: 16}" \
      --dataset imagefolder --data-dir ../shared/data/cifar10-jpg --set train_subset=5000 \
      --epochs 2 --seed "$seed" --pool-skip "$ps" --out-dir runs --run-name "resnet18w16_ps-$ps"
  done
done
poolskip report runs/resnet18w16_ps-false runs/resnet18w16_ps-true --out results/train-cifar10-resnet18w16-cpu
