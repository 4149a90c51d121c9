"""The ``poolskip`` command: one sub-command per module of :mod:`poolskip.commands`.

A command module provides ``add_arguments(parser)`` and ``run(args) -> int``. Every user-facing failure
is a :class:`~poolskip.errors.PoolskipError`, caught here once: one line on stderr, no traceback.

Only the module of the command being run is imported, and a command module imports torch and the rest of
the library inside its functions: ``poolskip --help`` and ``poolskip COMMAND --help`` stay quick
(``benchmarks/bench_cli.py`` measures them).
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from . import __version__
from .errors import PoolskipError

#: name -> (module of poolskip.commands, one-line help)
COMMANDS = {
    "demo": ("demo", "train a small CNN with and without Pool Skip on scikit-learn's digits (no download)"),
    "models": ("models", "the paper's networks with parameters and FLOPs, plain and with Pool Skip"),
    "train": ("train", "train with a recipe (YAML) + overrides; one run directory per seed"),
    "eval": ("evaluate", "the metrics of a checkpoint written by poolskip train"),
    "report": ("report", "the paper's table layout (mean ± std over seeds) + curves from run directories"),
    "diagnose": ("diagnose", "weight l2/l1, dead units, gradient flow per layer: CSV + plots"),
    "reproduce": (
        "reproduce",
        "one command per table/figure of the paper: plan, train what is left, write the table in the paper's layout",
    ),
    "ensemble": ("ensemble", "3D segmentation: average the folds' softmax on the test set and score it"),
    "nnunet": ("nnunet", "the nnUNet_extTrainer folder holding poolskip's nnU-Net v2 trainers (--export, --list)"),
}

_ROLE = re.compile(r":[a-z:]+:`~?([^`<]*?)\s*(?:<[^`>]*>)?`")  # :class:`~a.B` -> B, :func:`text <a.b>` -> text


def plain(text: str) -> str:
    """``text`` (a docstring or help) without reStructuredText markup, as a terminal shows it."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1] if "~" in m.group(0) else m.group(1), text)
    text = text.replace("``", "").replace("::\n", ":\n")
    return re.sub(r"`([^`\n]+)`", r"\1", text)


def command_module(name: str):
    """The module of sub-command ``name`` (imported now, not before)."""
    return importlib.import_module(f".commands.{COMMANDS[name][0]}", __package__)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``poolskip`` parser; only ``command``'s own arguments are set up (the others' modules stay unimported)."""
    parser = argparse.ArgumentParser(prog="poolskip", description="Pool Skip (AAAI 2025) for PyTorch networks.")
    parser.add_argument("--version", action="version", version=f"poolskip {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name != command:
            continue
        module = command_module(name)
        p.description = plain(module.__doc__.split("\n\n")[0]) if module.__doc__ else None
        p.set_defaults(_run=module.run)
        module.add_arguments(p)
        for action in p._actions:
            if action.help:
                action.help = plain(action.help)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # the top level takes no option values
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except PoolskipError as e:
        print(f"poolskip {command}: error: {e}", file=sys.stderr)  # not args.command: reproduce has its own
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
