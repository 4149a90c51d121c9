"""What a run costs before it runs: parameters and MACs, peak memory of a training step and of an
evaluation batch, and wall time (preprocessing, training steps, evaluations).

- The data: :func:`geometry`, the run's dataset sizes, input shapes, steps per epoch and way of evaluating
  as its task tells them from the config alone (:class:`~poolskip.tasks.NominalGeometry`).
- Parameters and MACs: :func:`run_cost`, the one count both ``--dry-run`` and the finished table print
  (the network at the input the run's task feeds it, on the meta device).
- Peak memory (:func:`peak_memory`), on the meta device (no memory, no arithmetic): a training step holds
  the parameters, their gradients, the optimiser's state, the batch and what autograd saves for the
  backward pass (summed by a ``saved_tensors_hooks`` pack hook), plus the largest activation twice over
  for the backward pass's working space; an evaluation batch holds the parameters, the largest input +
  output of any module at the real evaluation size and the logits (whole inputs: a batch of them; sliding
  windows: a batch of windows plus the whole volume's accumulated logits and probabilities, as MONAI's
  ``sliding_window_inference`` keeps them); where the evaluation sees whole inputs of the training shape, the
  training pass's count scaled to the evaluation batch (the same bytes, one meta pass fewer).
- Wall time (:func:`estimate`): training steps and evaluation forward passes timed here on synthetic
  batches in the run's batch size, input size, memory format (``channels_last``) and torch threads (where one
  call would take long on this machine, first at a smaller batch, then a smaller input, scaled by MACs, and
  again at the real size where that predicts at most :data:`_REAL_SECONDS`), times the steps and evaluations of
  the schedule; plus building the network and writing the checkpoints (timed once), and, where the data is on
  this machine, the task's data preparation (decoding and caching, then loading the cache) timed once per
  dataset and the preparing of its training batches (reading, cropping, augmenting), which every step waits
  for. In the dry run, a run whose row already has finished runs on disk also shows their median measured
  wall time, beside its estimate.
- Table 3's ensembles (:func:`ensemble_estimate`): scoring a cell's folds' ensemble on the test set, its memory
  and time sized on the test volumes.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..controls import build, cost
from .plan import Run

if TYPE_CHECKING:
    from ...tasks import NominalGeometry

__all__ = ["GiB", "STAND_IN", "Estimate", "ensemble_estimate", "estimate", "geometry", "peak_memory", "run_cost"]

GiB = 2**30

#: A dataset whose task cannot tell its geometry without the data (a folder of the user's own images): 50,000
#: training and 10,000 evaluation 3x32x32 images of 10 classes, every batch a step, evaluated whole.
STAND_IN = (50000, 10000, 10, (3, 32, 32))


def geometry(config: Mapping[str, Any]) -> NominalGeometry:
    """The data of a run's ``config`` (its resolved mapping) as its task tells it without reading the data
    (:class:`~poolskip.tasks.HasNominalGeometry`), or :data:`STAND_IN` where the task cannot tell."""
    from ...engine.config import make_config
    from ...engine.trainer import task_context
    from ...tasks import HasNominalGeometry, NominalGeometry, get_task

    cfg = make_config(dict(config))
    cls, ctx = get_task(cfg.task), task_context(cfg)
    g = cls.nominal_geometry(ctx) if isinstance(cls, HasNominalGeometry) else None
    if g is None:
        n_train, n_eval, classes, shape = STAND_IN
        steps = math.ceil(n_train / ctx.batch_size)
        g = NominalGeometry(classes, n_train, n_eval, shape, shape, steps, min(ctx.eval_batch_size, n_eval))
    return g


def scoring_seconds(config: Mapping[str, Any]) -> float | None:
    """Seconds to score one evaluation input of a run's ``config`` beyond its forward pass, measured by its task
    (:class:`~poolskip.tasks.HasScoringCost`: a volume's surface distances); 0 for a task whose metric is the
    forward pass's class decision alone, None where the task cannot measure it (no data folder)."""
    from ...engine.config import make_config
    from ...engine.trainer import task_context
    from ...tasks import HasScoringCost, get_task

    cfg = make_config(dict(config))
    cls = get_task(cfg.task)
    return cls.scoring_seconds(task_context(cfg)) if isinstance(cls, HasScoringCost) else 0.0


def _net(run_: Run, g: NominalGeometry, device: str):
    kwargs = run_.config.get("model_kwargs") or {}
    return build(run_.model, run_.config.get("pool_skip"), kwargs, g.classes, device=device, input_shape=g.train_shape)


def run_cost(run_: Run) -> tuple[int, int]:
    """``(parameters, multiply-adds per training input)`` of the run's network, the count every table and
    dry run prints."""
    g = geometry(run_.config)
    c = cost(run_.model, run_.config.get("pool_skip"), run_.config.get("model_kwargs"), g.classes, g.train_shape)
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


def _eval_bytes(net, g: NominalGeometry, train_pass: tuple[int, int, int] | None = None) -> int:
    """Peak bytes of an evaluation forward pass: the parameters, the largest module input + output of a batch,
    and the logits (whole inputs: the batch's and their float copy for the metric; sliding windows: the whole
    input's accumulated logits, count and softmax, as MONAI's ``sliding_window_inference`` keeps them).

    ``train_pass``: ``(batch, largest module input + output, output bytes)`` of a training pass of ``net``
    (:func:`_train_bytes`). Where the evaluation sees whole inputs of the training shape, those scaled to the
    evaluation batch (every tensor of these networks grows with the batch) are what an evaluation pass counts,
    without a second pass on the meta device."""
    import torch

    params = sum(p.numel() * p.element_size() for p in net.parameters())
    if g.eval_batch < 1:  # nothing to evaluate
        return params
    if train_pass is not None and g.eval_window is None and tuple(g.eval_shape) == tuple(g.train_shape):
        batch, largest, out = train_pass
        return params + (largest + 2 * out) * g.eval_batch // batch
    net.eval()
    with torch.no_grad():
        if g.eval_window is not None:
            _, largest = _largest_module_io(net, torch.empty(g.eval_batch, *g.eval_window, device="meta"))
            return params + largest + (3 * g.classes + 2) * math.prod(g.eval_shape[1:]) * 4
        out, largest = _largest_module_io(net, torch.empty(g.eval_batch, *g.eval_shape, device="meta"))
        return params + largest + 2 * _nbytes(out)


def peak_memory(run_: Run) -> tuple[int, int]:
    """Estimated peak bytes of ``(a training step, an evaluation batch)`` of the run on one device."""
    g = geometry(run_.config)
    net = _net(run_, g, "meta")
    batch = _step_batch(run_, g)
    train, largest, out = _train_bytes(net, batch, g.train_shape, run_.config["optim"]["optimizer"])
    return train, _eval_bytes(net, g, (batch, largest, out))


def _step_batch(run_: Run, g: NominalGeometry) -> int:
    """Inputs of one training step: the run's batch size, or its whole training set where an epoch is one step on
    fewer (a tiny run of 64 images at batch size 128 steps once, on 64; a patch-sampling task's steps draw their
    batch from any number of volumes and keep it)."""
    batch = int(run_.config["optim"]["batch_size"])
    return g.n_train if g.steps_per_epoch == 1 and 0 < g.n_train < batch else batch


# ------------------------------------------------------------------------------------------ time

#: Multiply-adds one timed forward pass may take here at first; larger inputs are timed smaller and scaled by MACs.
_TIMING_MACS = 1e10
#: Seconds one call at the run's real batch and input may take (as the smaller input's timing predicts it): up
#: to this, the real size is timed as well and its time is the estimate. Per-sample time depends on the
#: batch and the input size, so a scaled time is a last resort (measured on 2 CPU threads: DeepLabv3+ MobileNetV2
#: evaluating 360x480 CamVid frames, 0.19 s an image one at a time, 0.28 s in batches of 8, 0.22 s scaled up
#: from 180x240; a V-Net training step on two 40x56x40 Hippocampus patches 4.7 s, 8.5 s scaled up from 20x28x20).
_REAL_SECONDS = 20.0


def _loss(out):
    if isinstance(out, (list, tuple)):
        return sum(o.float().mean() for o in out)
    return out.float().mean()


def _timing_input(macs: int, batch: int, shape: tuple[int, ...], least: int) -> tuple[int, tuple[int, ...], float]:
    """``(batch, shape, factor)``: the input timed here first and the factor its time is multiplied by to give
    a pass of ``batch`` inputs of ``shape`` (``macs`` each). The run's own batch and input where one pass costs
    under :data:`_TIMING_MACS`; otherwise the batch halved (down to ``least``), then the spatial sizes halved
    (MACs scale with the number of pixels/voxels for these fully convolutional networks)."""
    shape, timed, pixels = tuple(shape), batch, 1.0
    while macs * timed > _TIMING_MACS and timed > least:
        timed = max(least, timed // 2)
    while macs * timed / pixels > _TIMING_MACS and min(shape[1:]) >= 32:
        smaller = (shape[0], *(s // 2 for s in shape[1:]))
        pixels *= math.prod(shape[1:]) / math.prod(smaller[1:])
        shape = smaller
    return timed, shape, batch / timed * pixels


def _time(fn, steps: int, budget: float = 4.0, most: int = 15, warmup: int = 2) -> float:
    """The median of at least ``steps`` calls (more, up to ``most``, while they take under ``budget`` seconds
    in all), after ``warmup`` warm-up calls. A run's steps average what the median sees: the fastest call is
    one a whole run rarely repeats (measured, ResNet18 width 8 on one CPU thread: the fastest of 15 steps
    0.14 s, their median 0.18 s, a 4-epoch run 0.18 s a step), and the first calls pay for allocation."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    while len(times) < max(1, steps) or (sum(times) < budget and len(times) < most):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _time_pass(make, macs: int, batch: int, shape: tuple[int, ...], least: int, steps: int) -> float:
    """Seconds of one pass of ``batch`` inputs of ``shape`` (``macs`` each), where ``make(batch, shape)`` returns
    the pass to call: timed at that size where it is cheap enough, else first at a smaller one
    (:func:`_timing_input`) and then at the real size too if that predicts at most :data:`_REAL_SECONDS` a
    call. A smaller input the network cannot take (a size its poolings do not divide, e.g. nnU-Net's 40x56x40
    patch halved) is timed at the real input with the smaller batch."""
    timed, small, factor = _timing_input(macs, batch, shape, least)
    if factor == 1.0:
        return _time(make(batch, tuple(shape)), steps)
    try:
        seconds = _time(make(timed, small), steps) * factor
    except RuntimeError:
        if small == tuple(shape):
            raise
        seconds = _time(make(timed, tuple(shape)), steps) * batch / timed
        if timed == batch:
            return seconds
    if seconds > _REAL_SECONDS:
        return seconds
    return _time(make(batch, tuple(shape)), steps, warmup=1)


#: Bytes of the buffer :func:`_as_the_run` allocates and frees: glibc's largest dynamic mmap threshold (32 MiB on
#: 64-bit) less a margin.
_FREED_BUFFER = 30 * 2**20


@contextmanager
def _as_the_run(run_: Run):
    """Time as the run will compute: with its ``threads`` torch threads (where it sets them), in a process that
    has freed a large buffer. glibc's malloc serves a block above its mmap threshold (128 KiB at first) with
    fresh pages from the kernel, and raises the threshold to the size of each such block freed (up to 32 MiB on
    64-bit); a run's process frees large buffers reading its data before its first step, so its activations
    come from the heap, while a dry run's process had freed none and every step's activations were fresh pages,
    page faults included. Measured (plain MobileNet width 8, one CPU thread, its training step timed three times
    in each of four fresh processes): 0.12-0.17 s a step, the first timing 1.10-1.33x the second, against
    0.104-0.118 s in four processes that had freed one 30 MiB buffer, the first within 6 % of the next two
    (results/estimate-check/fresh.txt); which is why the dry runs had overestimated the first rows they timed,
    the small plain networks', by 16-44 % (plain MobileNet width 8: +40 % before, -5 % after)."""
    import torch

    torch.empty(_FREED_BUFFER, dtype=torch.uint8)  # allocated and freed at once: the threshold a run's process has
    before, threads = torch.get_num_threads(), run_.config.get("run", {}).get("threads")
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _layout(run_: Run, net, x):
    """``net`` and ``x`` in the run's memory format (``channels_last`` for 2D inputs where the run sets it)."""
    import torch

    if run_.config.get("run", {}).get("channels_last") and x.dim() == 4:
        return net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    return net, x


def _time_train_step(run_: Run, g: NominalGeometry, macs: int, steps: int, net=None) -> float:
    """Seconds of one training step of the run's inputs (:func:`_step_batch`), measured on synthetic batches (the
    run's own batch, memory format and threads where that is cheap enough; see :func:`_time_pass`) with ``net``
    (the run's network, built here where not given; its weights are trained by the timed steps)."""
    import torch

    full = _step_batch(run_, g)
    net = (net if net is not None else _net(run_, g, "cpu")).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

    def make(batch: int, shape: tuple[int, ...]):
        model, x = _layout(run_, net, torch.randn(batch, *shape))
        y = torch.randint(0, g.classes, (batch,))

        def step():
            opt.zero_grad(set_to_none=True)
            out = model(x)
            loss = (
                torch.nn.functional.cross_entropy(out, y)
                if isinstance(out, torch.Tensor) and out.dim() == 2
                else _loss(out)
            )
            loss.backward()
            opt.step()

        return step

    with _as_the_run(run_):
        return _time_pass(make, macs, full, g.train_shape, 16 if len(g.train_shape) <= 3 else 2, steps)


def _time_eval(run_: Run, g: NominalGeometry, macs: int, steps: int, net=None) -> float:
    """Seconds of one evaluation of the run (its evaluation split at full size), from timed forward passes of
    whole inputs or of sliding windows (``macs``: per training input, scaled to the pass's input) with ``net``
    (built here where not given), each with the class decision every task's metric makes (the argmax over
    classes) on the logits in float32."""
    import torch

    unit = g.eval_window or g.eval_shape
    full = max(1, min(g.eval_batch, math.ceil(g.eval_windows)) if g.eval_window else g.eval_batch)  # one pass's inputs
    pixels = math.prod(unit[1:]) / math.prod(g.train_shape[1:])
    net = (net if net is not None else _net(run_, g, "cpu")).eval()

    def make(batch: int, shape: tuple[int, ...]):
        model, x = _layout(run_, net, torch.randn(batch, *shape))

        def forward():
            out = model(x)
            if isinstance(out, torch.Tensor):
                out.float().argmax(1)

        return forward

    with torch.no_grad(), _as_the_run(run_):
        seconds = _time_pass(make, int(macs * pixels), full, unit, 1, steps)
    return seconds / full * g.n_eval * g.eval_windows


def _time_overhead(run_: Run, g: NominalGeometry, net, built: float) -> float:
    """Seconds of what a run does besides its steps and evaluations: building the network (``built`` seconds,
    timed by the caller, which built ``net`` as the run builds it) and the engine's own atomic checkpoint writes
    of ``net``, timed once here, ``last.pt`` (weights and the optimiser's state) every epoch and every
    ``run.checkpoint_every`` steps, ``best.pt`` (weights) every epoch (measured, MONAI's V-Net on Hippocampus:
    about 3 s to build the first time in a process, its import included, and 1.9 s of checkpoints an epoch, a
    third of its 14-second two-step tiny run)."""
    import tempfile

    from ...engine.checkpoint import save_checkpoint

    weights = net.state_dict()
    moments = 2 if run_.config["optim"]["optimizer"] == "adamw" else 1  # AdamW: two moments; SGD: the momentum
    state = [p.detach().clone() for p in net.parameters() if p.requires_grad for _ in range(moments)]
    with tempfile.TemporaryDirectory(prefix="poolskip-estimate-") as d:
        t = time.perf_counter()
        save_checkpoint(Path(d) / "last.pt", {"model": weights, "optimizer": state})
        last = time.perf_counter() - t
        save_checkpoint(Path(d) / "best.pt", {"model": weights})
        best = time.perf_counter() - last - t
    every, epochs = int(run_.config["run"].get("checkpoint_every") or 0), int(run_.config["optim"]["epochs"])
    lasts = 1 + ((g.steps_per_epoch - 1) // every if every else 0)  # at the end of each epoch, and every N steps
    return built + (last * lasts + best) * epochs


def _time_batches(batches, most: int = 10, budget: float = 2.0) -> float | None:
    """The median seconds of drawing one of the first batches of ``batches`` (up to ``most``, while they take
    under ``budget`` seconds), the first left out where there are more (it pays for starting the epoch)."""
    times: list[float] = []
    batches = iter(batches)
    while len(times) < most and sum(times) < budget:
        t = time.perf_counter()
        try:
            next(batches)
        except StopIteration:
            break
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:] or times) if times else None


def _time_data(run_: Run, _cache: dict) -> tuple[float | None, float | None, float | None, str]:
    """(first preparation, each later load, one training batch) of the run's data in seconds, timed by building
    the task twice (decoding and caching, then reading the cache) and drawing its first training batches (the
    reading, cropping and augmenting every step waits for: the loaders run in the training process); None
    where the data is not on this machine."""
    import torch

    from ...engine.config import make_config
    from ...engine.trainer import build_task

    cfg = run_.config
    key = json.dumps(  # the seeds of one dataset and batch size cost the same: built and drawn once
        [cfg.get("task"), cfg.get("data"), cfg.get(cfg.get("task")), cfg["optim"]["batch_size"]],
        sort_keys=True,
        default=str,
    )
    if key not in _cache:
        c = make_config(cfg)
        times, batch, note = [], None, ""
        try:
            for _ in range(2):
                t = time.perf_counter()
                task = build_task(c, torch.device("cpu"))  # the engine's own way, as the run will
                times.append(time.perf_counter() - t)
            batch = _time_batches(task.train_batches(0))
        except Exception as e:  # no data here (or an unreadable copy): no preparation time, said why
            note = f"data not timed: {str(e).splitlines()[0][:80]}"
        _cache[key] = (*times, batch, note) if times else (None, None, None, note)
    return _cache[key]


@dataclass
class Estimate:
    """A run's cost: parameters, MACs, memory, measured step, evaluation and overhead times and the estimated
    wall time."""

    params: int | None = None
    macs: int | None = None
    train_bytes: int | None = None  # peak memory of a training step
    eval_bytes: int | None = None  # peak memory of an evaluation batch
    step_seconds: float | None = None  # one optimiser step of the run's batch (its computation), measured here
    eval_seconds: float | None = None  # one whole evaluation: its forward passes and the scoring of each input
    score_seconds: float | None = None  # of that, the scoring of one evaluated input (0: its forward pass decides)
    data_seconds: float | None = None  # loading the prepared data, once per run
    batch_seconds: float | None = None  # reading, cropping and augmenting one training batch, every step
    overhead_seconds: float | None = None  # building the network once and writing the checkpoints every epoch
    prepare_seconds: float | None = None  # decoding and caching the data, once per dataset
    wall_seconds: float | None = None  # the run's steps, evaluations and data loading
    note: str = ""


def _steps_and_evals(run_: Run) -> tuple[int, int]:
    cfg = run_.config
    evals = math.ceil(int(cfg["optim"]["epochs"]) / int(cfg["run"]["eval_every"]))  # every N epochs and the last
    return geometry(cfg).steps_per_epoch * int(cfg["optim"]["epochs"]), evals


def estimate(run_: Run, time_steps: int = 2, _cache: dict | None = None) -> Estimate:
    """Params, MACs and peak memory (meta device), measured step and evaluation times and the estimated wall
    time of ``run_``; ``time_steps=0`` times nothing."""
    cache = _cache if _cache is not None else {}
    if run_.note:
        return Estimate(note=run_.note)
    cfg = run_.config
    computing = {k: v for k, v in cfg.get("run", {}).items() if k not in ("seed", "out_dir", "run_name")}
    key = json.dumps(  # the seeds of one row cost the same: timed once
        [run_.model, cfg.get("model_kwargs"), cfg.get("pool_skip"), run_.dataset, cfg.get("optim"), computing,
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
            g = geometry(cfg)
            try:  # the network built once: its building and checkpoints timed, then its steps and evaluation
                t = time.perf_counter()
                net = _net(run_, g, "cpu")
                e.overhead_seconds = _time_overhead(run_, g, net, time.perf_counter() - t)
                e.step_seconds = _time_train_step(run_, g, e.macs, time_steps, net)
                e.eval_seconds = _time_eval(run_, g, e.macs, time_steps, net)
                scoring = scoring_seconds(cfg)
                if scoring is None:
                    e.note = (e.note + "; " if e.note else "") + "scoring of each volume not timed (no data folder)"
                else:
                    e.eval_seconds += scoring * g.n_eval
                    e.score_seconds = scoring
            except Exception as err:
                e.note = (e.note + "; " if e.note else "") + f"not timed: {err}"
        cache[key] = e
    e = cache[key]
    est = Estimate(**vars(e))
    if time_steps > 0 and est.step_seconds is not None:
        first, later, batch, note = _time_data(run_, cache.setdefault("data", {}))
        est.note = "; ".join(n for n in (est.note, note) if n)
        est.prepare_seconds, est.data_seconds, est.batch_seconds = first, later, batch
        steps, evals = _steps_and_evals(run_)
        est.wall_seconds = (
            (est.step_seconds + (batch or 0.0)) * steps
            + (est.eval_seconds or 0.0) * evals
            + (later or 0.0)
            + (est.overhead_seconds or 0.0)
        )
    return est


# ------------------------------------------------------------------------------------------ the dry run


def _human(seconds: float | None) -> str:
    """Seconds to three significant places at most, in s, min, h or d (a run's estimate can be set against its
    measured wall time to a few per cent)."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min" if seconds < 600 else f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _gib(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / GiB:.2f} GiB" if n >= GiB / 10 else f"{n / 2**20:.1f} MiB"


def ensemble_estimate(
    members: Sequence[Run], fold: Estimate, time_steps: int = 2, _cache: dict | None = None
) -> Estimate:
    """What scoring one cell's folds' ensemble on the test set costs (:mod:`.ensembles`), its data the test set's
    (:func:`~.ensembles.test_config`: its volumes' number, sizes and windows as the task reads them from the
    headers), ``fold`` the estimate of one of its folds (:func:`estimate`).

    - Memory (``eval_bytes``): the k models on one device beside an evaluation of the largest test volume
      (counted as a fold's evaluation batch is) and the running sum of the folds' probabilities over that volume,
      twice (the sum and the next one).
    - Time (``eval_seconds``): each test volume predicted by the k models, at the fold's evaluation time a window
      (its forward passes, its scoring left out) times the volume's windows, and scored once in its own grid (the
      task's scoring timed on the test set, as for an evaluation); ``prepare_seconds`` and ``data_seconds``:
      building the task on the test set the first time (the test volumes prepared) and again (loading the
      prepared volumes), timed as the ensemble builds it; ``wall_seconds``: the scoring and the loading (a dry
      run counts the first preparation once per dataset). ``time_steps=0`` times nothing."""
    from .ensembles import test_config

    cache = _cache if _cache is not None else {}
    k, config = len(members), test_config(members)
    test = geometry(config)
    e = Estimate()
    try:
        net = _net(members[0], test, "meta")
        params = sum(p.numel() * p.element_size() for p in net.parameters())
        summed = test.classes * math.prod(test.eval_shape[1:]) * 4  # float32 probabilities of the largest volume
        e.eval_bytes = _eval_bytes(net, test) + (k - 1) * params + 2 * summed
    except Exception as err:  # a model that cannot be counted at this input: say so
        e.note = "; ".join(x for x in (e.note, f"memory not counted: {err}") if x)
    g = geometry(members[0].config)
    if time_steps <= 0 or fold.eval_seconds is None or g.n_eval < 1:
        return e
    window = (fold.eval_seconds - (fold.score_seconds or 0.0) * g.n_eval) / (g.n_eval * g.eval_windows)
    score = scoring_seconds(config)
    if score is None:
        e.note = "; ".join(x for x in (e.note, "scoring of each test volume not timed (no data folder)") if x)
        return e
    first, later, _, note = _time_data(replace(members[0], config=config), cache.setdefault("data", {}))
    e.note = "; ".join(x for x in (e.note, note) if x)
    e.score_seconds, e.prepare_seconds, e.data_seconds = score, first, later
    e.eval_seconds = test.n_eval * (k * window * test.eval_windows + score)
    e.wall_seconds = e.eval_seconds + (later or 0.0)
    return e


def _ensemble_lines(
    runs: Sequence[Run], root: Path, estimates: Mapping[str, Estimate], time_steps: int, cache: dict
) -> list[tuple[str, str, Estimate | None, str]]:
    """``(name, status, estimate, the test set's data)`` per cell of Table 3 whose folds' ensemble the
    reproduction will score on the test set (:mod:`.ensembles`, :func:`ensemble_estimate`; status ``finished``
    where its record is there); a cell that will have none: status ``none``, no estimate, and why."""
    from .ensembles import cells, read_ensemble, test_cases, test_config, why_not

    out = []
    for (cell, seed), members in cells(runs).items():
        name = f"ensemble of {cell}/seed{seed}"
        why = why_not(members, root, finished=False)
        if why:
            out.append((name, "none", None, f"no folds' ensemble on the test set: {why}"))
            continue
        done = read_ensemble(members, root) is not None
        e = ensemble_estimate(members, estimates[members[0].name], time_steps, cache)
        what = f"{len(members)} folds x {len(test_cases(members) or ())} test volumes, each scored once"
        e.note = "; ".join(x for x in (what, e.note) if x)
        data = json.dumps([test_config(members).get("data"), "test set"], sort_keys=True, default=str)
        out.append((name, "finished" if done else "new", e, data))
    return out


def _finished_walls(row: Path) -> list[float]:
    """The wall seconds (``summary.json``) of the finished runs under ``row``: the seeds or folds of one row of a
    table, the same config but for the seed or fold (the reproduction refuses a run on disk that differs)."""
    from ..results import ResultsError, read_summary, run_status

    walls = []
    for d in sorted(row.glob("*")) if row.is_dir() else ():
        if d.is_dir() and run_status(d) == "finished":
            try:
                w = read_summary(d).raw.get("wall_seconds")
            except ResultsError:  # not a summary the current poolskip writes: the reproduction reruns it
                continue
            if isinstance(w, (int, float)) and not isinstance(w, bool) and w > 0:
                walls.append(float(w))
    return walls


def dry_run_report(runs: Sequence[Run], root: Path, time_steps: int) -> str:
    """The plan as text: every run with its status, params, MACs, peak memory of a training step and of an
    evaluation batch, the time of a step (its computation and the preparing of its batch) and of an evaluation,
    and its estimated wall time; a line per cell of Table 3 for its folds' ensemble on the test set
    (:func:`ensemble_estimate`), or why it has none; then the totals (peak memory: of every run and ensemble).

    Every run is estimated by timing, on the machine as it is now. A run whose row (the same config but for
    the seed or fold) has finished runs on disk also shows their median measured wall time in its note: a
    measured time says what the machine did then, which need not be what it does now (on the 2-core VM of
    results/estimate-check/, seeds of two rows run a day apart took 1.35x and 1.51x their seed 3's wall time,
    whose timed steps were 9 % and 17 % off; the seeds of one row varied up to 1.70x on one day,
    results/timing-spread.md)."""
    import platform

    from ..results import run_status

    cache: dict = {}
    finished: dict[Path, list[float]] = {}  # each row's measured wall times
    head = (
        f"{'run':60s} {'status':9s} {'params':>9s} {'MACs':>10s} {'train mem':>10s} {'eval mem':>10s} "
        f"{'step':>8s} {'eval':>7s} {'est. wall':>9s}  note"
    )
    lines = [head]
    total, prepared = 0.0, {}
    unavailable = 0
    peak = (0, None), (0, None)
    estimates = {}
    rows: list[tuple[str, str, Estimate | None, str, bool]] = []  # name, status, estimate, data or why, ensemble?
    for r in runs:
        e = estimates[r.name] = estimate(r, time_steps, cache)
        status = "n/a" if r.note else run_status(root / "runs" / r.name)
        unavailable += bool(r.note)
        walls: list[float] = []
        if time_steps > 0 and not r.note:
            row = (root / "runs" / r.name).parent
            if row not in finished:  # read once per row, not once per seed
                finished[row] = _finished_walls(row)
            walls = finished[row]
        if walls and status != "finished":
            plural = "s" * (len(walls) > 1)
            measured = f"its row's {len(walls)} finished run{plural}: {_human(statistics.median(walls))} (median)"
            e.note = "; ".join(x for x in (e.note, measured) if x)
        rows.append((r.name, status, e, json.dumps(r.config.get("data"), sort_keys=True, default=str), False))
    rows += [(*x, True) for x in _ensemble_lines(runs, root, estimates, time_steps, cache)]
    for name, status, e, data, ensemble in rows:
        if e is None:  # a cell without an ensemble: why
            lines.append(f"{name:60s} {status:9s}  {data}")
            continue
        if e.wall_seconds and status != "finished":
            total += e.wall_seconds
            if e.prepare_seconds is not None and data not in prepared:
                prepared[data] = max(0.0, e.prepare_seconds - (e.data_seconds or 0.0))
        if e.train_bytes is not None and e.train_bytes > peak[0][0]:
            peak = (e.train_bytes, name), peak[1]
        if e.eval_bytes is not None and e.eval_bytes > peak[1][0]:
            peak = peak[0], (e.eval_bytes, name)
        blank = "" if ensemble else "—"  # what an ensemble does not have: parameters of its own, a training step
        lines.append(
            f"{name:60s} {status:9s} "
            f"{(f'{e.params / 1e6:.2f}M' if e.params is not None else blank):>9s} "
            f"{(f'{e.macs / 1e6:.1f}M' if e.macs is not None else blank):>10s} "
            f"{(blank if ensemble else _gib(e.train_bytes).replace(' ', '')):>10s} "
            f"{_gib(e.eval_bytes).replace(' ', ''):>10s} "
            f"{(f'{e.step_seconds + (e.batch_seconds or 0.0):.3f}s' if e.step_seconds is not None else blank):>8s} "
            f"{_human(e.eval_seconds):>7s} {_human(e.wall_seconds):>9s}  {e.note}"
        )
    total += sum(prepared.values())
    lines.append(
        f"{len(runs)} run{'s' * (len(runs) != 1)}; {unavailable} not runnable here yet; "
        f"peak memory (estimated, one device): training step {_gib(peak[0][0])} ({peak[0][1]}), "
        f"evaluation batch {_gib(peak[1][0])} ({peak[1][1]})"
    )
    if time_steps > 0:
        lines.append(
            f"estimated {_human(total)} left on this machine ({platform.machine()}, {os.cpu_count()} CPUs): "
            f"training steps and evaluations timed on synthetic batches, each step's batch and the data's "
            f"preparation ({_human(sum(prepared.values()))} of it) on the data, building and checkpoints once; "
            f"one process at a time"
        )
    return "\n".join(lines)
