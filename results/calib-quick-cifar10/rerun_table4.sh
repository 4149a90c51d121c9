#!/usr/bin/env bash
# RUN on 2026-12-01: results in ../repro-table4-quick-v2/ (its run.sh is a copy of this). Issue 20 item 5's re-run of
# `reproduce table4 --scale quick` in the calibrated regime (VGG16 width 8, 4 epochs of all 50,000
# CIFAR-10 training images, one-cycle at peak lr 0.02, channels_last, all 10,000 test images), 5 rows x
# 3 seeds, two one-thread runs at a time. Resumable: rerunning it skips finished runs and resumes
# half-done ones. From the repository root.
set -euo pipefail
DATA=${1:-../shared/data/cifar10-jpg}   # CIFAR-10 as JPEG, ImageFolder layout (train/, test/)
OUT=${2:-results/repro-table4-quick-v2}
mkdir -p "$OUT"
nice -n 10 poolskip reproduce table4 --scale quick --dataset imagefolder --data-dir "$DATA" \
  --jobs 2 --threads 1 --out "$OUT" 2>&1 | tee -a "$OUT/log.txt"
