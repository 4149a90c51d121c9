#!/bin/sh
# Issue 6, second measurement: the same ResNet-101 (width 4), plain vs Pool Skip S2, trained 10 epochs
# instead of 4, on the same CIFAR-10 subset as run.sh (which builds $DATA). Plain and S2 ran side by side.
set -e
DATA=/tmp/poolskip-issue6/cifar10-5k
OUT=/tmp/poolskip-issue6/runs-10ep
export OMP_NUM_THREADS=1
train() {  # $1 run name, then extra flags
  name=$1; shift
  poolskip train --recipe devries_taylor --model resnet101 --dataset imagefolder --data-dir "$DATA" \
    --epochs 10 --seed 0 --out-dir "$OUT" --run-name "$name" "$@" \
    --set "model_kwargs={width: 4}" schedule=cosine diagnostics_every=1
}
case "$1" in
  plain) train plain ;;
  s2) train s2 --pool-skip 2 ;;
  diagnose)
    poolskip diagnose "$OUT/plain/seed0" "$OUT/s2/seed0" --labels "plain 10 ep" "Pool Skip S2 10 ep" \
      --probe-size 500 --out results/diagnose-deep-resnet/10-epochs ;;
  *) echo "usage: $0 plain|s2|diagnose" >&2; exit 2 ;;
esac
