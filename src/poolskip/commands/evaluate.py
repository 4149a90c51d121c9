"""``poolskip eval CHECKPOINT``: the metrics of a saved model on its task's evaluation split.

The checkpoint carries the run's config, its task state (e.g. the normalisation it was trained with)
and the model weights; it is loaded with ``weights_only=True`` and its model is built from the
registry only (``--allow-external-model`` to import a ``package.module:factory`` it names).
``--data-dir``/``--dataset`` point it at the data on this machine; data unlike the training data (other
channels, normalisation, classes, or a model built for other input channels / classes than the data asks
for) is refused in one line naming the checkpoint, what it stored and what was found. It runs on the run's ``threads``
(``--threads`` to change them) and shows its progress on stderr: a bar on a terminal, a line every few
seconds otherwise; stdout holds the result only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial

from .common import UsageError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory, or a last.pt / best.pt written by `poolskip train`")
    p.add_argument("--which", choices=("last", "best"), default="last", help="which checkpoint of a run directory")
    p.add_argument("--data-dir", help="the dataset's directory on this machine (default: the one trained on)")
    p.add_argument("--dataset", help="dataset name (default: the one trained on)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default: the run's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: the run's threads)")
    p.add_argument("--allow-external-model", action="store_true", help="import a package.module:factory model")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def evaluate_checkpoint(path: str, overrides: dict | None = None, device: str = "auto", **kwargs) -> dict:
    """The task's metrics of the checkpoint at ``path`` (plus ``epoch``, ``monitor`` and ``eval_seconds``), with
    torch on the run's ``threads`` (``overrides["run.threads"]`` wins); progress lines go to stderr."""
    import contextlib

    import torch

    from ..engine.trainer import evaluate, restore
    from ..progress import reporting

    threads = torch.get_num_threads()
    try:
        model, task, info = restore(path, kwargs.pop("which", "last"), device, overrides, **kwargs)
        run_threads = (overrides or {}).get("run.threads") or info["config"].get("run", {}).get("threads")
        if run_threads:
            torch.set_num_threads(int(run_threads))
        t0 = time.perf_counter()
        with reporting(partial(print, file=sys.stderr, flush=True)):
            metrics = evaluate(model, task, contextlib.nullcontext)
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return {**metrics, "epoch": info["epoch"], "monitor": task.monitor.metric, "eval_seconds": seconds}


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("data.data_dir", args.data_dir), ("data.dataset", args.dataset)) if v is not None}
    if args.batch_size is not None:
        overrides["run.eval_batch_size"] = args.batch_size
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        overrides["run.threads"] = args.threads
    m = evaluate_checkpoint(
        args.checkpoint, overrides, args.device, which=args.which, allow_external_model=args.allow_external_model
    )
    if args.json:
        print(json.dumps(m))
    else:
        scalars = "  ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float) and k != "eval_seconds")
        print(f"{args.checkpoint} (epoch {m['epoch']}): {scalars}  ({m['eval_seconds']:.1f} s)")
    return 0
