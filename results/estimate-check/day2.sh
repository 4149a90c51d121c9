#!/usr/bin/env bash
# The second check (2026-12-02 evening, issue 20 item 4), for the rows the first one (run.sh, table1 rows)
# overestimated: the small plain one-thread networks. First paired.py (the dry run's step timing against the
# engine's own loop, interleaved in one process: a bias of the method, apart from the machine's drift), then
# each row's dry run, its run (a new seed, 4), and its dry run again after, one process at a time, nothing else
# running. From the repository root; compare.py reads the files it writes.
set -euo pipefail
DATA=${1:-../shared/data/cifar10-jpg}
HERE=results/estimate-check
{
  python $HERE/paired.py table4 VGG16 plain 6 30
  python $HERE/paired.py table1 ResNet18 plain 6 30
  python $HERE/paired.py table1 MobileNet plain 6 30
} > $HERE/paired.txt 2>&1
python $HERE/rows.py --seed 4 table4 "$DATA" VGG16 plain > $HERE/table4-quick-VGG16-seed4.log 2>&1
python $HERE/rows.py --seed 4 table1 "$DATA" ResNet18 plain > $HERE/table1-quick-ResNet18-seed4.log 2>&1
python $HERE/rows.py --seed 4 table1 "$DATA" MobileNet plain pool_skip > $HERE/table1-quick-MobileNet-seed4.log 2>&1
python $HERE/rows.py --after --seed 4 table4 "$DATA" VGG16 plain
python $HERE/rows.py --after --seed 4 table1 "$DATA" ResNet18 plain
python $HERE/rows.py --after --seed 4 table1 "$DATA" MobileNet plain pool_skip
