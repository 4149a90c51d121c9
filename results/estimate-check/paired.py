"""Is the dry run's step timing biased against the engine's own training loop? Both timed in one process, in
alternating blocks, so whatever the machine's speed does over minutes touches both alike:

- the estimator: the synthetic training step ``_time_train_step`` builds and times (the run's network, batch,
  memory format and threads), two warm-up calls and the median of BLOCK, plus ``_time_batches`` (the median
  time of drawing one of the run's first training batches from the data), as the dry run adds them;
- the engine: ``poolskip.engine.trainer.train_one_epoch`` (the loop every run trains with: its optimiser, its
  loss, its learning-rate schedule, its checks) on BLOCK real batches of the task, per step.

From the repository root, with the CIFAR-10 ImageFolder copy (facts: ../shared/data/cifar10-jpg):

    python results/estimate-check/paired.py TABLE NETWORK ROW ROUNDS BLOCK

e.g. ``table1 MobileNet plain 6 30``; prints each round's two times and their ratio (estimator / engine), then the
median ratio. A ratio near 1 says the timing's method is unbiased; the spread of the rounds is the machine's.
"""

from __future__ import annotations

import importlib
import itertools
import statistics
import sys
import time
from functools import partial

import torch

from poolskip.engine.checkpoint import model_from_config
from poolskip.engine.config import make_config
from poolskip.engine.optim import make_optimizer
from poolskip.engine.trainer import Position, build_task, train_one_epoch
from poolskip.experiments.reproduce import plan
from poolskip.progress import Progress

E = importlib.import_module("poolskip.experiments.reproduce.estimate")
DATA = "../shared/data/cifar10-jpg"


class FirstBatches:
    """The task, its epochs cut to their first ``n`` batches."""

    def __init__(self, task, n: int):
        self.task, self.n = task, n

    def __getattr__(self, name):
        return getattr(self.task, name)

    def train_batches(self, epoch: int, start: int = 0):
        return itertools.islice(self.task.train_batches(epoch, start), self.n)


def planned(table: str, network: str, row: str):
    """``(run, geometry, MACs)`` of ``network``'s ``row`` in ``table``'s quick plan (seed 3, one thread)."""
    runs = plan(table, "quick", dataset="imagefolder", data_dir=DATA, seeds=[3], controls=True, threads=1)
    r = next(r for r in runs if f"_{network}-" in r.name and r.key == row)
    return r, E.geometry(r.config), E.run_cost(r)[1]


def estimator_step(r, g, macs: int):
    """The synthetic step function ``_time_train_step`` builds and times, caught instead of timed."""
    steps = []
    timer, E._time = E._time, lambda fn, *a, **k: steps.append(fn) or 0.0
    try:
        E._time_train_step(r, g, macs, 2)
    finally:
        E._time = timer
    return steps[-1]


def engine_blocks(cfg, task):
    """``block(n)``: seconds per step of the engine's ``train_one_epoch`` over the task's first ``n`` batches, with
    the network and optimiser the engine builds for ``cfg`` (one of each, trained on by every block)."""
    torch.set_num_threads(cfg.run.threads)
    model = model_from_config(cfg, task.model_spec())
    if cfg.run.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(cfg.optim, model)
    scaler, autocast = torch.amp.GradScaler("cpu", enabled=False), partial(torch.autocast, "cpu", enabled=False)

    def block(n: int) -> float:
        t = time.perf_counter()
        quiet = Progress(n, "", enabled=False)
        train_one_epoch(model, FirstBatches(task, n), optimizer, scaler, cfg, Position(), autocast, 1,
                        lambda s: None, quiet)  # fmt: skip
        return (time.perf_counter() - t) / n

    return block


def main() -> None:
    table, network, row, rounds, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    r, g, macs = planned(table, network, row)
    synthetic = estimator_step(r, g, macs)
    cfg = make_config(r.config)
    task = build_task(cfg, torch.device("cpu"))
    engine_block = engine_blocks(cfg, task)

    def engine() -> float:
        return engine_block(block)

    def estimator() -> float:
        batch = E._time_batches(task.train_batches(0))
        return E._time(synthetic, block, budget=0.0, most=block) + batch  # 2 warm-up calls, the median of BLOCK

    engine(), estimator()  # both warmed up once
    ratios = []
    for i in range(rounds):
        s, e = estimator(), engine()
        ratios.append(s / e)
        print(f"{r.name} round {i}: estimator {s:.4f} s, engine {e:.4f} s, ratio {s / e:.3f}", flush=True)
    print(f"{r.name}: ratio median {statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f} "
          f"over {rounds} rounds of {block} steps", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
