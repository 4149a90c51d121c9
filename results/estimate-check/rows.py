"""Rows of a quick table checked like run.sh's tables: the plan of ``poolskip reproduce TABLE --scale quick
--seeds SEED`` (for the CIFAR tables, Table 1 and 4, with ``--controls --dataset imagefolder --threads 1``; for
Table 3, fold 0 of Hippocampus (or those of ``--folds``) on both threads; for Table 5 and Figs. 3 and 4,
``--dataset imagefolder`` and the scale's threads) cut to one network's chosen rows (the command has no option to
pick rows; Table 1 alone is some 5 hours here, Table 3 some 5 hours at fold 0 only), its dry run printed first,
then the runs, one at a time. From the repository root:

    python results/estimate-check/rows.py [--after] [--seed SEED] [--folds F,...] TABLE DATA NETWORK ROW [ROW ...] \
        > results/estimate-check/TABLE-quick-NETWORK[-seedSEED].log

e.g. ``table1 ../shared/data/cifar10-jpg MobileNet plain conv_skip`` (the rows the earlier estimator missed by
the most: plain −19 %, {Conv,Skip} −26 % and −28 %, against runs made two at a time,
../repro-table1-quick-v2/README.md), ``table1 ../shared/data/cifar10-jpg ResNet18 plain pool_skip`` or
``--seed 0 table3 ../shared/data/hippocampus-msd nnUNet plain``. Writes ``TABLE-quick.dry-run-NETWORK.txt`` and
the runs under ``TABLE-quick/TABLE-quick/runs/``; a seed other than 3 (the default) adds ``-seedSEED`` to the file
names and makes the dry run into an empty folder (so it times the networks instead of taking the wall time of the
row's seed 3 finished there). With ``--after``, only the dry run, into an empty folder, written to
``TABLE-quick.dry-run-after-NETWORK[-seedSEED].txt``.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

from poolskip.experiments.reproduce import check, dry_run_report, execute, plan

HERE = Path(__file__).resolve().parent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--after", action="store_true")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--folds", default="0", help="Table 3: the folds, e.g. 1,2 (default 0)")
    p.add_argument("table", choices=("table1", "table3", "table4", "table5", "fig3", "fig4"))
    p.add_argument("data")
    p.add_argument("network")
    p.add_argument("rows", nargs="+")
    a = p.parse_args()
    folds = [int(f) for f in a.folds.split(",")]
    if a.table == "table3":  # Hippocampus as the stand-in, fold 0 unless --folds says otherwise
        runs = [r for r in plan(a.table, "quick", data_dir=a.data, seeds=[a.seed]) if r.fold in folds]
    elif a.table in ("table1", "table4"):
        runs = plan(a.table, "quick", dataset="imagefolder", data_dir=a.data, seeds=[a.seed], controls=True, threads=1)
    else:  # Table 5, Figs. 3 and 4: no controls, the scale's own threads (both cores)
        runs = plan(a.table, "quick", dataset="imagefolder", data_dir=a.data, seeds=[a.seed])
    runs = [r for r in runs if re.search(rf"_{re.escape(a.network)}[-_]", r.name) and r.key in a.rows]
    for r in runs:
        r.note = check(r)
    name = a.network + (f"-seed{a.seed}" if a.seed != 3 else "")
    if a.table == "table3" and folds != [0]:
        name += "-folds" + "-".join(map(str, folds))
    root = HERE / f"{a.table}-quick" / f"{a.table}-quick"
    if a.seed != 3 or a.after:  # an empty folder: timed, not the wall time of the row's seed 3 finished there
        with tempfile.TemporaryDirectory() as empty:
            report = dry_run_report(runs, Path(empty), time_steps=2)
    else:
        report = dry_run_report(runs, root, time_steps=2)
    (HERE / f"{a.table}-quick.dry-run{'-after' * a.after}-{name}.txt").write_text(report + "\n")
    if a.after:
        return
    t = time.time()
    done = execute(runs, root)
    trained = sum(status == "trained" for _, status in done)
    print(f"{trained} run(s) trained in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
