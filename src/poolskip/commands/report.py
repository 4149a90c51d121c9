"""``poolskip report RUN_DIR...``: one row per model, dataset, metric, protocol (how it was trained) and Pool Skip
placement (plain, Pool Skip, each control and ablation apart), mean ± std over seeds with the difference from
plain, and the monitored metric's curves, from the files runs wrote; for segmentation runs also a picture of a
few evaluation samples with each placement's predictions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or directories that hold runs")
    p.add_argument("--out", default="report", help="where report.md, report.csv and curves.png go (default: report)")
    p.add_argument(
        "--pictures", type=int, default=3, metavar="N",
        help="segmentation runs: N evaluation samples with ground truth and each placement's predictions "
        "(predictions_*.png, from each row's first run's last checkpoint); 0 = none (default: 3)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..experiments.report import collect, find_runs, prediction_pictures, write_report

    if args.pictures < 0:
        raise UsageError(f"--pictures must be >= 0 (0 = none), got {args.pictures}")
    busy: list[Path] = []
    groups = collect(find_runs(args.runs, busy))
    if busy:
        print(
            f"note: left out {len(busy)} run(s) another process is writing (e.g. {busy[0]}): their summary.json "
            "may be an earlier end's",
            file=sys.stderr,
        )
    out = Path(args.out)
    try:  # a missing folder is made; one that cannot be (a file in the way, no permission) is said so
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot make this folder ({e.strerror or e})") from None
    text = write_report(groups, args.out)
    print(text)
    runs = sum(map(len, groups.values()))
    print(f"\nwrote {out / 'report.md'}, {out / 'report.csv'}, {out / 'curves.png'} ({runs} runs)")
    if args.pictures > 0:
        for path in prediction_pictures(groups, out, args.pictures):
            print(f"wrote {path}")
    return 0
