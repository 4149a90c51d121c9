"""``poolskip ensemble FOLD_RUN...``: the cross-validation folds' ensemble on the test set (segmentation3d).

Each fold's model (``best.pt`` by default) predicts every test volume with a Gaussian sliding window; the
softmax probabilities are averaged, the argmax scored (Dice, NSD in mm, IoU per class and mean), as the
paper reports its 5-fold BTCV/AMOS numbers. The folds must be finished runs of one config (``poolskip train
--folds``); the first run's test set is scored. Before any model predicts, the runs are refused (one line
naming the run and why) when one has not finished (no summary.json: still training, stopped or killed), two
are the same fold, one was trained or validated on a test case, their data, channels, normalisation, classes,
spacing or patch differ, or one was trained with another config than the first (model, pool_skip,
model_kwargs, lr, epochs, seed, sliding-window overlap, ...: anything but the fold and where it ran). One run
is scored alone: that fold on the test set. A fold trained with a ``package.module:factory`` model is loaded
only with ``--allow-external-model``. ``--data-dir`` reads the data from where it is on this machine (its
cases, channels, classes and plan must still be the folds'); the predictions run under the folds' ``run.amp``
(their own evaluations' precision; ``--amp`` to change it). Progress goes to stderr (a bar on a terminal, a
line every few seconds otherwise); stdout holds the scores.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial

from .common import checkpoint_choice


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "runs",
        nargs="+",
        metavar="FOLD_RUN",
        help="the folds' run directories (RUN/seed0/fold0 ...): finished runs of one config",
    )
    p.add_argument(
        "--which", choices=("last", "best"), default=None,
        help="which checkpoint of each fold's run directory (default: best; a checkpoint file is read as given)",
    )  # fmt: skip
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--data-dir", help="the dataset's directory on this machine (default: the one the folds trained on)")
    p.add_argument(
        "--amp", choices=("none", "bf16", "fp16"), default=None,
        help="mixed precision of the predictions (default: the runs' run.amp, as their own evaluations; fp16: CUDA)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    p.add_argument(
        "--allow-external-model", action="store_true", help="import a package.module:factory model a fold names"
    )


def run(args: argparse.Namespace) -> int:
    from ..engine.distributed import resolve_device
    from ..engine.rundir import strict_json
    from ..experiments.folds3d import ensemble_runs
    from ..progress import reporting

    device = str(resolve_device(args.device))  # a bad --device is named as such, not as a corrupt checkpoint
    with reporting(partial(print, file=sys.stderr, flush=True)):
        for r in args.runs:  # a checkpoint file that --which contradicts is refused, not read as given
            checkpoint_choice(r, args.which, "best")
        scores = ensemble_runs(
            args.runs, args.which or "best", device, allow_external_model=args.allow_external_model,
            data_dir=args.data_dir, amp=args.amp,
        )  # fmt: skip
    if args.json:
        print(json.dumps(strict_json(scores)))
    else:
        scalars = "  ".join(f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, float))
        what = f"ensemble of {len(args.runs)} folds" if len(args.runs) > 1 else "1 fold alone (not an ensemble)"
        amp = "" if scores["amp"] == "none" else f" ({scores['amp']})"
        print(f"{what} on the test set{amp}: {scalars}")
    return 0
