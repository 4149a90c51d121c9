#!/usr/bin/env bash
# The exact commands of this result (issue 12's real run of `reproduce table4 --scale quick`), from the
# repository root. Not the paper's protocol: VGG16 at width 8, 5,000 (or 3,500) training images, 8 (or 3)
# epochs, 2,000 test images, 3 seeds, CPU.
set -euo pipefail
SRC=../shared/data/cifar10-jpg                   # the shared CIFAR-10 JPEG copy (ImageFolder)
DATA=/tmp/repro-data/cifar10-500-200             # symlinks: the first 500 train / 200 test images per class
rm -rf "$DATA"
for split in train:500 test:200; do
  s=${split%%:*}; n=${split##*:}
  for c in "$SRC/$s"/*; do
    mkdir -p "$DATA/$s/${c##*/}"
    ls "$c" | sort | head -n "$n" | while read -r f; do ln -s "$(realpath "$c/$f")" "$DATA/$s/${c##*/}/$f"; done
  done
done

# `poolskip reproduce` (at the time of this run the sub-command was not wired yet, and the same
# add_arguments/run of poolskip.experiments.reproduce ran through a six-line shim: identical behaviour)
reproduce() { poolskip reproduce "$@"; }

# main result: 8 epochs on 5,000 images, three seeds trained three runs at a time, one thread each
reproduce table4 --scale quick --dataset imagefolder --data-dir "$DATA" --seeds 0 1 2 --epochs 8 \
  --jobs 3 --threads 1 --out /tmp/repro-long

# first, shorter pass: 3 epochs on 3,500 images, one process per seed (merged afterwards: a rerun over
# the merged runs/ folder trains nothing and writes the table)
for s in 0 1 2; do
  reproduce table4 --scale quick --dataset imagefolder --data-dir "$DATA" --seeds "$s" --epochs 3 \
    --train-subset 3500 --threads 1 --out "/tmp/repro-s$s" &
done
wait
mkdir -p /tmp/repro-short/table4-quick/runs
for s in 0 1 2; do cp -rn /tmp/repro-s$s/table4-quick/runs/* /tmp/repro-short/table4-quick/runs/; done
reproduce table4 --scale quick --dataset imagefolder --data-dir "$DATA" --seeds 0 1 2 --epochs 3 \
  --train-subset 3500 --threads 1 --out /tmp/repro-short
