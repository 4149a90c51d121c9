"""On the CPU, in one process: what keeping the op's window index tables (c7d2891) saves, against rebuilding them in
every forward and backward (as before it), beside the paper's formulation; variants interleaved, best of rounds.

    PYTHONPATH=src python results/gpu-cifar10-h200/tables_ab_cpu.py op 8 2 200     # one small op call, 1 thread
    PYTHONPATH=src python results/gpu-cifar10-h200/tables_ab_cpu.py resnet18 8 128 3
    PYTHONPATH=src python results/gpu-cifar10-h200/tables_ab_cpu.py resnet350 4 128 3

``op C N CALLS``: forward+backward of pool_unpool_conv on N x C x 8 x 8 (pool 2), CALLS calls a round, one thread;
``MODEL WIDTH BATCH ROUNDS``: one SGD train step of that CIFAR model with Pool Skip (channels_last, the CPU's threads).
"""

import sys
import time

import torch
import torch.nn.functional as F

import poolskip.functional as fn
import poolskip.module
from poolskip.models import create_model

name, size, batch, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
kept = fn._window_tables


def rebuilt(spatial, pool, device):
    return fn._build_window_tables(tuple(spatial), tuple(pool), device)


VARIANTS = {"kept": (kept, fn.pool_unpool_conv), "rebuilt": (rebuilt, fn.pool_unpool_conv),
            "paper-op": (kept, fn.pool_unpool_conv_reference)}  # fmt: skip
torch.manual_seed(0)
if name == "op":
    torch.set_num_threads(1)
    y, w, b = torch.randn(batch, size, 8, 8), torch.randn(size, size, 3, 3), torch.zeros(size)
    y, w, b = (t.requires_grad_() for t in (y, w, b))
    g = torch.randn(batch, size, 8, 8)

    def step(v):
        fn._window_tables = VARIANTS[v][0]
        for _ in range(rounds):
            torch.autograd.grad(VARIANTS[v][1](y, w, b, 2), (y, w, b), g)

    per, repeats = rounds, 5
    label = f"pool_unpool_conv forward+backward, {batch}x{size}x8x8, pool 2, best of {repeats} rounds of {rounds}"
else:
    x = torch.randn(batch, 3, 32, 32).to(memory_format=torch.channels_last)
    target = torch.randint(0, 10, (batch,))
    model = create_model(name, num_classes=10, pool_skip=True, width=size).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(v):
        fn._window_tables, poolskip.module.pool_unpool_conv = VARIANTS[v]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), target).backward()
        opt.step()

    per, repeats = 1, rounds
    label = f"{name} width {size} with Pool Skip, one SGD step of batch {batch}, best of {rounds}"
for v in VARIANTS:
    step(v)
best = dict.fromkeys(VARIANTS, float("inf"))
for _ in range(repeats):
    for v in VARIANTS:
        t = time.perf_counter()
        step(v)
        best[v] = min(best[v], (time.perf_counter() - t) / per)
print(f"{label}; torch {torch.__version__}, {torch.get_num_threads()} threads")
for v, s in best.items():
    print(f"{v:9s} {s * 1e3:9.3f} ms  {s / best['kept']:.2f}x kept")
