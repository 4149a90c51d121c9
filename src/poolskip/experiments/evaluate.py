"""``poolskip eval CHECKPOINT``: top-1 error of a saved model on its dataset's test split.

The checkpoint carries the run's config, its normalisation and the model weights; it is loaded with
``weights_only=True``. ``--data-dir``/``--dataset`` point it at the data on this machine.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a last.pt or best.pt written by `poolskip train`")
    p.add_argument("--data-dir", help="the dataset's directory on this machine (default: the one trained on)")
    p.add_argument("--dataset", help="dataset name (default: the one trained on)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=None, help="evaluation batch size")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def evaluate_checkpoint(path: str, overrides: dict | None = None, device: str = "auto") -> dict:
    """Metrics (test_loss, test_error %, images) of the checkpoint at ``path``."""

    from ..engine import distributed
    from ..engine.config import make_config
    from ..engine.task import ClassificationTask
    from ..engine.trainer import load_checkpoint

    model, ck = load_checkpoint(path)
    cfg = make_config(ck["config"], {"mean": ck["mean"], "std": ck["std"], "device": device}, overrides or {})
    dev = distributed.setup(cfg.device).device
    task = ClassificationTask(cfg, dev)
    model.to(dev)
    task.bind(model)
    return {**task.evaluate(model), "images": len(task.test.images), "epoch": ck["epoch"]}


def run(args: argparse.Namespace) -> int:
    from ..data import DatasetError
    from ..engine.config import ConfigError

    overrides = {k: v for k, v in (("data_dir", args.data_dir), ("dataset", args.dataset)) if v is not None}
    if args.batch_size:
        overrides["eval_batch_size"] = args.batch_size
    try:
        m = evaluate_checkpoint(args.checkpoint, overrides, args.device)
    except FileNotFoundError:
        print(f"poolskip eval: error: no checkpoint at {args.checkpoint}", file=sys.stderr)
        return 1
    except (ConfigError, DatasetError, ValueError) as e:
        print(f"poolskip eval: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(m))
    else:
        print(
            f"{args.checkpoint} (epoch {m['epoch']}): top-1 error {m['test_error']:.2f}%, "
            f"loss {m['test_loss']:.4f} on {m['images']} test images"
        )
    return 0
