#!/bin/sh
# Issue 6, noise reference: the plain ResNet-101 of run.sh again with seed 1 (4 epochs), so the
# plain-vs-Pool-Skip differences can be read against a plain-vs-plain (seed 0 vs seed 1) difference.
set -e
DATA=/tmp/poolskip-issue6/cifar10-5k   # built by run.sh
OUT=/tmp/poolskip-issue6/runs
export OMP_NUM_THREADS=1
poolskip train --recipe devries_taylor --model resnet101 --dataset imagefolder --data-dir "$DATA" \
  --epochs 4 --seed 1 --out-dir "$OUT" --run-name plain \
  --set "model_kwargs={width: 4}" schedule=cosine diagnostics_every=1
