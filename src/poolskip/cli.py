"""The ``poolskip`` command. Each subcommand lives in its own module, imported only when used.

A command module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("poolskip.demo", "train a small CNN with and without Pool Skip on scikit-learn's digits (no download)"),
    "models": ("poolskip.models.table", "the paper's networks with parameters and FLOPs, plain and with Pool Skip"),
    "train": ("poolskip.experiments.train", "train with a recipe (YAML) + overrides; one run directory per seed"),
    "eval": ("poolskip.experiments.evaluate", "top-1 error of a checkpoint written by `poolskip train`"),
    "report": ("poolskip.experiments.report", "Table 1 layout (mean ± std over seeds) + error curves from runs"),
    "diagnose": ("poolskip.diagnostics.command", "weight l2/l1, dead units, gradient flow per layer: CSV + plots"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poolskip", description="Pool Skip (AAAI 2025) for PyTorch networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
