"""What a run costs before it runs: parameters and MACs, peak memory of a training step and of an
evaluation batch, and wall time (preprocessing, training steps, evaluations).

- Parameters and MACs: :func:`run_cost`, the one count both ``--dry-run`` and the finished table print
  (the network at the input the run's task feeds it, on the meta device).
- Peak memory (:func:`peak_memory`), on the meta device (no memory, no arithmetic): a training step holds
  the parameters, their gradients, the optimiser's state, the batch and what autograd saves for the
  backward pass (summed by a ``saved_tensors_hooks`` pack hook), plus the largest activation twice over
  for the backward pass's working space; an evaluation batch holds the parameters, the largest input +
  output of any module at the real evaluation size and the logits (2D: whole images of
  ``eval_batch_size``; 3D: ``min(eval_batch_size, 8)`` sliding windows plus the whole volume's
  accumulated logits and probabilities, as MONAI's ``sliding_window_inference`` keeps them).
- Wall time (:func:`estimate`): a few training steps and one evaluation forward pass timed here on
  synthetic batches (at a smaller input, scaled by MACs, when the real one would take long on this
  machine), times the steps and evaluations of the schedule, plus the task's data preparation (decoding
  and caching, then loading the cache) timed once per dataset where the data is on this machine.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..controls import build, cost
from .plan import Run

__all__ = ["DATASETS", "GiB", "DatasetInfo", "Estimate", "estimate", "peak_memory", "run_cost"]

GiB = 2**30


@dataclass(frozen=True)
class DatasetInfo:
    """Samples per split, classes, the training input and the evaluation input of one sample."""

    n_train: int
    n_eval: int
    classes: int
    train_shape: tuple[int, ...]
    eval_shape: tuple[int, ...]


#: The datasets the tables use. Segmentation: the training shape is replaced by the run's crop / patch;
#: the evaluation shape is a whole image (VOC's largest side is 500; Cityscapes' 2048x1024; CamVid's
#: 480x360) or a whole volume. CT volumes (BTCV, AMOS): 512x512 slices, up to 200 slices after resampling
#: assumed (an upper bound we choose, not a count). 3D evaluation counts are one fold's share of the
#: cross-validated set (BTCV 18, AMOS 240, Hippocampus 260 volumes, 5 folds).
DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(50000, 10000, 10, (3, 32, 32), (3, 32, 32)),
    "cifar100": DatasetInfo(50000, 10000, 100, (3, 32, 32), (3, 32, 32)),
    "digits": DatasetInfo(1347, 450, 10, (1, 8, 8), (1, 8, 8)),
    "voc": DatasetInfo(10582, 1449, 21, (3, 513, 513), (3, 500, 500)),
    "cityscapes": DatasetInfo(2975, 500, 19, (3, 768, 768), (3, 1024, 2048)),
    "camvid": DatasetInfo(367, 233, 11, (3, 360, 480), (3, 360, 480)),
    "btcv": DatasetInfo(14, 4, 14, (1, 128, 128, 128), (1, 512, 512, 200)),
    "amos": DatasetInfo(192, 48, 16, (1, 128, 128, 128), (1, 512, 512, 200)),
    "decathlon": DatasetInfo(208, 52, 3, (1, 40, 56, 40), (1, 40, 56, 40)),  # nnU-Net's planned Hippocampus patch
}


def _info(run_: Run) -> DatasetInfo:
    """The run's dataset, its shapes replaced by the run's own crop / patch."""
    cfg = run_.config
    info = DATASETS.get(run_.dataset)
    if info is None:
        n, shape = 10, (3, 32, 32)
        data_dir = cfg.get("data", {}).get("data_dir")
        if run_.dataset == "imagefolder" and data_dir:
            root = Path(data_dir)
            train = root / "train"
            n = sum(1 for p in train.iterdir() if p.is_dir()) if train.is_dir() else 10
            sizes = [sum(len(files) for _, _, files in os.walk(root / s)) for s in ("train", "test")]
            return DatasetInfo(sizes[0], sizes[1], n, shape, shape)
        return DatasetInfo(50000, 10000, n, shape, shape)
    train_shape, n_train, n_eval = info.train_shape, info.n_train, info.n_eval
    task = cfg.get("task", "classification")
    options = cfg.get(task) or {}
    if task == "segmentation":
        train_shape = (3, *options.get("crop_size", train_shape[1:]))
    if task == "segmentation3d":
        patch = options.get("patch_size") or [min(s, options.get("patch_max", 128)) for s in train_shape[1:]]
        m = int(options.get("patch_multiple") or 1)  # V-Net: rounded up to multiples of 16
        train_shape = (train_shape[0], *(-(-s // m) * m for s in patch))
        if options.get("eval_subset"):
            n_eval = min(n_eval, options["eval_subset"])
    if cfg.get("data", {}).get("train_subset"):
        n_train = min(n_train, cfg["data"]["train_subset"])
    eval_shape = info.eval_shape if task != "classification" else train_shape
    return DatasetInfo(n_train, n_eval, info.classes, train_shape, eval_shape)


def _net(run_: Run, info: DatasetInfo, device: str):
    kwargs, shape = run_.config.get("model_kwargs") or {}, info.train_shape
    return build(run_.model, run_.config.get("pool_skip"), kwargs, info.classes, device=device, input_shape=shape)


def run_cost(run_: Run) -> tuple[int, int]:
    """``(parameters, multiply-adds per training input)`` of the run's network, the count every table and
    dry run prints."""
    info = _info(run_)
    c = cost(run_.model, run_.config.get("pool_skip"), run_.config.get("model_kwargs"), info.classes, info.train_shape)
    return c.params, c.macs


# ------------------------------------------------------------------------------------------ memory


def _nbytes(out: Any) -> int:
    import torch

    if isinstance(out, torch.Tensor):
        return out.numel() * out.element_size()
    if isinstance(out, (list, tuple)):
        return sum(_nbytes(o) for o in out)
    if isinstance(out, Mapping):
        return sum(_nbytes(o) for o in out.values())
    return 0


def _largest_module_io(net, x) -> tuple[Any, int]:
    """The network's output on ``x`` and the largest input + output bytes of any leaf module."""
    largest = [0]

    def hook(module, inputs, output):
        largest[0] = max(largest[0], _nbytes(inputs) + _nbytes(output))

    handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
    try:
        out = net(x)
    finally:
        for h in handles:
            h.remove()
    return out, largest[0]


def _train_bytes(net, batch: int, shape: tuple[int, ...], optimizer: str) -> tuple[int, int, int]:
    """Peak bytes of a training step, and the largest module input + output and the output of its forward
    pass (an evaluation at the same input scales them with its batch)."""
    import torch

    params = sum(p.numel() * p.element_size() for p in net.parameters())
    trainable = sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad)
    state = trainable * (2 if optimizer == "adamw" else 1)  # AdamW: two moments; SGD: the momentum buffer
    saved: dict[int, int] = {}
    keep = []  # saved tensors stay referenced, so an id is never reused while counting

    def pack(t):
        keep.append(t)
        saved.setdefault(id(t), t.numel() * t.element_size())
        return t

    x = torch.empty(batch, *shape, device="meta")
    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, largest = _largest_module_io(net, x)
    total = params + trainable + state + sum(saved.values()) + _nbytes(x) + 2 * _nbytes(out) + 2 * largest
    return total, largest, _nbytes(out)


def _eval_bytes(net, run_: Run, info: DatasetInfo, train: tuple[int, int, int]) -> int:
    import torch

    cfg = run_.config
    eval_batch = int(cfg["run"]["eval_batch_size"])
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    task = cfg.get("task", "classification")
    if task == "classification":  # the training input: the training pass's sizes, scaled to the batch
        scale = min(eval_batch, info.n_eval) / int(cfg["optim"]["batch_size"])
        return params + int(scale * (train[1] + 2 * train[2]))
    net.eval()
    with torch.no_grad():
        if task == "segmentation3d":  # min(eval batch, 8) windows, the whole volume's logits, count, softmax
            windows = max(1, min(eval_batch, 8))
            _, largest = _largest_module_io(net, torch.empty(windows, *info.train_shape, device="meta"))
            voxels = math.prod(info.eval_shape[1:])
            return params + largest + (3 * info.classes + 2) * voxels * 4
        batch = min(eval_batch, info.n_eval)
        out, largest = _largest_module_io(net, torch.empty(batch, *info.eval_shape, device="meta"))
        return params + largest + 2 * _nbytes(out)  # the logits and their float copy for the metric


def peak_memory(run_: Run) -> tuple[int, int]:
    """Estimated peak bytes of ``(a training step, an evaluation batch)`` of the run on one device."""
    info = _info(run_)
    net = _net(run_, info, "meta")
    cfg = run_.config
    train = _train_bytes(net, int(cfg["optim"]["batch_size"]), info.train_shape, cfg["optim"]["optimizer"])
    return train[0], _eval_bytes(net, run_, info, train)


# ------------------------------------------------------------------------------------------ time

#: Multiply-adds one timed forward pass may take here; larger inputs are timed smaller and scaled by MACs.
_TIMING_MACS = 2e10


def _loss(out):
    if isinstance(out, (list, tuple)):
        return sum(o.float().mean() for o in out)
    return out.float().mean()


def _timing_shape(macs_per_sample: int, batch: int, shape: tuple[int, ...]) -> tuple[tuple[int, ...], float]:
    """The input timed here and the factor its time is multiplied by (spatial sizes halved until the pass
    is cheap enough; MACs scale with the number of pixels/voxels for these fully convolutional networks)."""
    shape, factor = tuple(shape), 1.0
    while macs_per_sample * batch / factor > _TIMING_MACS and min(shape[1:]) >= 32:
        smaller = (shape[0], *(s // 2 for s in shape[1:]))
        factor *= math.prod(shape[1:]) / math.prod(smaller[1:])
        shape = smaller
    return shape, factor


def _time(fn, steps: int, budget: float = 1.0, most: int = 20) -> float:
    """The fastest of at least ``steps`` calls (more, up to ``most``, while they take under ``budget``
    seconds in all): on a shared machine the slower calls measure the neighbours."""
    fn()  # warm-up
    times: list[float] = []
    while len(times) < max(1, steps) or (sum(times) < budget and len(times) < most):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _time_train_step(run_: Run, info: DatasetInfo, macs: int, steps: int) -> float:
    """Seconds of one training step at the run's batch size, measured on a few small synthetic batches."""
    import torch

    net = _net(run_, info, "cpu").train()
    full = int(run_.config["optim"]["batch_size"])
    batch = min(full, 16 if len(info.train_shape) <= 3 else 2)
    shape, factor = _timing_shape(macs, batch, info.train_shape)
    x = torch.randn(batch, *shape)
    y = torch.randint(0, info.classes, (batch,))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x)
        loss = (
            torch.nn.functional.cross_entropy(out, y)
            if isinstance(out, torch.Tensor) and out.dim() == 2
            else _loss(out)
        )
        loss.backward()
        opt.step()

    return _time(step, steps) * factor / batch * full


def _windows(volume: Sequence[int], patch: Sequence[int], overlap: float) -> int:
    """Sliding windows per volume, as MONAI places them (step = patch * (1 - overlap))."""
    n = 1
    for v, p in zip(volume, patch):
        step = max(1, int(p * (1 - overlap)))
        n *= 1 if v <= p else math.ceil((v - p) / step) + 1
    return n


def _time_eval(run_: Run, info: DatasetInfo, macs: int, steps: int) -> float:
    """Seconds of one evaluation of the run (its evaluation split at full size), from one timed forward pass."""
    import torch

    net = _net(run_, info, "cpu").eval()
    cfg = run_.config
    task = cfg.get("task", "classification")
    if task == "segmentation3d":
        windows = _windows(info.eval_shape[1:], info.train_shape[1:], cfg[task].get("sw_overlap", 0.5))
        batch = max(1, min(int(cfg["run"]["eval_batch_size"]), 8, windows))
        shape, factor = _timing_shape(macs, batch, info.train_shape)
        total = windows * info.n_eval
    else:
        batch = max(1, min(int(cfg["run"]["eval_batch_size"]), info.n_eval, 64))
        pixels = math.prod(info.eval_shape[1:]) / math.prod(info.train_shape[1:])
        shape, factor = _timing_shape(int(macs * pixels), batch, info.eval_shape)
        total = info.n_eval
    x = torch.randn(batch, *shape)
    with torch.no_grad():
        seconds = _time(lambda: net(x), steps)
    return seconds * factor / batch * total


def _time_data(run_: Run, _cache: dict) -> tuple[float | None, float | None, str]:
    """(first preparation, each later load) of the run's data in seconds, timed by building the task twice
    (decoding and caching, then reading the cache); None where the data is not on this machine."""
    import torch

    from ...engine.config import make_config
    from ...engine.trainer import build_task

    cfg = run_.config
    key = json.dumps([cfg.get("task"), cfg.get("data"), cfg.get(cfg.get("task"))], sort_keys=True, default=str)
    if key not in _cache:
        c = make_config(cfg)
        times, note = [], ""
        try:
            for _ in range(2):
                t = time.perf_counter()
                build_task(c, torch.device("cpu"))  # the engine's own way, as the run will
                times.append(time.perf_counter() - t)
        except Exception as e:  # no data here (or an unreadable copy): no preparation time, said why
            note = f"data not timed: {str(e).splitlines()[0][:80]}"
        _cache[key] = (*times, note) if times else (None, None, note)
    return _cache[key]


@dataclass
class Estimate:
    """A run's cost: parameters, MACs, memory, measured step time and the estimated wall time."""

    params: int | None = None
    macs: int | None = None
    train_bytes: int | None = None  # peak memory of a training step
    eval_bytes: int | None = None  # peak memory of an evaluation batch
    step_seconds: float | None = None  # one optimiser step of the run's batch, measured here
    eval_seconds: float | None = None  # one whole evaluation
    data_seconds: float | None = None  # loading the prepared data, once per run
    prepare_seconds: float | None = None  # decoding and caching the data, once per dataset
    wall_seconds: float | None = None  # the run's steps, evaluations and data loading
    note: str = ""


def _steps_and_evals(run_: Run) -> tuple[int, int]:
    cfg, info = run_.config, _info(run_)
    epochs, batch = int(cfg["optim"]["epochs"]), int(cfg["optim"]["batch_size"])
    task = cfg.get("task", "classification")
    if task == "segmentation3d":
        per_epoch = int(cfg[task]["iterations"])
    elif task == "segmentation":
        per_epoch = max(1, info.n_train // batch)  # the last incomplete batch is dropped
    else:
        per_epoch = math.ceil(info.n_train / batch)
    evals = math.ceil(epochs / int(cfg["run"]["eval_every"]))  # every N epochs and after the last
    return per_epoch * epochs, evals


def estimate(run_: Run, time_steps: int = 2, _cache: dict | None = None) -> Estimate:
    """Params, MACs and peak memory (meta device), measured step and evaluation times and the estimated wall
    time of ``run_``; ``time_steps=0`` times nothing."""
    cache = _cache if _cache is not None else {}
    if run_.note:
        return Estimate(note=run_.note)
    cfg = run_.config
    key = json.dumps(
        [run_.model, cfg.get("model_kwargs"), cfg.get("pool_skip"), run_.dataset, cfg.get("optim"), cfg.get("run"),
         cfg.get(cfg.get("task"))],
        sort_keys=True,
        default=str,
    )  # fmt: skip
    if key not in cache:
        e = Estimate()
        try:
            e.params, e.macs = run_cost(run_)
            e.train_bytes, e.eval_bytes = peak_memory(run_)
        except Exception as err:  # a model that cannot be counted at this input: say so
            e.note = f"cost not counted: {err}"
        if time_steps > 0 and e.macs is not None:
            info = _info(run_)
            try:
                e.step_seconds = _time_train_step(run_, info, e.macs, time_steps)
                e.eval_seconds = _time_eval(run_, info, e.macs, time_steps)
            except Exception as err:
                e.note = (e.note + "; " if e.note else "") + f"not timed: {err}"
        cache[key] = e
    e = cache[key]
    est = Estimate(**vars(e))
    if time_steps > 0 and est.step_seconds is not None:
        first, later, note = _time_data(run_, cache.setdefault("data", {}))
        est.note = "; ".join(n for n in (est.note, note) if n)
        est.prepare_seconds, est.data_seconds = first, later
        steps, evals = _steps_and_evals(run_)
        est.wall_seconds = est.step_seconds * steps + (est.eval_seconds or 0.0) * evals + (later or 0.0)
    return est


# ------------------------------------------------------------------------------------------ the dry run


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _gib(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / GiB:.2f} GiB" if n >= GiB / 10 else f"{n / 2**20:.1f} MiB"


def dry_run_report(runs: Sequence[Run], root: Path, time_steps: int) -> str:
    """The plan as text: every run with its status, params, MACs, peak memory of a training step and of an
    evaluation batch, step and evaluation times, and its estimated wall time; then the totals."""
    import platform

    from ..results import run_status

    cache: dict = {}
    head = (
        f"{'run':60s} {'status':9s} {'params':>9s} {'MACs':>10s} {'train mem':>10s} {'eval mem':>10s} "
        f"{'step':>8s} {'eval':>7s} {'est. wall':>9s}  note"
    )
    lines = [head]
    total, prepared = 0.0, {}
    unavailable = 0
    peak = (0, None), (0, None)
    for r in runs:
        e = estimate(r, time_steps, cache)
        status = "n/a" if r.note else run_status(root / "runs" / r.name)
        unavailable += bool(r.note)
        if e.wall_seconds and status != "finished":
            total += e.wall_seconds
            data = json.dumps(r.config.get("data"), sort_keys=True, default=str)
            if e.prepare_seconds is not None and data not in prepared:
                prepared[data] = max(0.0, e.prepare_seconds - (e.data_seconds or 0.0))
        if e.train_bytes is not None and e.train_bytes > peak[0][0]:
            peak = (e.train_bytes, r.name), peak[1]
        if e.eval_bytes is not None and e.eval_bytes > peak[1][0]:
            peak = peak[0], (e.eval_bytes, r.name)
        lines.append(
            f"{r.name:60s} {status:9s} "
            f"{(f'{e.params / 1e6:.2f}M' if e.params is not None else '—'):>9s} "
            f"{(f'{e.macs / 1e6:.1f}M' if e.macs is not None else '—'):>10s} "
            f"{_gib(e.train_bytes).replace(' ', ''):>10s} {_gib(e.eval_bytes).replace(' ', ''):>10s} "
            f"{(f'{e.step_seconds:.3f}s' if e.step_seconds is not None else '—'):>8s} "
            f"{_human(e.eval_seconds):>7s} {_human(e.wall_seconds):>9s}  {e.note}"
        )
    total += sum(prepared.values())
    lines.append(
        f"{len(runs)} runs; {unavailable} not runnable here yet; peak memory (estimated, one device): "
        f"training step {_gib(peak[0][0])} ({peak[0][1]}), evaluation batch {_gib(peak[1][0])} ({peak[1][1]})"
    )
    if time_steps > 0:
        lines.append(
            f"estimated {_human(total)} left on this machine ({platform.machine()}, {os.cpu_count()} CPUs): "
            f"training steps and evaluations timed on synthetic batches, data preparation timed on the data "
            f"({_human(sum(prepared.values()))} of it), one process at a time"
        )
    return "\n".join(lines)
