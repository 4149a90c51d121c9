#!/usr/bin/env bash
# The exact command of this result (issue 12's `reproduce fig4 --scale quick`), from the repository root.
# Not the paper's protocol: ResNet350 at width 4, 5,000 CIFAR-10 training images (500 per class), 4 epochs,
# 2,000 test images, seed 0, CPU. DATA is made by results/repro-table1-quick/run.sh (symlinks).
set -euo pipefail
DATA=/tmp/repro-data/cifar10-500-200
poolskip reproduce fig4 --scale quick --dataset imagefolder --data-dir "$DATA" --jobs 2 --threads 1 --out /work/runs-fig4
