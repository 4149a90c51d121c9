"""``poolskip reproduce {table1,...,fig4}``: one command per table or figure of the paper.

Plans every run of the table (``--scale paper`` is the recipes exactly, ``quick`` and ``tiny`` their
declared overlays), trains what is left (finished runs skipped, half-done runs resumed), scores Table 3's
folds' ensembles on the test set where the data has one, and writes the table in the paper's layout (the
paper's numbers beside ours only at its scale, dataset and measurement), params and MACs per row; ``--controls``
adds the cost-matched controls, ``--dry-run`` lists the runs with their estimated memory and time. The
work is :mod:`poolskip.experiments.reproduce`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from ..errors import repeated
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
    write_outputs,
)
from .common import UsageError

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
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the scale's, which --dry-run lists)")
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
        "--table-only",
        action="store_true",
        help="write the table/figure of the runs finished so far under --out (e.g. of a stopped reproduction, "
        "each checked against the plan); train nothing",
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


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse a count, seed list, device or --out that cannot work, before planning (a --dry-run too)."""
    from ..engine.distributed import parse_device

    for flag, value, least in (
        ("--jobs", args.jobs, 1), ("--time-steps", args.time_steps, 0), ("--threads", args.threads, 1),
        ("--train-subset", args.train_subset, 1), ("--slurm-time", args.slurm_time, 1),
        ("--slurm-gpus", args.slurm_gpus, 0), ("--slurm-cpus", args.slurm_cpus, 1),
        ("--slurm-parallel", args.slurm_parallel, 1),
    ):  # fmt: skip
        if value is not None and value < least:
            raise UsageError(f"{flag} must be >= {least}, got {value}")
    if args.slurm_mem is not None and not args.slurm_mem > 0:
        raise UsageError(f"--slurm-mem must be a number of GB > 0, got {args.slurm_mem}")
    twice = repeated(args.seeds or ())
    if twice:
        raise UsageError(f"--seeds names seed(s) {twice} more than once; each seed is one run directory")
    for device in args.devices or ():  # its syntax only: whether this machine has it is each run's check
        if parse_device(device) is None:
            raise UsageError(f"--devices: {device!r} is not a device; use cpu, cuda or cuda:N")
    if args.table_only and args.dry_run:
        raise UsageError("--table-only and --dry-run: choose one (--dry-run lists the plan, --table-only tabulates it)")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a file, not a folder; choose another --out")


def _check_datasets(runs) -> None:
    """Each run's dataset is one its task reads (--dataset replaces the table's)."""
    from ..data.classification.readers import DATASETS
    from ..data.errors import other_task_hint
    from ..data.seg2d.readers import SEG_DATASETS
    from ..data.seg3d.readers import LAYOUTS
    from ..errors import did_you_mean

    known = {"classification": DATASETS, "segmentation": SEG_DATASETS, "segmentation3d": LAYOUTS}
    for r in runs:
        names = known.get(r.config.get("task", "classification"))
        if names is not None and r.dataset not in names:
            raise UsageError(
                f"--dataset {r.dataset!r} is not a dataset of this table's task "
                f"{r.config.get('task', 'classification')!r}{did_you_mean(r.dataset, names)} "
                f"(known: {', '.join(names)}){other_task_hint(r.dataset)}"
            )


def _scale_label(args: argparse.Namespace) -> str:
    """The scale as a table names it: with the overrides that shorten it (``paper with --epochs 1``), which make
    even the paper's scale a shortened run that is never set beside the paper's numbers."""
    cut = [f"--{k.replace('_', '-')} {v}" for k in ("epochs", "train_subset") if (v := getattr(args, k, None))]
    return args.scale + (f" with {' '.join(cut)}" if cut else "")


def _write_and_show(args: argparse.Namespace, records, root: Path) -> list[Path]:
    """The table/figure files of ``records`` written under ``root``, the table printed as written (rendered once)."""
    written = write_outputs(args.command, _scale_label(args), records, root)
    print(written[0].read_text())  # write_outputs writes the markdown table first
    return written


def _table_only(args: argparse.Namespace, runs, root: Path) -> int:
    """``--table-only``: the table/figure of the plan's runs finished under ``root`` (each checked against the
    plan as a skipped run is); the others are counted, not trained."""
    if not (root / "runs").is_dir():
        raise UsageError(f"--table-only: no runs under {root / 'runs'}; nothing of this plan was trained under --out")
    statuses = refuse_held(runs, root, training=False)
    written = _write_and_show(args, collect(runs, root), root)
    finished = sum(s == "finished" for s in statuses)
    print(
        f"table of the {finished} finished run(s) of {len(runs)} planned ({len(runs) - finished} not finished, "
        f"not trained: --table-only); wrote {', '.join(str(p) for p in written)}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """``poolskip reproduce``: plan, (dry-run or) train what is left, write the table/figure."""
    _check_arguments(args)
    runs = plan(
        args.command, args.scale, args.dataset, args.data_dir, args.seeds, args.controls, args.epochs,
        getattr(args, "train_subset", None), getattr(args, "threads", None),
    )  # fmt: skip
    _check_datasets(runs)
    if args.data_dir and any(r.dataset == "digits" for r in runs):  # ships with scikit-learn: no directory
        print(
            f"note: --data-dir {args.data_dir} is not read by the runs on digits (scikit-learn's bundled copy); "
            f"--dataset names the data a scale trains on instead of its own"
        )
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
    if args.table_only:
        return _table_only(args, runs, root)
    refuse_held(runs, root)  # before plan.json: a run another process trains stops this with nothing written
    root.mkdir(parents=True, exist_ok=True)
    (root / "plan.json").write_text(json.dumps(dump(runs), indent=1, default=str))
    t = time.time()
    from ..experiments.launch import launch_options

    done = execute(runs, root, jobs=args.jobs, **launch_options(args))
    written = _write_and_show(args, collect(runs, root), root)
    trained = sum(s == "trained" for _, s in done)
    print(f"{trained} run(s) trained in {time.time() - t:.0f} s; wrote {', '.join(str(p) for p in written)}")
    return 1 if any(s == "unavailable" for _, s in done) and not trained else 0
