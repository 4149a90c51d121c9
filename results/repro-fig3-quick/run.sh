#!/usr/bin/env bash
# The exact command of this result (issue 12's `reproduce fig3 --scale quick`), from the repository root.
# Not the paper's protocol: ResNet50/101/152 at width 4, 5,000 CIFAR-10 training images (500 per class),
# 4 epochs, 2,000 test images, seeds 0, 1 and 2, CPU. DATA is made by results/repro-table1-quick/run.sh.
set -euo pipefail
DATA=/tmp/repro-data/cifar10-500-200
poolskip reproduce fig3 --scale quick --dataset imagefolder --data-dir "$DATA" --seeds 0 1 2 --jobs 2 --threads 1 --out /work/runs-fig3
