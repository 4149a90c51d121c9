"""The printout in variants.txt (2026-12-02, 00:45 UTC, training paused, idle machine): for each ResNet18 row, the
step time of the estimator of commit 3026f5b (the fastest of 2-20 calls within 1 s) and 15 further synthetic
steps after one warm-up (fastest, median, mean, slowest). Run from the repository root with the code of 3026f5b
(today's `_time` is already the median, so its first column now prints the median estimate). This file is the
script that printed it, tidied for the linter."""

import importlib
import statistics
import time

from poolskip.experiments.reproduce import plan, run_cost

E = importlib.import_module("poolskip.experiments.reproduce.estimate")  # the module, not its function
DATA = "../shared/data/cifar10-jpg"
runs = [r for r in plan("table1", "quick", "imagefolder", DATA, [1], True, threads=1) if "ResNet18" in r.name]
estimator = E._time


def fifteen(fn, steps, budget=1.0, most=20):
    fn()
    fifteen.times = []
    for _ in range(15):
        t = time.perf_counter()
        fn()
        fifteen.times.append(time.perf_counter() - t)
    return min(fifteen.times)


for r in runs:
    g = E.geometry(r.config)
    _, macs = run_cost(r)
    a = E._time_train_step(r, g, macs, 2)
    E._time = fifteen
    E._time_train_step(r, g, macs, 2)
    E._time = estimator
    ts = fifteen.times
    print(
        f"{r.name:55s} est(min) {a:.3f}  15 calls: min {min(ts):.3f} median {statistics.median(ts):.3f} "
        f"mean {statistics.mean(ts):.3f} max {max(ts):.3f}",
        flush=True,
    )
