#!/usr/bin/env bash
# Every committed `poolskip reproduce` table (table*.md/.csv/.json, fig*.md/.png) written again from its folder's
# committed runs with the current code: each folder's own command with --table-only (it trains nothing; each
# finished run is checked against the plan as a skipped one would be). The plan is the one that wrote the
# table: the seeds of the folder's last invocation, or of its README's --table-only command. From the
# repository root, with the shared data (a plan checks its data folder; nothing is read but its listing):
#   bash results/tables.sh [DATA]
set -euo pipefail
D=${1:-../shared/data}
E=results/estimate-check
table() { python3 -m poolskip reproduce "$@" --table-only > /dev/null; }
table table1 --scale quick --dataset imagefolder --data-dir "$D/cifar10-jpg" --controls --jobs 2 --threads 1 \
  --out results/repro-table1-quick-v2
table table4 --scale quick --dataset imagefolder --data-dir "$D/cifar10-jpg" --jobs 2 --threads 1 \
  --out results/repro-table4-quick-v2
table table2 --scale tiny --data-dir "$D/camvid" --seeds 1 --out "$E/table2-tiny"
table table3 --scale tiny --data-dir "$D/hippocampus-msd" --seeds 1 --out "$E/table3-tiny"
table table4 --scale quick --dataset imagefolder --data-dir "$D/cifar10-jpg" --seeds 7 --threads 1 --out "$E/table4-quick"
table table2 --scale quick --data-dir "$D/camvid" --seeds 0 1 --out "$E/table2-quick"
table table3 --scale quick --data-dir "$D/hippocampus-msd" --seeds 0 1 --out "$E/table3-quick"
table fig3 --scale tiny --dataset imagefolder --data-dir "$D/cifar10-jpg" --out "$E/fig3-tiny"
# not fig4-tiny: Fig. 4's l2/l1 is read from the runs' last checkpoints, which results/ does not keep
