#!/bin/sh
# Issue 6, Fig. 4 style measurement: a deep plain ResNet vs its Pool Skip variants (S2, S4) on a
# CIFAR-10 subset, trained with `poolskip train`, then `poolskip diagnose` on the last checkpoints.
# A short CPU run (2 shared cores, 1 thread per process), not the paper's 200-epoch protocol.
set -e
SRC=../shared/data/cifar10-jpg            # from the repo root: the shared CIFAR-10 JPEG copy
DATA=/tmp/poolskip-issue6/cifar10-5k      # symlinks to it: the first 500 train / 100 test images per class
OUT=/tmp/poolskip-issue6/runs

rm -rf "$DATA"
for split in train:500 test:100; do
  s=${split%%:*}; n=${split##*:}
  for c in "$SRC/$s"/*; do
    mkdir -p "$DATA/$s/${c##*/}"
    ls "$c" | sort | head -n "$n" | while read -r f; do ln -s "$(realpath "$c/$f")" "$DATA/$s/${c##*/}/$f"; done
  done
done

export OMP_NUM_THREADS=1
for variant in plain 2 4; do
  name=plain; ps=""
  if [ "$variant" != plain ]; then name="s$variant"; ps="--pool-skip $variant"; fi
  # shellcheck disable=SC2086
  poolskip train --recipe devries_taylor --model resnet101 --dataset imagefolder --data-dir "$DATA" \
    --epochs 4 --seed 0 --out-dir "$OUT" --run-name "$name" $ps \
    --set "model_kwargs={width: 4}" schedule=cosine diagnostics_every=1
done

poolskip diagnose "$OUT/plain/seed0" "$OUT/s2/seed0" "$OUT/s4/seed0" --labels plain "Pool Skip S2" "Pool Skip S4" \
  --probe-size 500 --out results/diagnose-deep-resnet
