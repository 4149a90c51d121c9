"""The training loop, written once for every task.

``train(cfg, run_dir)`` reads top to bottom: build (runtime, the run directory's checks, task, model,
optimiser, and only then the run directory itself, so that a bad input writes nothing), then per epoch
:func:`train_one_epoch` and, every ``run.eval_every`` epochs and after the last, :func:`evaluate`; each
epoch ends with one metrics record and a checkpoint. The task decides what a
batch, a loss and a metric are; its :class:`~poolskip.tasks.Monitor` decides which evaluation is best.
``resume=True`` continues from ``run_dir/checkpoints/last.pt``, mid-epoch included, bit-exact on CPU.
Under ``torchrun`` the model is wrapped in DDP and only rank 0 writes files. See :mod:`.rundir` for
the directory's files.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from torch import nn

from ..dist import Dist
from ..errors import PoolskipError
from ..progress import Progress, reporting
from ..tasks import StateMismatch, Task, TaskContext, get_task
from . import distributed
from .checkpoint import CheckpointError, load_checkpoint, model_from_config, read_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, make_config
from .optim import lr_at, make_optimizer, set_lr
from .placement import placement, placement_name
from .rundir import RunDir, RunDirError

__all__ = [
    "Callback",
    "NonFiniteLoss",
    "NonFiniteMetric",
    "build_task",
    "evaluate",
    "load_run_config",
    "restore",
    "task_context",
    "train",
    "train_one_epoch",
]


class NonFiniteLoss(PoolskipError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""

    exit_code = 1


class NonFiniteMetric(PoolskipError):
    """An evaluation metric (a scalar the task returned) is NaN or infinite; nothing of that epoch is written."""

    exit_code = 1


class Callback(Protocol):
    """Something the loop calls on the main process (e.g. :class:`poolskip.diagnostics.ProbeMonitor`)."""

    def start(self, task: Task, model: nn.Module) -> None:
        """Once, before the first epoch."""

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, Any] | None:
        """After epoch ``epoch`` (1-based): fields to add to its metrics record, or None."""


# ------------------------------------------------------------------------------------------ pieces


def task_context(cfg: TrainConfig, dist: Dist | torch.device | str = "cpu") -> TaskContext:
    """What the task of ``cfg`` is built from: its options, the data section, the batch sizes, the seed,
    ``channels_last`` and ``dist`` (a device: one process on that device)."""
    if not isinstance(dist, Dist):
        dist = Dist(device=torch.device(dist))
    run = cfg.run
    return TaskContext(
        options=cfg.options, data=cfg.data, batch_size=cfg.optim.batch_size, eval_batch_size=run.eval_batch_size,
        seed=run.seed, channels_last=run.channels_last, dist=dist,
    )  # fmt: skip


def build_task(cfg: TrainConfig, dist: Dist | torch.device | str = "cpu", state: dict | None = None) -> Task:
    """The registered task of ``cfg`` on ``dist`` (or one process on a device); ``state``: what a checkpoint
    stored to rebuild it exactly."""
    return get_task(cfg.task)(task_context(cfg, dist), state)


@dataclass
class Position:
    """Where training stands; everything here goes into ``last.pt``."""

    epoch: int = 0  # epochs completed
    step: int = 0  # steps completed in the current epoch
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(2, dtype=torch.float64))  # loss sum, samples
    history: list[dict] = field(default_factory=list)
    best: float = math.nan  # the monitor's best value so far (NaN before the first evaluation)
    seconds: float = 0.0  # wall time of the sessions before this one


def train_one_epoch(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    cfg: TrainConfig,
    pos: Position,
    autocast: Callable,
    world_size: int,
    on_step: Callable[[int, Callable[[], None]], None],
    progress: Progress,
    on_nonfinite: Callable[[int, str, float], None] | None = None,
) -> tuple[float, int]:
    """Steps ``pos.step``.. of epoch ``pos.epoch``, accumulating ``pos.sums``; returns (last lr, samples).

    ``on_nonfinite(step, what, value)`` is called (and should raise) for the first step whose loss (or, with
    ``grad_clip``, gradient norm) is NaN or infinite on any process (summed over them, so every process
    stops at the same step); each step is checked while the next one runs, so the device never waits for
    the host nor the processes for each other's sum (it is reduced asynchronously), and the last one before
    returning. ``on_step(step, settle)`` follows every step; ``settle()`` checks that step at once (before a
    checkpoint of it is written)."""
    steps, seen, lr = task.steps_per_epoch(), 0, math.nan
    params = [p for group in optimizer.param_groups for p in group["params"]]
    pending: tuple[int, torch.Tensor, Any] | None = None  # the last step's number, (loss, gradient norm), reduction

    def check(step: int, values: torch.Tensor, reduction: Any) -> None:
        if reduction is not None:
            reduction.wait()
        for what, value in zip(("loss", "gradient norm"), values.tolist()):
            if on_nonfinite is not None and not math.isfinite(value):
                on_nonfinite(step, what, value)

    def settle() -> None:
        nonlocal pending
        if pending is not None:
            check(*pending)
            pending = None

    model.train()
    for step, batch in enumerate(task.train_batches(pos.epoch, pos.step), start=pos.step):
        lr = lr_at(cfg.optim, pos.epoch, step, steps)
        set_lr(optimizer, lr)
        with autocast():
            out = model(batch.inputs)
        losses = task.loss(out, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses.sum() * (world_size / batch.global_size)).backward()
        loss_sum = losses.detach().sum().double()
        values = torch.stack([loss_sum, torch.zeros_like(loss_sum)])  # loss, gradient norm (0: not measured)
        if cfg.optim.grad_clip > 0:
            scaler.unscale_(optimizer)
            norm = nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            if not scaler.is_enabled():  # fp16: inf gradients are the scaler's to skip
                values[1] = norm.detach()
        scaler.step(optimizer)
        scaler.update()
        reduction = torch.distributed.all_reduce(values, async_op=True) if world_size > 1 else None
        if pending is not None:
            check(*pending)
        pending = (step + 1, values, reduction)
        pos.sums += torch.stack([loss_sum, losses.new_tensor(len(losses), dtype=torch.float64)])
        pos.step, seen = step + 1, seen + batch.global_size
        progress.update(step + 1, lambda r=lr: f"loss {pos.sums[0].item() / max(pos.sums[1].item(), 1):.4f} lr {r:.4g}")
        on_step(step + 1, settle)
    settle()
    return lr, seen


def autocast_context(amp: str, device: torch.device) -> Callable:
    """The context factory a run's forward passes (training and evaluation) run under: ``run.amp`` (``none``,
    ``bf16``, ``fp16``) on ``device``'s type."""
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    return partial(torch.autocast, device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def evaluation_precision(requested: str | None, trained: str | None, device: torch.device, what: str) -> str:
    """The mixed precision (``none``, ``bf16``, ``fp16``) an evaluation of a run trained under ``trained`` (its
    ``run.amp``) runs under on ``device``: ``requested`` where given, else the run's own, as its evaluations
    were. fp16 needs CUDA: asked for elsewhere it is a :class:`ConfigError`; a run's own fp16 is evaluated in
    fp32 there, said on stderr (``what`` names the run)."""
    import sys

    precision = requested or trained or "none"
    if precision == "fp16" and device.type != "cuda":
        if requested:
            raise ConfigError(f"--amp fp16 needs a CUDA device; this evaluation runs on {device}")
        print(f"note: {what} trained under fp16, which needs CUDA; evaluating in fp32 on {device}, so it may "
              "differ a little from the run's own evaluation", file=sys.stderr)  # fmt: skip
        return "none"
    return precision


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, autocast: Callable) -> dict[str, Any]:
    """``task.evaluate`` in eval mode, restoring the model's mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        return task.evaluate(model, autocast)
    finally:
        model.train(was_training)


@functools.lru_cache(maxsize=1)
def source_commit() -> str | None:
    """The git commit of the checkout poolskip runs from (``+changes`` where its ``src/`` differs from that
    commit), so that a run names the code that trained it beyond the package version; None for an installed
    package (no checkout around it) or where git is not available. Read once per process, at its first run's
    start (a commit made while it trains is not its code)."""
    root = Path(__file__).resolve().parents[3]  # src/poolskip/engine/trainer.py -> the checkout
    if not (root / ".git").exists() or not (root / "src" / "poolskip").is_dir():
        return None
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=20)
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "src"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode or changed.returncode or not head.stdout.strip():
        return None
    return head.stdout.strip() + ("+changes" if changed.stdout.strip() else "")


def environment(device: torch.device) -> dict:
    """Versions (with :func:`source_commit` where poolskip runs from a git checkout) and hardware, for
    summary.json."""
    import torchvision

    from .. import __version__

    if device.type == "cuda":
        hw = torch.cuda.get_device_name(device)
    else:
        cpu = platform.processor() or platform.machine()
        hw = f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"
    versions = {"poolskip": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__}
    commit = source_commit()
    if commit:
        versions["poolskip_commit"] = commit
    return {"device": str(device), "hardware": hw, "versions": {**versions, "python": platform.python_version()}}


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _runtime(cfg: TrainConfig) -> Dist:
    """Device, process group, threads and determinism for this run; checks what the device can do."""
    run = cfg.run
    dinfo = distributed.setup(run.device)
    if run.threads:
        torch.set_num_threads(run.threads)
    if run.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif dinfo.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if run.amp == "fp16" and dinfo.device.type != "cuda":
        raise ConfigError("config key 'run.amp' is fp16, which needs a CUDA device; use bf16 or none on CPU")
    if run.sync_bn and dinfo.world_size > 1 and dinfo.device.type != "cuda":
        raise ConfigError("config key 'run.sync_bn' needs CUDA (PyTorch's SyncBatchNorm does not run on CPU)")
    return dinfo


GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool3d)


def _batchnorm_after_global_pool(model: nn.Module) -> str | None:
    """The name of a BatchNorm that normalises a globally pooled (1x1) map, as DeepLab's ASPP image pooling:
    in training it needs at least 2 samples per process (one value per channel has no variance)."""
    for prefix, seq in model.named_modules():
        if not isinstance(seq, nn.Sequential):
            continue
        pooled = False
        for name, child in seq.named_children():
            if isinstance(child, GLOBAL_POOLS):
                size = child.output_size
                pooled = all(s == 1 for s in (size if isinstance(size, tuple) else (size,)))
            elif pooled and isinstance(child, nn.modules.batchnorm._BatchNorm):
                return f"{prefix}.{name}" if prefix else name
    return None


def _refuse_untrainable(model: nn.Module, cfg: TrainConfig, world_size: int) -> None:
    """A ConfigError, before anything is trained, for a model that cannot train as configured: a dropout that
    drops everything, or a BatchNorm after a global pool given one sample per process."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p >= 1:
            raise ConfigError(
                f"model {cfg.model!r} (model_kwargs {cfg.model_kwargs}): {type(m).__name__} {name} has p={m.p}, "
                "which drops every activation in training: nothing can be learned (use p < 1)"
            )
    per_process = cfg.optim.batch_size // world_size  # the smallest share (tensor_split), full batches
    if per_process < 2:
        site = _batchnorm_after_global_pool(model)
        if site is not None:
            where = f" split across {world_size} processes" if world_size > 1 else ""
            raise ConfigError(
                f"model {cfg.model!r} normalises a globally pooled map ({site}), which BatchNorm cannot do for one "
                f"sample: batch_size {cfg.optim.batch_size}{where} gives a process {per_process}; use a batch of at "
                f"least {2 * world_size}"
            )


def _format(record: dict[str, Any]) -> str:
    """A metrics record as one log line: the losses and metrics (every scalar), then lr and speed."""
    skip = {"epoch", "lr", "epoch_seconds", "eval_seconds", "samples_per_s"}
    parts = [f"{k} {v:.4g}" for k, v in record.items() if k not in skip and isinstance(v, float)]
    rate = record.get("samples_per_s") or 0.0
    speed = f"{record['epoch_seconds']:.1f}s  {rate:.{0 if rate >= 10 else 2}f} samples/s"  # 3D on CPU: < 1/s
    if record.get("eval_seconds") is not None:
        speed += f"  eval {record['eval_seconds']:.1f}s"
    return "  ".join(parts) + f"  lr {record['lr']:.4g}  {speed}"


def _tensorboard(writer, record: dict[str, Any], epoch: int, prefix: str = "") -> None:
    for key, value in record.items():
        if isinstance(value, dict):
            _tensorboard(writer, value, epoch, f"{prefix}{key}/")
        elif key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
            writer.add_scalar(prefix + key, value, epoch)


# -------------------------------------------------------------------------------------------- loop


def train(
    cfg: TrainConfig,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Iterable[Callback] = (),
    allow_external_model: bool = True,
    log: Callable[..., None] | None = None,
) -> dict:
    """Train ``cfg`` writing into ``run_dir``; returns the summary (also ``run_dir/summary.json``).

    The run directory is made (and, with ``overwrite``, cleared) only once the data were read and the model
    and optimiser built: a bad input writes nothing. ``resume`` of a run that stopped before its first
    checkpoint starts it afresh. Raises :class:`NonFiniteLoss` if the loss becomes NaN/inf (the last good
    checkpoint stays). PyTorch's global deterministic-algorithms flag and thread count are restored on return.
    """
    was_deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    rundir = None
    try:
        dinfo = _runtime(cfg)
        rundir = RunDir(run_dir, writer=dinfo.is_main)
        rundir.check(resume, overwrite)  # refused before any data is read
        log = log or partial(print, flush=True)
        return _train(cfg, rundir, dinfo, resume, overwrite, list(callbacks), allow_external_model, log)
    finally:
        if rundir is not None:
            rundir.close()
        torch.use_deterministic_algorithms(was_deterministic)
        torch.set_num_threads(threads)


def _train(cfg, rundir: RunDir, dinfo, resume: bool, overwrite: bool, callbacks: list, allow_external: bool, log):
    callbacks, log = (callbacks, log) if dinfo.is_main else ([], lambda *a, **k: None)
    run = _Session(cfg, rundir, dinfo, allow_external, resume, overwrite)
    if resume and run.pos.epoch >= cfg.optim.epochs:  # nothing left to train: a readable summary stays as is
        try:
            summary = json.loads((rundir.path / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None  # written again below, from the checkpoint
        if isinstance(summary, dict) and summary.get("epochs") == run.pos.epoch:  # else one of fewer epochs
            log(f"{rundir.path} finished its {cfg.optim.epochs} epochs before; nothing to train (raise --epochs)")
            return summary
    run_log = _RunLog(run, log)
    for cb in callbacks:
        cb.start(run.task, run.raw)
    while run.pos.epoch < cfg.optim.epochs:
        record = run.train_one_epoch()
        if run.evaluation_due():
            with reporting(log, enabled=dinfo.is_main):  # progress of a long evaluation: bar and log lines
                record.update(run.evaluate())
        for cb in callbacks:
            record.update(cb.on_epoch_end(run.pos.epoch + 1, run.raw) or {})
        run.end_epoch(record)  # best by the task's monitor, checkpoints
        run_log.epoch(record)
    summary = run.summary()
    run_log.finish(summary)
    return summary


def _refuse_resume_change(last: Path, ck: dict, cfg: TrainConfig) -> None:
    """A resume goes on with the checkpoint's seed (the run's identity: its directory, its summary and every
    seed-paired comparison name it); one taken mid-epoch (``checkpoint_every``) resumes at its step of that
    epoch's batches, so also with its batch size and training subset: with others the step names other
    samples, and the rest of the epoch would repeat some and skip others."""
    then = ck.get("config") or {}
    old, new = (then.get("run") or {}).get("seed"), cfg.run.seed
    if old is not None and old != new:
        raise ConfigError(
            f"{last} was trained with seed {old}; a resume goes on with it, got seed {new} (drop --seed, or train "
            f"seed {new} as a run of its own)"
        )
    if not ck["step"]:
        return
    for section, key in (("optim", "batch_size"), ("data", "train_subset")):
        old, new = (then.get(section) or {}).get(key), getattr(getattr(cfg, section), key)
        if old != new:
            raise ConfigError(
                f"{last} was written mid-epoch (step {ck['step']} of epoch {ck['epoch'] + 1}) with {key} {old}; "
                f"resuming it with {key} {new} would repeat some samples of that epoch and skip others: resume with "
                f"{key} {old} (change it at an epoch boundary, or train afresh)"
            )


def _refuse_unfinished_end(last: Path, ck: dict, cfg: TrainConfig, metric: str) -> None:
    """``--epochs`` equal to the checkpoint's epoch ends the run there, which its summary can say only if that
    epoch was evaluated and the checkpoint is not already inside the next one."""
    epochs, history = cfg.optim.epochs, ck["history"]
    if ck["step"]:
        why = f"is at step {ck['step']} of epoch {epochs + 1}, past the end of {epochs} epochs"
    elif not history or metric not in history[-1]:
        why = f"holds epoch {epochs} unevaluated (eval_every {cfg.run.eval_every}), so no {metric} to end on"
    else:
        return
    raise ConfigError(f"{last} {why}: resume it with --epochs (optim.epochs) > {epochs} to go on")


class _Session:
    """One training session's pieces: the task, the model (and its DDP/compiled wrapper), the optimiser,
    AMP, and the :class:`Position`; it checkpoints itself."""

    def __init__(self, cfg: TrainConfig, rundir: RunDir, dinfo, allow_external: bool, resume: bool, overwrite: bool):
        self.cfg, self.rundir, self.dinfo, self.t_start = cfg, rundir, dinfo, time.time()
        source_commit()  # read now, from the code this process runs, not when the summary is written hours on
        device = self.device = dinfo.device
        stamp = rundir.checkpoint_stamp()  # the checkpoint read here is the one resumed once the lock is held
        # read onto the CPU: its RNG states must stay there, and load_state_dict copies the rest onto the device
        ck = read_checkpoint(rundir.last) if resume and stamp is not None else None
        if ck is not None and ck["epoch"] > cfg.optim.epochs:
            raise ConfigError(
                f"{rundir.path} ran {ck['epoch']} epochs; --epochs (optim.epochs) must be >= {ck['epoch']} to "
                f"resume it, got {cfg.optim.epochs}"
            )
        if ck is not None:
            _refuse_resume_change(rundir.last, ck, cfg)
        torch.manual_seed(cfg.run.seed)
        self.task = build_task(cfg, dinfo, ck["task_state"] if ck else None)
        if ck is not None and ck["epoch"] == cfg.optim.epochs:
            _refuse_unfinished_end(rundir.last, ck, cfg, self.task.monitor.metric)
        self.spec = self.task.model_spec()
        model = model_from_config(cfg, self.spec, allow_external, initial_weights=ck is None)  # resumed: ck's
        _refuse_untrainable(model, cfg, dinfo.world_size)
        self.params = sum(p.numel() for p in model.parameters())
        self.placement = placement(cfg.model, cfg.pool_skip, model)
        model.to(device)
        if cfg.run.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.run.sync_bn and dinfo.world_size > 1:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.raw = model  # what checkpoints hold
        if dinfo.world_size > 1:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )
        self.model = torch.compile(model) if cfg.run.compile else model
        # evaluation under torchrun runs on the bare model: a process whose share of the evaluation is empty
        # makes no forward pass, which DDP's first one after training (a buffer broadcast) would wait for
        if dinfo.world_size > 1:
            self.eval_model = torch.compile(self.raw) if cfg.run.compile else self.raw
        else:
            self.eval_model = self.model
        self.optimizer = make_optimizer(cfg.optim, self.raw)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.run.amp == "fp16")
        self.autocast = autocast_context(cfg.run.amp, device)
        self.pos = Position()
        self.config_pending = ck is not None  # a resumed run's overrides are persisted once it saved progress
        if ck is not None:
            self._restore(ck)
        rundir.open(resume, overwrite)  # every input checked: only now is the run directory made and locked
        if resume and rundir.writer and rundir.checkpoint_stamp() != stamp:
            raise RunDirError(f"{rundir.last} was written by another process while this one started; run it again")
        if ck is None:
            rundir.write_config(cfg.to_dict())
        self.pos.sums = self.pos.sums.to(device)
        self.steps = self.task.steps_per_epoch()

    def _restore(self, ck: dict) -> None:
        try:
            self.raw.load_state_dict(ck["model"])
            self.optimizer.load_state_dict(ck["optimizer"])
        except (RuntimeError, ValueError, KeyError) as e:
            reason = " ".join(str(e).split())[:300]
            raise CheckpointError(
                f"{self.rundir.last} does not fit the model and optimiser of this config (did an override change "
                f"the model?): {reason}"
            ) from None
        if ck["scaler"]:  # empty: saved without fp16 (a resume that turns fp16 on starts the scaler afresh)
            self.scaler.load_state_dict(ck["scaler"])
        # the partial sums of a mid-epoch checkpoint are all processes' together: rank 0 carries them on
        sums = ck["partial_sums"] if self.dinfo.is_main else torch.zeros_like(ck["partial_sums"])
        self.pos = Position(ck["epoch"], ck["step"], sums, ck["history"], ck["best"], ck["wall_seconds"])
        _set_rng_state(ck["rng"], self.device)

    # ------------------------------------------------------------------------------- an epoch

    def train_one_epoch(self) -> dict[str, Any]:
        """Train the rest of the current epoch; its record so far (epoch, train loss, lr, speed)."""
        epochs, epoch = self.cfg.optim.epochs, self.pos.epoch
        progress = Progress(self.steps, f"epoch {epoch + 1}/{epochs}", enabled=self.dinfo.is_main)
        t0 = time.perf_counter()
        args = (self.model, self.task, self.optimizer, self.scaler, self.cfg, self.pos, self.autocast)
        try:
            lr, seen = train_one_epoch(*args, self.dinfo.world_size, self._on_step, progress, self._stop)
        except ValueError as e:  # BatchNorm on one value per channel: a last batch of one sample on a process
            if "Expected more than 1 value per channel" not in str(e):
                raise
            raise ConfigError(
                f"model {self.cfg.model!r} has a BatchNorm that got one value per channel at step {self.pos.step + 1} "
                f"of epoch {epoch + 1} (a batch of one sample on a process: the last, incomplete one?); use a "
                f"batch_size (now {self.cfg.optim.batch_size}) that leaves every process at least 2 samples"
            ) from None
        finally:
            progress.close()
        seconds = time.perf_counter() - t0
        sums = self._check_finite(self.pos.step)
        return {
            "epoch": epoch + 1,
            "train_loss": sums[0].item() / sums[1].item(),
            "lr": lr,
            "epoch_seconds": seconds,
            "samples_per_s": seen / seconds if seconds else None,
        }

    def evaluation_due(self) -> bool:
        done = self.pos.epoch + 1
        return done % self.cfg.run.eval_every == 0 or done == self.cfg.optim.epochs

    def evaluate(self) -> dict[str, Any]:
        """The task's metrics, every scalar finite (per-class lists may hold NaN: a class that never occurred)."""
        t0 = time.perf_counter()
        if self.dinfo.world_size > 1:  # every process evaluates rank 0's buffers (BatchNorm statistics), as
            for buffer in self.raw.buffers():  # DDP would and as the checkpoint holds them
                torch.distributed.broadcast(buffer, 0)
        metrics = evaluate(self.eval_model, self.task, self.autocast)
        bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
        if bad:
            kept = self.rundir.last
            raise NonFiniteMetric(
                f"evaluation metric {', '.join(f'{k!r} is {v}' for k, v in bad.items())} after epoch "
                f"{self.pos.epoch + 1} on {self.cfg.data.dataset}: a metric with nothing to measure (an empty "
                "evaluation split, or one holding none of the classes) or a model whose outputs are not finite; "
                "stopped before writing anything of this epoch. "
                + (f"The last good checkpoint is {kept}" if kept.exists() else "No checkpoint was written")
            )
        return {**metrics, "eval_seconds": time.perf_counter() - t0}

    def end_epoch(self, record: dict[str, Any]) -> None:
        """Record the epoch, track the monitor's best, write last.pt (and best.pt, weights only, when it improved)."""
        monitor, pos = self.task.monitor, self.pos
        value = record.get(monitor.metric)
        improved = value is not None and value == value and (pos.best != pos.best or monitor.better(value, pos.best))
        if improved:
            pos.best = value
        pos.history.append(record)
        pos.epoch, pos.step = pos.epoch + 1, 0
        pos.sums = torch.zeros(2, dtype=torch.float64, device=self.device)
        if improved:  # before last.pt, which records the best as saved: a stop between the two redoes the epoch
            self.save("best")
        self.save("last")

    # ------------------------------------------------------------------------------- checkpoints

    def _on_step(self, step: int, settle: Callable[[], None]) -> None:
        """A mid-epoch ``last.pt`` every ``checkpoint_every`` steps, once this step's loss, gradient norm and
        the weights it left are known to be finite: the checkpoint an error names as the last good one is."""
        every = self.cfg.run.checkpoint_every
        if every and step % every == 0 and step < self.steps:
            settle()
            sums = self._check_finite(step)
            bad = [name for name, p in self.raw.named_parameters() if not torch.isfinite(p).all()]
            if bad:  # a step whose loss was finite but whose gradient was not (unmeasured without grad_clip)
                fact = (
                    f"the weights are not finite after the update ({len(bad)} parameter tensor(s), e.g. {bad[0]!r}: "
                    "a gradient was not, while the loss was)"
                )
                self._stop(step, "", math.nan, fact)
            self.save("last", partial_sums=sums)

    def _check_finite(self, step: int) -> torch.Tensor:
        """This epoch's (loss sum, samples) so far over all processes; stop if the loss was not finite (the
        steps before ``step`` were checked one by one, so it is this one's)."""
        total = self.dinfo.all_reduce_sum(self.pos.sums.clone())
        if not torch.isfinite(total[0]):
            self._stop(step, "loss", total[0].item())
        return total

    def _stop(self, step: int, what: str, value: float, fact: str | None = None) -> None:
        """Stop at the first step whose loss (or gradient norm) is ``value``, NaN or infinite (or of which
        ``fact`` says what was not finite): one line that says where and why, raised before anything of this
        epoch is written."""
        kept, fact = self.rundir.last, fact or f"the training {what} is {value}"
        raise NonFiniteLoss(
            f"{fact} at step {step} of epoch {self.pos.epoch + 1}; stopped before writing "
            f"anything of this epoch. The usual causes: a learning rate too high for this model (optim.lr "
            f"{self.cfg.optim.lr:g}: try a lower lr, warmup_epochs or grad_clip) or NaN/Inf values in the inputs. "
            + (f"The last good checkpoint is {kept}" if kept.exists() else "No checkpoint was written")
        )

    def save(self, name: str, partial_sums: torch.Tensor | None = None) -> None:
        """Write ``checkpoints/<name>.pt`` (main process only). ``last.pt`` holds everything a resume needs
        (``partial_sums``: mid-epoch, the epoch's loss sums of all processes together, which rank 0 resumes with);
        ``best.pt`` only the weights and what rebuilds and evaluates them (no optimiser state: a fraction
        of the size, and ``eval``, ``diagnose``, ``ensemble`` and ``report`` need nothing more)."""
        if not self.dinfo.is_main:
            return
        pos = self.pos
        state = {
            "model": self.raw.state_dict(),
            "epoch": pos.epoch,
            "config": self.cfg.to_dict(),
            "task_state": self.task.state(),
            "model_spec": dataclasses.asdict(self.spec),
        }
        if name == "best":
            state["metric"] = {self.task.monitor.metric: pos.best}
        else:
            state.update(
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict(),
                step=pos.step,
                partial_sums=(pos.sums if partial_sums is None else partial_sums).cpu(),
                history=pos.history,
                best=pos.best,
                wall_seconds=self.wall_seconds(),
                rng=_rng_state(self.device),
            )
        if self.config_pending:  # a resumed run's first progress: a summary of its earlier end is not its own now
            (self.rundir.path / "summary.json").unlink(missing_ok=True)  # (stopped before the new end: incomplete)
        save_checkpoint(self.rundir.checkpoints / f"{name}.pt", state)
        if self.config_pending:
            self.rundir.write_config(self.cfg.to_dict())
            self.config_pending = False

    def wall_seconds(self) -> float:
        return self.pos.seconds + time.time() - self.t_start

    def summary(self) -> dict[str, Any]:
        """The monitor's final and best values, everything the last evaluation measured, the environment."""
        cfg, monitor = self.cfg, self.task.monitor
        evaluated = [r for r in self.pos.history if monitor.metric in r]
        best_at = evaluated[monitor.best_index([r[monitor.metric] for r in evaluated])]
        skip = ("epoch", "lr", "epoch_seconds", "samples_per_s")
        return {
            "task": cfg.task,
            "model": cfg.model,
            "model_kwargs": cfg.model_kwargs,
            "placement": self.placement,
            "dataset": cfg.data.dataset,
            "seed": cfg.run.seed,
            "epochs": cfg.optim.epochs,
            "monitor": {"metric": monitor.metric, "mode": monitor.mode},
            "final": evaluated[-1][monitor.metric],
            "best": best_at[monitor.metric],
            "best_epoch": best_at["epoch"],
            "final_metrics": {k: v for k, v in evaluated[-1].items() if k not in skip},
            "params": self.params,
            "wall_seconds": self.wall_seconds(),
            "world_size": self.dinfo.world_size,
            **environment(self.device),
        }


class _RunLog:
    """The run's log: metrics.jsonl, TensorBoard and one line per epoch (main process only writes)."""

    def __init__(self, run: _Session, log: Callable[..., None]):
        self.rundir, self.log, self.epochs = run.rundir, log, run.cfg.optim.epochs
        if run.pos.history or (run.rundir.path / "metrics.jsonl").exists():
            run.rundir.write_metrics(run.pos.history)  # on resume: exactly the checkpointed epochs
        self.writer = None  # TensorBoard's, opened with the first record: a run stopped before has no tb/
        # On resume, TensorBoard drops what the stopped process wrote from the last checkpointed epoch on and gets
        # that epoch's record again: a process stopped between its checkpoint and its TensorBoard write (the epoch's
        # last two steps) had left the epoch out of tb/ for good.
        self.replay = run.pos.history[-1] if run.pos.history else None
        self.purge = self.replay["epoch"] if self.replay else run.pos.epoch + 1 if run.pos.step else None
        self.is_main = run.dinfo.is_main
        cfg, pos, steps = run.cfg, run.pos, run.steps
        if pos.epoch or pos.step:
            log(f"resuming {run.rundir.path} at epoch {pos.epoch + 1}, step {pos.step}")
        else:  # named only now that every input was checked and the directory exists
            log(f"run {run.rundir.path}")
        workers = f" x {run.dinfo.world_size} processes" if run.dinfo.world_size > 1 else ""
        log(
            f"{cfg.task}: {cfg.model} ({placement_name(cfg.model, cfg.pool_skip)}, {run.params:,} params) on "
            f"{cfg.data.dataset}: "
            f"{run.task.describe()}; {_count(self.epochs, 'epoch')} x {_count(steps, 'step')}, "
            f"batch {cfg.optim.batch_size}, {run.device}{workers}"
        )

    def epoch(self, record: dict[str, Any]) -> None:
        self.rundir.append_metrics(record)
        if self.writer is None and self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.rundir.path / "tb"), purge_step=self.purge)
            if self.replay is not None:
                _tensorboard(self.writer, self.replay, self.replay["epoch"])
        if self.writer is not None:
            _tensorboard(self.writer, record, record["epoch"])
            self.writer.flush()
        self.log(f"epoch {record['epoch']}/{self.epochs}  {_format(record)}")

    def finish(self, summary: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()
        self.rundir.write_summary(summary)
        metric = summary["monitor"]["metric"]
        self.log(f"done: {metric} final {summary['final']:.4g}, best {summary['best']:.4g} -> {self.rundir.path}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def restore(
    path: str | os.PathLike,
    which: str = "last",
    device: str = "cpu",
    overrides: dict | None = None,
    allow_external_model: bool = False,
) -> tuple[nn.Module, Task, dict]:
    """``(model, task, info)`` from a run directory or checkpoint file: the model with its weights (eval
    mode) and its task rebuilt from the checkpoint's config (updated by ``overrides``, e.g. another
    ``data_dir``) and stored task state, so the data is prepared exactly as in training.

    Data unlike the training data is refused, a :class:`~poolskip.tasks.StateMismatch` naming the checkpoint,
    what it stored and what was found: the task checks what its state recorded (e.g. channels, normalisation,
    classes), then the model's stored :class:`~poolskip.tasks.ModelSpec` (input channels, classes, spatial
    dims) is checked against the one the data asks for."""
    dev = distributed.resolve_device(device)
    model, info = load_checkpoint(path, which, dev, allow_external_model)
    cfg = make_config(info["config"], {"device": str(dev)}, overrides or {})
    try:
        task = build_task(cfg, dev, state=info["task_state"])
    except StateMismatch as e:
        raise StateMismatch(f"{info['path']}: {e}") from None
    stored, found = info["model_spec"], dataclasses.asdict(task.model_spec())
    keys = [k for k in ("in_channels", "num_classes", "spatial_dims") if stored.get(k) != found[k]]
    if keys:
        where = cfg.data.dataset + (f" at {cfg.data.data_dir}" if cfg.data.data_dir else "")
        raise StateMismatch(
            f"{info['path']}: its model was built for {', '.join(f'{k} {stored.get(k)}' for k in keys)}, but "
            f"{where} asks for {', '.join(f'{k} {found[k]}' for k in keys)}; point --data-dir/--dataset at data "
            "like the data it was trained on"
        )
    return model, task, info


def load_run_config(run_dir: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
    """The resolved config a run directory was trained with, updated by ``overrides``."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: --resume expects a run directory written by `poolskip train`")
    try:
        saved = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML ({' '.join(str(e).split())})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys")
    return make_config(saved, overrides or {})
