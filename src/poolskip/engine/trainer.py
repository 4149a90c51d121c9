"""The training loop, written once for every task.

``train(cfg, run_dir)`` builds the task and the model, then runs epochs of: set the learning rate
(per iteration), forward under autocast, backward, clip, step; evaluate; write one metrics line,
TensorBoard scalars and the ``last`` (and maybe ``best``) checkpoint. ``resume=True`` continues from
``run_dir/checkpoints/last.pt``, mid-epoch included. Under ``torchrun`` the model is wrapped in DDP
and only rank 0 writes files.

A run directory holds::

    config.yaml        the resolved config (what `--resume` reads back)
    metrics.jsonl      one JSON record per epoch
    tb/                TensorBoard events
    checkpoints/       last.pt, best.pt (torch.load(..., weights_only=True))
    summary.json       final and best top-1 error, params, wall time, seed, versions, device
"""

from __future__ import annotations

import importlib
import json
import math
import os
import platform
import time
from functools import partial
from pathlib import Path

import torch
import yaml
from torch import nn

from ..convert import convert
from ..files import atomic_save, atomic_write_text
from ..models import create_model, list_models, pool_skip_spec
from . import distributed
from .config import ConfigError, TrainConfig, make_config
from .progress import Progress
from .task import ClassificationTask


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


# ------------------------------------------------------------------------------------------ pieces


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """A registered model (``poolskip.models``) or ``package.module:factory``, plain or with Pool Skip."""
    if ":" in cfg.model:
        module_name, _, attr = cfg.model.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"model {cfg.model!r}: cannot import {attr} from {module_name} ({e})") from None
        model = factory(num_classes=num_classes, **cfg.model_kwargs)
        spec = pool_skip_spec(cfg.pool_skip, {})  # True: convert's defaults (every conv, pool 2)
        if spec is not None:
            convert(model, **spec)
        return model

    if cfg.model not in list_models():
        raise ConfigError(f"unknown model {cfg.model!r}; known: {', '.join(list_models())}, or package.module:factory")
    return create_model(cfg.model, num_classes=num_classes, pool_skip=cfg.pool_skip, **cfg.model_kwargs)


def load_checkpoint(path: str | os.PathLike, which: str = "last", device: str | torch.device = "cpu"):
    """``(model, checkpoint)`` from a run directory (``checkpoints/<which>.pt``) or a checkpoint file.

    The model is rebuilt by :func:`build_model` from the stored config and class count, in eval mode;
    ``checkpoint`` is the loaded dict (config, mean, std, epoch, ...) without the model and optimiser states.
    """
    path = Path(path)
    file = path / "checkpoints" / f"{which}.pt" if path.is_dir() else path
    if not file.is_file():
        what = f"a run directory with checkpoints/{which}.pt" if path.is_dir() else "a checkpoint file"
        raise FileNotFoundError(f"{file} not found: expected {what} written by `poolskip train`")
    ck = torch.load(file, map_location=device, weights_only=True)
    missing = [k for k in ("model", "config", "num_classes") if k not in ck]
    if missing:
        raise ValueError(f"{file} is not a `poolskip train` checkpoint: it lacks {missing}")
    model = build_model(make_config(ck["config"]), ck["num_classes"])
    model.load_state_dict(ck["model"])
    model.to(device).eval()
    info = {k: v for k, v in ck.items() if k not in ("model", "optimizer", "scaler", "rng")}
    info["path"] = str(file)
    return model, info


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )


def lr_at(cfg: TrainConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The learning rate for ``step`` of ``epoch`` (0-based): linear warm-up, then the schedule.

    multistep: ``lr * gamma ** (number of milestones <= epoch)``, i.e. the rate drops after that many
    complete epochs (PyTorch's MultiStepLR stepped once per epoch). cosine: from ``lr`` to ``min_lr``
    per iteration over the epochs after warm-up.
    """
    t = epoch + step / steps_per_epoch  # epochs done
    if cfg.warmup_epochs > 0 and t < cfg.warmup_epochs:
        return cfg.lr * (epoch * steps_per_epoch + step + 1) / (cfg.warmup_epochs * steps_per_epoch)
    if cfg.schedule == "multistep":
        return cfg.lr * cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        span = max(cfg.epochs - cfg.warmup_epochs, 1e-9)
        progress = min(max((t - cfg.warmup_epochs) / span, 0.0), 1.0)
        return cfg.min_lr + (cfg.lr - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr


def environment(device: torch.device) -> dict:
    """Versions and hardware, for summary.json."""
    import torchvision

    from .. import __version__

    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        cpu = platform.processor() or platform.machine()
        hw = f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    return {
        "device": str(device),
        "hardware": hw,
        "versions": {
            "poolskip": __version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "python": platform.python_version(),
        },
    }


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


# -------------------------------------------------------------------------------------------- loop


def train(cfg: TrainConfig, run_dir: str | os.PathLike, *, resume: bool = False, log=None) -> dict:
    """Train ``cfg`` writing into ``run_dir``; returns the summary (also ``run_dir/summary.json``).

    Raises :class:`NonFiniteLoss` if the loss becomes NaN/inf (the last good checkpoint stays).
    PyTorch's global deterministic-algorithms flag and thread count are restored on return.
    """
    was_deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    try:
        return _train(cfg, Path(run_dir), resume, log or partial(print, flush=True))
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def _train(cfg: TrainConfig, run_dir: Path, resume: bool, log) -> dict:
    t_start = time.time()
    ckpt_dir = run_dir / "checkpoints"
    dinfo = distributed.setup(cfg.device)
    device, main = dinfo.device, dinfo.is_main
    log = log if main else (lambda *a, **k: None)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ConfigError("amp=fp16 needs a CUDA device; use amp=bf16 or amp=none on CPU")
    if cfg.sync_bn and dinfo.world_size > 1 and device.type != "cuda":
        raise ConfigError("sync_bn needs CUDA (PyTorch's SyncBatchNorm does not run on CPU)")

    # task, model, optimiser
    torch.manual_seed(cfg.seed)
    task = ClassificationTask(cfg, device, dinfo.rank, dinfo.world_size)
    model = build_model(cfg, task.num_classes)
    task.bind(model)
    params = sum(p.numel() for p in model.parameters())
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.sync_bn and dinfo.world_size > 1:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    raw = model  # what checkpoints hold
    if dinfo.world_size > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)
    optimizer = make_optimizer(cfg, raw)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    autocast = partial(torch.autocast, device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    # where we start
    epoch, start_step, history, best_error = 0, 0, [], math.inf
    partial_sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, samples this epoch
    elapsed_before = 0.0
    if resume:
        ck = torch.load(ckpt_dir / "last.pt", map_location=device, weights_only=True)
        raw.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        scaler.load_state_dict(ck["scaler"])
        epoch, start_step, history = ck["epoch"], ck["step"], ck["history"]
        best_error, elapsed_before = ck["best_error"], ck["wall_seconds"]
        partial_sums = ck["partial_sums"].to(device)
        _set_rng_state(ck["rng"], device)
        log(f"resuming {run_dir} at epoch {epoch + 1}, step {start_step}")
        if main:  # overrides given with --resume (e.g. more epochs) become part of the resolved config
            atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    elif (ckpt_dir / "last.pt").exists():  # checked by every process, so none waits for a failed one
        raise ConfigError(f"{run_dir} already holds a run; use --resume {run_dir} or another --run-name")
    elif main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))

    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"), purge_step=epoch + 1 if resume else None)
        # on resume: exactly the checkpointed epochs
        atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
    steps = task.steps_per_epoch()
    log(
        f"{cfg.model} ({cfg.variant}, {params:,} params) on {cfg.dataset}: {len(task.train.images)} train / "
        f"{len(task.test.images)} test images, {cfg.epochs} epochs x {steps} steps, batch {cfg.batch_size}, "
        f"{device}" + (f" x {dinfo.world_size} processes" if dinfo.world_size > 1 else "")
    )

    def save(name: str, epoch_: int, step_: int, sums: torch.Tensor) -> None:
        state = {
            "model": raw.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch_,
            "step": step_,
            "partial_sums": sums.cpu(),
            "history": history,
            "best_error": best_error,
            "wall_seconds": elapsed_before + time.time() - t_start,
            "rng": _rng_state(device),
            "config": cfg.to_dict(),
            "num_classes": task.num_classes,
            "mean": task.mean,
            "std": task.std,
        }
        atomic_save(state, ckpt_dir / f"{name}.pt")

    def check_finite(sums: torch.Tensor, where: str) -> None:
        total = distributed.all_reduce_sum(sums[:1].clone(), dinfo)
        if not torch.isfinite(total).all():
            kept = ckpt_dir / "last.pt"
            raise NonFiniteLoss(
                f"training loss became {total.item()} {where}; stopped. The last good checkpoint is {kept}"
                + ("" if kept.exists() else " (none was written yet)")
                + ". Try a lower lr, warmup_epochs or grad_clip."
            )

    diagnostics = None
    if cfg.diagnostics_every > 0:
        diagnostics = importlib.import_module("poolskip.diagnostics")
        probe_x, probe_y = task.probe_batch()

    model.train()
    while epoch < cfg.epochs:
        progress = Progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", enabled=main)
        sums, seen = partial_sums, 0
        t0 = time.perf_counter()
        for step, batch in enumerate(task.train_batches(epoch, start_step), start=start_step):
            lr = lr_at(cfg, epoch, step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast():
                out = model(batch.inputs)
            losses = task.loss(out, batch.targets)
            loss = losses.sum() * (dinfo.world_size / batch.global_size)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            sums += torch.stack([losses.detach().sum().double(), torch.tensor(len(losses), device=device)])
            seen += batch.global_size
            progress.update(step + 1, lambda s=sums, r=lr: f"loss {s[0].item() / max(s[1].item(), 1):.4f} lr {r:.4g}")
            if cfg.checkpoint_every and (step + 1) % cfg.checkpoint_every == 0 and step + 1 < steps:
                check_finite(sums, f"in epoch {epoch + 1} by step {step + 1}")
                if main:
                    save("last", epoch, step + 1, sums)
        train_seconds = time.perf_counter() - t0
        progress.close()
        check_finite(sums, f"in epoch {epoch + 1}")
        sums = distributed.all_reduce_sum(sums, dinfo)
        t1 = time.perf_counter()
        metrics = task.evaluate(model, autocast)
        record = {
            "epoch": epoch + 1,
            "train_loss": sums[0].item() / sums[1].item(),
            **metrics,
            "lr": lr,
            "epoch_seconds": train_seconds,
            "eval_seconds": time.perf_counter() - t1,
            "images_per_s": seen / train_seconds if train_seconds > 0 else None,
        }
        if diagnostics is not None and (epoch + 1) % cfg.diagnostics_every == 0 and main:
            record["diagnostics"] = {k: float(v) for k, v in diagnostics.probe_measures(raw, probe_x, probe_y).items()}
        history.append(record)
        epoch, start_step = epoch + 1, 0
        partial_sums = torch.zeros(2, dtype=torch.float64, device=device)
        improved = record["test_error"] < best_error
        best_error = min(best_error, record["test_error"])
        if main:
            save("last", epoch, 0, partial_sums)
            if improved:
                save("best", epoch, 0, partial_sums)
            with open(run_dir / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(record) + "\n")
            for key, value in record.items():
                if key == "diagnostics":
                    for name, v in value.items():
                        writer.add_scalar(f"diagnostics/{name}", v, epoch)
                elif key != "epoch" and value is not None:
                    writer.add_scalar(key, value, epoch)
            writer.flush()
        log(
            f"epoch {epoch}/{cfg.epochs}  train loss {record['train_loss']:.4f}  test loss {record['test_loss']:.4f}  "
            f"test error {record['test_error']:.2f}%  lr {lr:.4g}  {train_seconds:.1f}s  "
            f"{record['images_per_s'] or 0:.0f} img/s"
        )

    summary = {
        "model": cfg.model,
        "variant": cfg.variant,
        "dataset": cfg.dataset,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "final_error": history[-1]["test_error"],
        "best_error": best_error,
        "best_epoch": 1 + min(range(len(history)), key=lambda i: history[i]["test_error"]),
        "params": params,
        "wall_seconds": elapsed_before + time.time() - t_start,
        "world_size": dinfo.world_size,
        **environment(device),
    }
    if main:
        writer.close()
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        log(f"done: final test error {summary['final_error']:.2f}%, best {best_error:.2f}%  ->  {run_dir}")
    return summary


def load_run_config(run_dir: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
    """The resolved config a run directory was trained with, updated by ``overrides``."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: --resume expects a run directory written by `poolskip train`")
    return make_config(yaml.safe_load(path.read_text()), overrides or {})
