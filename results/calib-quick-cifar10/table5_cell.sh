#!/usr/bin/env bash
# One cell of `reproduce table5 --scale quick` (seed 0) on the CIFAR-10 JPEGs, trained alone:
# table5_cell.sh NAME MODEL KEY [KEY=VALUE ...]. Its config is resolved from the reproduction's own plan (so it
# is that cell's, but for the output folder and any KEY=VALUE given, which go to `--set`) and handed to
# `poolskip train --recipe` as a YAML file. One torch thread. From this folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src
name=$1 model=$2 key=$3; shift 3
DATA=${DATA:-/work/shared/data/cifar10-jpg}
cfg=$(mktemp --suffix .yaml)
trap 'rm -f "$cfg"' EXIT
python3 - "$DATA" "$cfg" "$model" "$key" <<'PY'
import sys, yaml
from poolskip.experiments.reproduce.plan import plan
data, out, model, key = sys.argv[1:5]
runs = plan("table5", "quick", dataset="imagefolder", data_dir=data, seeds=[0], threads=1)
cell = next(r for r in runs if r.model == model and r.key == key)
yaml.safe_dump(cell.config, open(out, "w"), sort_keys=False)
PY
start=$(date +%s)
set_args=()
[ $# -gt 0 ] && set_args=(--set "$@")
nice -n 10 poolskip train --recipe "$cfg" --out-dir results/calib-quick-cifar10/runs --run-name "$name" --overwrite \
  "${set_args[@]}"
echo "WALL $name $(( $(date +%s) - start )) s"
