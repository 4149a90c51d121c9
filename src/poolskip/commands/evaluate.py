"""``poolskip eval CHECKPOINT``: the metrics of a saved model on its task's evaluation split.

The checkpoint carries the run's config, its task state (e.g. the normalisation it was trained with)
and the model weights; it is loaded with ``weights_only=True`` and its model is built from the
registry only (``--allow-external-model`` to import a ``package.module:factory`` it names).
``--data-dir``/``--dataset`` point it at the data on this machine; data unlike the training data (other
channels, normalisation, classes, or a model built for other input channels / classes than the data asks
for) is refused in one line naming the checkpoint, what it stored and what was found. It runs on the run's ``threads``
(``--threads`` to change them) and under its mixed precision (``run.amp``, ``--amp`` to change it), so a
checkpoint scores as the run's own evaluation of it did; it shows its progress on stderr: a bar on a terminal, a
line every few seconds otherwise; stdout holds the result only. A ``last.pt`` written mid-epoch
(``checkpoint_every``) is named as such: ``epoch E + S steps``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial

from .common import UsageError, checkpoint_choice


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory, or a last.pt / best.pt written by `poolskip train`")
    p.add_argument(
        "--which", choices=("last", "best"), default=None,
        help="which checkpoint of a run directory (default: last; a checkpoint file is read as given)",
    )  # fmt: skip
    p.add_argument(
        "--amp", choices=("none", "bf16", "fp16"), default=None,
        help="mixed precision of the evaluation (default: the run's run.amp, as its own evaluations; fp16: CUDA)",
    )  # fmt: skip
    p.add_argument("--data-dir", help="the dataset's directory on this machine (default: the one trained on)")
    p.add_argument("--dataset", help="dataset name (default: the one trained on)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default: the run's)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: the run's threads)")
    p.add_argument("--allow-external-model", action="store_true", help="import a package.module:factory model")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def evaluate_checkpoint(
    path: str, overrides: dict | None = None, device: str = "auto", amp: str | None = None, **kwargs
) -> dict:
    """The task's metrics of the checkpoint at ``path`` (plus ``epoch``, ``step``: the steps of the next epoch a
    mid-epoch ``last.pt`` holds, ``amp``, ``monitor`` and ``eval_seconds``), with torch on the run's ``threads``
    (``overrides["run.threads"]`` wins) and under the run's ``run.amp`` (``amp`` wins; a run's fp16 evaluates
    in fp32 off CUDA, said on stderr); progress lines go to stderr."""
    import torch

    from ..engine.trainer import autocast_context, evaluate, evaluation_precision, restore
    from ..progress import reporting

    threads = torch.get_num_threads()
    try:
        model, task, info = restore(path, kwargs.pop("which", "last"), device, overrides, **kwargs)
        run = info["config"].get("run", {})
        run_threads = (overrides or {}).get("run.threads") or run.get("threads")
        if run_threads:
            torch.set_num_threads(int(run_threads))
        where = next(model.parameters(), torch.empty(0)).device
        precision = evaluation_precision(amp, run.get("amp"), where, str(info["path"]))
        t0 = time.perf_counter()
        with reporting(partial(print, file=sys.stderr, flush=True)):
            metrics = evaluate(model, task, autocast_context(precision, where))
        seconds = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    step = int(info.get("step") or 0)
    return {**metrics, "epoch": info["epoch"], "step": step, "amp": precision, "monitor": task.monitor.metric,
            "eval_seconds": seconds}  # fmt: skip


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("data.data_dir", args.data_dir), ("data.dataset", args.dataset)) if v is not None}
    if args.batch_size is not None:
        overrides["run.eval_batch_size"] = args.batch_size
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        overrides["run.threads"] = args.threads
    from ..engine.rundir import strict_json

    which = checkpoint_choice(args.checkpoint, args.which, "last")
    m = evaluate_checkpoint(
        args.checkpoint, overrides, args.device, args.amp, which=which, allow_external_model=args.allow_external_model
    )
    if args.json:
        print(json.dumps(strict_json(m), allow_nan=False))
    else:
        scalars = "  ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float) and k != "eval_seconds")
        at = f"epoch {m['epoch']}" + (f" + {m['step']} steps of epoch {m['epoch'] + 1}" if m["step"] else "")
        amp = "" if m["amp"] == "none" else f", {m['amp']}"
        print(f"{args.checkpoint} ({at}{amp}): {scalars}  ({m['eval_seconds']:.1f} s)")
    return 0
