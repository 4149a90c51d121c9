#!/usr/bin/env bash
# The plain ViT cell of `reproduce table5 --scale quick` (seed 0) on the CIFAR-10 JPEGs, trained alone: its
# config is resolved from the reproduction's own plan (so it is that cell's, but for the output folder) and
# handed to `poolskip train --recipe` as a YAML file. One torch thread. From this folder.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD/src
DATA=${DATA:-/work/shared/data/cifar10-jpg}
cfg=$(mktemp --suffix .yaml)
python3 - "$DATA" "$cfg" <<'PY'
import sys, yaml
from poolskip.experiments.reproduce.plan import plan
runs = plan("table5", "quick", dataset="imagefolder", data_dir=sys.argv[1], seeds=[0], threads=1)
cell = next(r for r in runs if r.model == "vit_7_4_32" and r.key == "plain")
yaml.safe_dump(cell.config, open(sys.argv[2], "w"), sort_keys=False)
PY
start=$(date +%s)
nice -n 10 poolskip train --recipe "$cfg" --out-dir results/calib-quick-cifar10/runs --run-name vit-n2k-e5-table5-quick \
  --overwrite
echo "WALL vit-n2k-e5-table5-quick $(( $(date +%s) - start )) s"
