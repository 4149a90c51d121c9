"""``poolskip reproduce {table1,...,fig4}``: one command per table or figure of the paper.

Plans every run of the table (``--scale paper`` is the recipes exactly, ``quick`` and ``tiny`` their
declared overlays), trains what is left (finished runs skipped, half-done runs resumed), and writes the
table in the paper's layout with the paper's numbers beside ours, params and MACs per row; ``--controls``
adds the cost-matched controls, ``--dry-run`` lists the runs with their estimated memory and time. The
work is :mod:`poolskip.experiments.reproduce`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..experiments.controls import has_width, models_with_width
from ..experiments.reproduce import (
    COMMANDS,
    SCALES,
    check,
    collect,
    dry_run_report,
    dump,
    execute,
    plan,
    refuse_held,
    render_table,
    write_outputs,
)

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``poolskip reproduce``."""
    parser.add_argument("command", choices=COMMANDS, help="the table or figure of the paper to reproduce")
    parser.add_argument(
        "--scale",
        choices=SCALES,
        default="quick",
        help="paper: the paper's protocol (the recipes); quick: a labelled CPU-sized version; tiny: a smoke test",
    )
    parser.add_argument("--dataset", help="train on this dataset instead of the table's (e.g. imagefolder)")
    parser.add_argument("--data-dir", help="the dataset's directory")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 5 at paper scale, 3 quick, 1 tiny)")
    parser.add_argument("--epochs", type=int, help="override the scale's epochs (a step schedule is squeezed to fit)")
    parser.add_argument("--train-subset", type=int, help="override the scale's training subset (images)")
    parser.add_argument("--out", default="reproduce", help="output folder (runs, table, figure); default ./reproduce")
    parser.add_argument(
        "--controls",
        action="store_true",
        help="add cost-matched controls: {Conv,Skip}, a plain net widened to Pool Skip's MACs, a depthwise Pool Skip",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the runs with their cost, peak memory and time; train nothing"
    )
    parser.add_argument(
        "--time-steps",
        type=int,
        default=2,
        help="--dry-run: training steps and evaluation passes timed per distinct network (0 = do not time)",
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads for every run")
    parser.add_argument(
        "--jobs", type=int, default=1, help="--launcher local: runs trained at once, each on its own device"
    )
    from ..experiments.launch import add_launch_arguments

    add_launch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """``poolskip reproduce``: plan, (dry-run or) train what is left, write the table/figure."""
    runs = plan(
        args.command, args.scale, args.dataset, args.data_dir, args.seeds, args.controls, args.epochs,
        getattr(args, "train_subset", None), getattr(args, "threads", None),
    )  # fmt: skip
    for r in runs:
        r.note = check(r)
    root = Path(args.out) / f"{args.command}-{args.scale}"
    if args.controls:
        narrow = sorted({r.model for r in runs if not has_width(r.model)})
        if narrow:
            print(
                f"note: the widened-plain control needs a width knob, which {', '.join(narrow)} lack(s); only its "
                f"{{Conv,Skip}} and depthwise controls are planned (models with one: {', '.join(models_with_width())})"
            )
    if args.dry_run:
        print(dry_run_report(runs, root, args.time_steps))
        return 0
    refuse_held(runs, root)  # before plan.json: a run another process trains stops this with nothing written
    root.mkdir(parents=True, exist_ok=True)
    (root / "plan.json").write_text(json.dumps(dump(runs), indent=1, default=str))
    t = time.time()
    from ..experiments.launch import launch_options

    done = execute(runs, root, jobs=max(1, getattr(args, "jobs", 1)), **launch_options(args))
    records = collect(runs, root)
    written = write_outputs(args.command, args.scale, records, root)
    print(render_table(args.command, records, args.scale))
    trained = sum(s == "trained" for _, s in done)
    print(f"{trained} run(s) trained in {time.time() - t:.0f} s; wrote {', '.join(str(p) for p in written)}")
    return 1 if any(s == "unavailable" for _, s in done) and not trained else 0
