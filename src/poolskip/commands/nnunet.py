"""``poolskip nnunet``: where nnU-Net v2 finds poolskip's trainers (the ``nnUNet_extTrainer`` value).

nnU-Net (>= 2.8) looks for ``-tr NAME`` in the folders named by ``nnUNet_extTrainer``::

    export nnUNet_extTrainer=$(poolskip nnunet)        # or: eval "$(poolskip nnunet --export)"
    nnUNetv2_train DATASET 3d_fullres FOLD -tr nnUNetTrainerPoolSkip
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--export", action="store_true", help="print a shell 'export nnUNet_extTrainer=...' line")
    p.add_argument("--list", action="store_true", help="list the trainers nnU-Net will find there")


def trainer_names() -> list[str]:
    """The trainer classes in the trainer folder (read from the source: nnU-Net need not be installed)."""
    from ..integrations.nnunet import trainer_dir

    names = []
    for path in sorted(trainer_dir().glob("*.py")):
        tree = ast.parse(path.read_text())
        names += [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    return names


def run(args: argparse.Namespace) -> int:
    from ..integrations.nnunet import trainer_dir

    folder = str(trainer_dir())
    if args.list:
        for name in trainer_names():
            print(name)
        return 0
    print(f"export nnUNet_extTrainer={folder}" if args.export else folder)
    if importlib.util.find_spec("nnunetv2") is None:
        print("note: nnU-Net v2 is not installed here: pip install 'poolskip[nnunet]'", file=sys.stderr)
    return 0
