#!/usr/bin/env bash
# The exact command of this result (issue 12's real run of `reproduce table1 --scale quick --controls`),
# from the repository root. Not the paper's protocol: ResNet18 and MobileNet at width 8, 5,000 CIFAR-10
# training images, 3 epochs, 2,000 test images, 3 seeds, CPU.
set -euo pipefail
SRC=../shared/data/cifar10-jpg                   # the shared CIFAR-10 JPEG copy (ImageFolder)
DATA=/tmp/repro-data/cifar10-500-200             # symlinks: the first 500 train / 200 test images per class
if [ ! -d "$DATA" ]; then                        # the same subset as results/repro-table4-quick
  for split in train:500 test:200; do
    s=${split%%:*}; n=${split##*:}
    for c in "$SRC/$s"/*; do
      mkdir -p "$DATA/$s/${c##*/}"
      ls "$c" | sort | head -n "$n" | while read -r f; do ln -s "$(realpath "$c/$f")" "$DATA/$s/${c##*/}/$f"; done
    done
  done
fi
poolskip reproduce table1 --scale quick --controls --dataset imagefolder --data-dir "$DATA" \
  --seeds 0 1 2 --epochs 3 --jobs 2 --threads 1 --out /work/runs-table1
cp /work/runs-table1/table1-quick/table1.* results/repro-table1-quick/ 2>/dev/null || true
