"""A short CPU run of the segmentation3d task, driven by calling the task's methods directly.

Stand-in for ``poolskip train`` while the task-generic engine (issue 9) was not merged: the same contract
(per-sample losses summed and divided by the global batch), nnU-Net's optimiser (SGD 0.01, Nesterov
momentum 0.99, weight decay 3e-5, poly 0.9 per step, gradient norm clipped at 12), the ``hippocampus``
recipe for data and task options. Writes ``<out>/metrics.jsonl`` and ``<out>/summary.json``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import yaml

from poolskip.engine.config import make_config
from poolskip.experiments.recipes import load_recipe
from poolskip.models import create_model, get_model_entry
from poolskip.tasks import get_task


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="nnunet")
    p.add_argument("--pool-skip", type=yaml.safe_load, default=None)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--set", nargs="*", default=[], help="segmentation3d options as key=value (YAML values)")
    args = p.parse_args()

    rec = load_recipe("hippocampus")
    rec["model"], rec["pool_skip"] = args.model, args.pool_skip
    rec["data"].update({"data_dir": args.data_dir, "cache_dir": args.cache_dir})
    rec["optim"]["epochs"] = args.epochs
    rec.setdefault("run", {})["seed"] = args.seed
    for kv in args.set:
        k, _, v = kv.partition("=")
        rec["segmentation3d"][k] = yaml.safe_load(v)
    cfg = make_config(rec)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    torch.manual_seed(args.seed)
    task = get_task("segmentation3d")(cfg, torch.device("cpu"))
    print(task.describe(), flush=True)
    spec = task.model_spec()
    takes = inspect.signature(get_model_entry(cfg.model).factory).parameters
    hints = {k: v for k, v in spec.hints.items() if k in takes}
    torch.manual_seed(args.seed)
    model = create_model(cfg.model, num_classes=spec.num_classes, in_channels=spec.in_channels,
                         pool_skip=cfg.pool_skip, **hints)  # fmt: skip
    o = cfg.optim
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, nesterov=o.nesterov,
                          weight_decay=o.weight_decay)  # fmt: skip
    steps = task.steps_per_epoch()
    total = o.epochs * steps
    log = open(out / "metrics.jsonl", "w")
    t0 = time.time()
    for epoch in range(o.epochs):
        model.train()
        losses = []
        for b, batch in enumerate(task.train_batches(epoch)):
            lr = o.lr * (1 - (epoch * steps + b) / total) ** o.power
            for g in opt.param_groups:
                g["lr"] = lr
            loss = task.loss(model(batch.inputs), batch.targets).sum() / batch.global_size
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
            opt.step()
            losses.append(float(loss))
        rec_ = {"epoch": epoch + 1, "train_loss": sum(losses) / len(losses), "wall_s": round(time.time() - t0, 1)}
        if (epoch + 1) % cfg.run.eval_every == 0 or epoch + 1 == o.epochs:
            model.eval()
            with torch.no_grad():
                rec_.update(task.evaluate(model, nullcontext))
            rec_["wall_s"] = round(time.time() - t0, 1)
        print(json.dumps(rec_), flush=True)
        log.write(json.dumps(rec_) + "\n")
        log.flush()
    summary = {**rec_, "model": cfg.model, "pool_skip": cfg.pool_skip, "seed": args.seed,
               "params": sum(p.numel() for p in model.parameters()), "steps": total,
               "batch_size": o.batch_size, "patch_size": task.patch_size, "train_volumes": len(task.train_ids),
               "eval_volumes": len(task.eval_ids), "load_avg_end": os.getloadavg()}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
