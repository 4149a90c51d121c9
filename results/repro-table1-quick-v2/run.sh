#!/usr/bin/env bash
# The command of this result (issue 20 item 5): the re-run of
# `reproduce table1 --scale quick --controls` in the calibrated regime (ResNet18 width 8: 4 epochs at peak lr
# 0.02; MobileNet width 8: 6 epochs at peak lr 0.1; all 50,000 CIFAR-10 training images, one-cycle,
# channels_last, all 10,000 test images), 2 networks x 5 rows (plain, +ours, {Conv,Skip}, widened plain, depthwise) x 3 seeds, two
# one-thread runs at a time. Resumable: rerunning it skips finished runs and resumes
# half-done ones. From the repository root.
set -euo pipefail
DATA=${1:-../shared/data/cifar10-jpg}   # CIFAR-10 as JPEG, ImageFolder layout (train/, test/)
OUT=${2:-results/repro-table1-quick-v2}
mkdir -p "$OUT"
nice -n 10 poolskip reproduce table1 --scale quick --dataset imagefolder --data-dir "$DATA" \
  --jobs 2 --threads 1 --controls --out "$OUT" 2>&1 | tee -a "$OUT/log.txt"
