"""The printout in augment.txt (2026-12-02, about 00:37 UTC, with the table's two training runs going on both
cores, so an upper bound): seconds to build the classification task of ResNet18 plain seed 1 (reading the cached
decoded images) and to cut and augment one training batch of 128 (crop + flip on the CPU), one thread. From the
repository root."""

import time

import torch
import yaml

from poolskip.engine.config import make_config
from poolskip.engine.trainer import build_task

torch.set_num_threads(1)
RUN = "results/repro-table1-quick-v2/table1-quick/runs/imagefolder-as-cifar10_ResNet18-width-8-_plain/seed1"
cfg = make_config(yaml.safe_load(open(f"{RUN}/config.yaml")))
t = time.perf_counter()
task = build_task(cfg, torch.device("cpu"))
print("build", time.perf_counter() - t)
batches = task.train_batches(0)
next(batches)
times = []
for _ in range(30):
    t = time.perf_counter()
    next(batches)
    times.append(time.perf_counter() - t)
times.sort()
print(f"batch s: min {times[0]:.4f} median {times[len(times) // 2]:.4f}")
