"""Rows of Table 1's quick scale checked like run.sh's tables: the plan of ``poolskip reproduce table1 --scale quick
--controls --dataset imagefolder --seeds 3 --threads 1`` cut to one network's chosen rows (the command has no
option to pick rows; the whole table is some 5 hours here), its dry run printed first, then the runs, one at a
time. From the repository root:

    python results/estimate-check/table1_rows.py DATA NETWORK ROW [ROW ...] \
        > results/estimate-check/table1-quick-NETWORK.log

e.g. ``../shared/data/cifar10-jpg MobileNet plain conv_skip`` (the rows the earlier estimator missed by the most:
plain −19 %, {Conv,Skip} −26 % and −28 %, against runs made two at a time, ../repro-table1-quick-v2/README.md) or
``../shared/data/cifar10-jpg ResNet18 plain pool_skip``. Writes ``table1-quick.dry-run-NETWORK.txt`` and the runs
under ``table1-quick/table1-quick/runs/``. With ``--after`` first, only the dry run, into an empty folder (so it
times instead of reading the finished runs), written to ``table1-quick.dry-run-after-NETWORK.txt``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from poolskip.experiments.reproduce import check, dry_run_report, execute, plan

HERE = Path(__file__).resolve().parent


def main() -> None:
    after = sys.argv[1] == "--after"
    data, network, rows = sys.argv[1 + after], sys.argv[2 + after], sys.argv[3 + after :]
    runs = plan("table1", "quick", dataset="imagefolder", data_dir=data, seeds=[3], controls=True, threads=1)
    runs = [r for r in runs if f"_{network}-" in r.name and r.key in rows]
    for r in runs:
        r.note = check(r)
    if after:
        with tempfile.TemporaryDirectory() as empty:
            report = dry_run_report(runs, Path(empty), time_steps=2)
        (HERE / f"table1-quick.dry-run-after-{network}.txt").write_text(report + "\n")
        return
    root = HERE / "table1-quick" / "table1-quick"
    (HERE / f"table1-quick.dry-run-{network}.txt").write_text(dry_run_report(runs, root, time_steps=2) + "\n")
    t = time.time()
    done = execute(runs, root)
    trained = sum(status == "trained" for _, status in done)
    print(f"{trained} run(s) trained in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
