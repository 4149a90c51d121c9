#!/usr/bin/env bash
# After day2.sh: its seed-4 dry runs of VGG16 and ResNet18 were made into the folder that holds their rows' seed 3
# runs, so they printed seed 3's wall time instead of timing (rows.py now dry-runs a new seed into an empty
# folder); the same rows once more, seed 5, timed before the run.
set -euo pipefail
DATA=${1:-../shared/data/cifar10-jpg}
HERE=results/estimate-check
python $HERE/rows.py --seed 5 table4 "$DATA" VGG16 plain > $HERE/table4-quick-VGG16-seed5.log 2>&1
python $HERE/rows.py --seed 5 table1 "$DATA" ResNet18 plain > $HERE/table1-quick-ResNet18-seed5.log 2>&1
