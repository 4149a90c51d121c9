"""The ``poolskip`` command: one sub-command per module of :mod:`poolskip.commands`.

A command module provides ``add_arguments(parser)`` and ``run(args) -> int``. Every user-facing failure
is a :class:`~poolskip.errors.PoolskipError`, caught here once: one line on stderr, no traceback.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .commands import demo, diagnose, ensemble, evaluate, models, nnunet, report, reproduce, train
from .errors import PoolskipError

#: name -> (module, one-line help)
COMMANDS = {
    "demo": (demo, "train a small CNN with and without Pool Skip on scikit-learn's digits (no download)"),
    "models": (models, "the paper's networks with parameters and FLOPs, plain and with Pool Skip"),
    "train": (train, "train with a recipe (YAML) + overrides; one run directory per seed"),
    "eval": (evaluate, "the metrics of a checkpoint written by `poolskip train`"),
    "report": (report, "the paper's table layout (mean ± std over seeds) + curves from run directories"),
    "diagnose": (diagnose, "weight l2/l1, dead units, gradient flow per layer: CSV + plots"),
    "reproduce": (
        reproduce,
        "one command per table/figure of the paper: plan, train what is left, the table beside the paper's numbers",
    ),
    "ensemble": (ensemble, "3D segmentation: average the folds' softmax on the test set and score it"),
    "nnunet": (nnunet, "the nnUNet_extTrainer folder holding poolskip's nnU-Net v2 trainers (--export, --list)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolskip", description="Pool Skip (AAAI 2025) for PyTorch networks.")
    parser.add_argument("--version", action="version", version=f"poolskip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name, help=help_text, description=module.__doc__.split("\n\n")[0] if module.__doc__ else None
        )
        p.set_defaults(_run=module.run)
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except PoolskipError as e:
        print(f"poolskip {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
