"""Which difference between the dry run's synthetic training step and the engine's costs time? In one process,
after the data was read, each variant's step timed in turn (2 warm-up calls, the median of BLOCK), ROUNDS rounds
(one more first, discarded); each variant's median and its ratio to A (the estimator's own step) per round:

    python results/estimate-check/ablate.py TABLE NETWORK ROW ROUNDS BLOCK

e.g. ``table1 MobileNet plain 6 20``. Output of 2026-12-02 ~19:57 UTC (estimator of d449d4f): ``ablate.txt``.
"""

import itertools
import statistics
import sys

import torch
from paired import E, engine_blocks, estimator_step, planned

from poolskip.engine.checkpoint import model_from_config
from poolskip.engine.config import make_config
from poolskip.engine.optim import make_optimizer
from poolskip.engine.trainer import build_task

table, network, row, rounds, block = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
r, g, macs = planned(table, network, row)
synthetic = estimator_step(r, g, macs)
cfg = make_config(r.config)
task = build_task(cfg, torch.device("cpu"))
engine_block = engine_blocks(cfg, task)  # sets the run's one thread
real = list(itertools.islice(task.train_batches(0), 20))
cl = torch.channels_last


def step_fn(net_from, inputs, opt_kind):
    torch.manual_seed(0)
    net = (E._net(r, g, "cpu") if net_from == "estimator" else model_from_config(cfg, task.model_spec())).train()
    net = net.to(memory_format=cl)
    opt = (
        make_optimizer(cfg.optim, net)
        if opt_kind == "engine"
        else torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    )
    if inputs == "real":
        xs = [(b.inputs.contiguous(memory_format=cl), b.targets) for b in real]
    else:
        xs = [(torch.randn(128, 3, 32, 32).contiguous(memory_format=cl), torch.randint(0, 10, (128,)))]
    it = itertools.cycle(xs)

    def step():
        x, y = next(it)
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    return step


variants = {
    "A estimator closure": synthetic,
    "B randn, estimator net+SGD": step_fn("estimator", "randn", "sgd"),
    "C real batches": step_fn("estimator", "real", "sgd"),
    "D engine net": step_fn("engine", "randn", "sgd"),
    "E engine optimizer": step_fn("estimator", "randn", "engine"),
    "F real+engine net+opt": step_fn("engine", "real", "engine"),
    "G flush denormal (A)": "flush",
    "H engine loop (mean of a block)": "engine",
}
res = {k: [] for k in variants}
for rnd in range(rounds + 1):
    for k, fn in variants.items():
        if fn == "engine":
            x = engine_block(block)
            if rnd:
                res[k].append(x)
            continue
        flush = fn == "flush"
        f = synthetic if flush else fn
        torch.set_flush_denormal(flush)
        x = E._time(f, block, budget=0.0, most=block)  # 2 warm-up calls, the median of BLOCK
        torch.set_flush_denormal(False)
        if rnd:
            res[k].append(x)
a = res["A estimator closure"]
for k, v in res.items():
    ratio = [x / y for x, y in zip(v, a)]
    spread = f"range {min(ratio):.3f}-{max(ratio):.3f}"
    print(f"{r.name} {k:32s} median {statistics.median(v):.4f} s, / A: median {statistics.median(ratio):.3f} {spread}")
