"""``poolskip models``: the registered networks with parameters and FLOPs, plain and with Pool Skip."""

from __future__ import annotations

import argparse

from .common import UsageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names", nargs="*", metavar="MODEL", help="models to list (default: the paper's CIFAR networks)"
    )
    parser.add_argument("--num-classes", type=int, default=10, help="classes of the fc layer (default: 10)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")


def run(args: argparse.Namespace) -> int:
    from ..errors import did_you_mean
    from ..models import get_model_entry, list_models
    from ..models.table import format_table, stats

    known = [n for n in list_models() if 2 in get_model_entry(n).spatial_dims]  # the table counts 2D images
    for name in args.names:
        if name in list_models() and name not in known:
            raise UsageError(
                f"{name} is a {'/'.join(map(str, get_model_entry(name).spatial_dims))}D network; this table counts "
                f"one 3x32x32 image, so it lists 2D networks only: {', '.join(known)}"
            )
        if name not in known:
            raise UsageError(f"unknown model {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})")
    if args.num_classes < 1:
        raise UsageError(f"--num-classes must be >= 1, got {args.num_classes}")
    print(format_table(stats(args.names or list_models("cifar"), args.num_classes), markdown=args.markdown))
    print(
        f"\n{args.num_classes} classes; MACs = multiply-adds of one forward pass of a 3x32x32 image, counted by "
        "torch.utils.flop_counter.FlopCounterMode (convolutions and matrix products only); Pool Skip placed as "
        "in the paper (create_model(name, pool_skip=True))."
    )
    return 0
