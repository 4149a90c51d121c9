"""``poolskip report RUN_DIR...``: the paper's table layout (plain vs Pool Skip, mean ± std over seeds)
and the monitored metric's curves, from the files runs wrote."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..experiments.report import write_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories, or directories that hold runs")
    p.add_argument("--out", default="report", help="where report.md, report.csv and curves.png go (default: report)")


def run(args: argparse.Namespace) -> int:
    text, runs = write_report(args.runs, args.out)
    out = Path(args.out)
    print(text)
    print(f"\nwrote {out / 'report.md'}, {out / 'report.csv'}, {out / 'curves.png'} ({runs} runs)")
    return 0
