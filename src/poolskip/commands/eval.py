"""``poolskip eval CHECKPOINT``: the metrics of a saved model on its task's evaluation split.

The checkpoint carries the run's config, its task state (e.g. the normalisation it was trained with)
and the model weights; it is loaded with ``weights_only=True`` and its model is built from the
registry only (``--allow-external-model`` to import a ``package.module:factory`` it names).
``--data-dir``/``--dataset`` point it at the data on this machine.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory, or a last.pt / best.pt written by `poolskip train`")
    p.add_argument("--which", choices=("last", "best"), default="last", help="which checkpoint of a run directory")
    p.add_argument("--data-dir", help="the dataset's directory on this machine (default: the one trained on)")
    p.add_argument("--dataset", help="dataset name (default: the one trained on)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default: the run's)")
    p.add_argument("--allow-external-model", action="store_true", help="import a package.module:factory model")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def evaluate_checkpoint(path: str, overrides: dict | None = None, device: str = "auto", **kwargs) -> dict:
    """The task's metrics of the checkpoint at ``path`` (plus ``epoch``)."""
    import contextlib

    from ..engine.trainer import evaluate, restore

    model, task, info = restore(path, kwargs.pop("which", "last"), device, overrides, **kwargs)
    return {**evaluate(model, task, contextlib.nullcontext), "epoch": info["epoch"], "monitor": task.monitor.metric}


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("data.data_dir", args.data_dir), ("data.dataset", args.dataset)) if v is not None}
    if args.batch_size is not None:
        overrides["run.eval_batch_size"] = args.batch_size
    m = evaluate_checkpoint(
        args.checkpoint, overrides, args.device, which=args.which, allow_external_model=args.allow_external_model
    )
    if args.json:
        print(json.dumps(m))
    else:
        scalars = "  ".join(f"{k} {v:.4g}" for k, v in m.items() if isinstance(v, float))
        print(f"{args.checkpoint} (epoch {m['epoch']}): {scalars}")
    return 0
