"""Table 1's MobileNet width 8 rows whose estimates by the earlier estimator were furthest off (plain −19 %,
{Conv,Skip} −26 % and −28 %, against runs made two at a time: ../repro-table1-quick-v2/README.md), checked with
today's: the plan of ``poolskip reproduce table1 --scale quick --controls --dataset imagefolder --seeds 3
--threads 1`` cut to those two rows (the command has no option to pick rows; the whole table is some 5 hours
here), its dry run printed first, then the runs, one at a time, as run.sh does for the other tables:

    python results/estimate-check/table1_mobilenet.py [DATA] > results/estimate-check/table1-quick.log

From the repository root; writes ``table1-quick.dry-run.txt`` and ``table1-quick/table1-quick/runs/``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from poolskip.experiments.reproduce import check, dry_run_report, execute, plan

HERE = Path(__file__).resolve().parent


def main() -> None:
    data = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/cifar10-jpg"
    runs = plan("table1", "quick", dataset="imagefolder", data_dir=data, seeds=[3], controls=True, threads=1)
    runs = [r for r in runs if "MobileNet" in r.name and r.key in ("plain", "conv_skip")]
    for r in runs:
        r.note = check(r)
    root = HERE / "table1-quick" / "table1-quick"
    (HERE / "table1-quick.dry-run.txt").write_text(dry_run_report(runs, root, time_steps=2) + "\n")
    t = time.time()
    done = execute(runs, root)
    trained = sum(status == "trained" for _, status in done)
    print(f"{trained} run(s) trained in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
