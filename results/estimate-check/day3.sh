#!/usr/bin/env bash
# The third check (2026-12-02 night): the mended estimator (cc369be, every timing in a process that has freed a
# large buffer) on the rows the second check did not re-time: Tables 2 and 3 tiny, Table 4 quick's five rows
# (its Pool Skip and ablation rows among them), and Figs. 3 and 4 tiny, never checked before. Each
# dry run is made just before its runs, with a seed no run of its folder has (so it times every network), then
# the same command trains them; one process at a time, nothing else running. From the repository root.
set -euo pipefail
D=${1:-../shared/data}
OUT=results/estimate-check
check() {  # NAME SUFFIX, then the reproduce arguments: NAME.dry-run-SUFFIX.txt, then NAME-SUFFIX.log
  local name=$1 suffix=$2; shift 2
  poolskip reproduce "$@" --out "$OUT/$name" --dry-run > "$OUT/$name.dry-run-$suffix.txt" 2>&1
  poolskip reproduce "$@" --out "$OUT/$name" > "$OUT/$name-$suffix.log" 2>&1
}
check table3-tiny seed1 table3 --scale tiny --data-dir "$D/hippocampus-msd" --seeds 1
check table2-tiny seed1 table2 --scale tiny --data-dir "$D/camvid" --seeds 1
check fig3-tiny seed0 fig3 --scale tiny --dataset imagefolder --data-dir "$D/cifar10-jpg"
check fig4-tiny seed0 fig4 --scale tiny --dataset imagefolder --data-dir "$D/cifar10-jpg"
check table4-quick seed7 table4 --scale quick --dataset imagefolder --data-dir "$D/cifar10-jpg" --seeds 7 --threads 1
