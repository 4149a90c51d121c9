"""The dry run's timing of one training step (``_time_train_step``: it builds the row's network and times its
step) made TIMES times in a row (default 3) in one fresh process; with a fifth argument, after allocating and
freeing one 30 MiB buffer first (what a run's process has done reading its data before its first step). Prints
the timings and the first over the second and third. From the repository root:

    for i in 1 2 3 4 5; do python results/estimate-check/fresh.py table1 MobileNet plain; done

Outputs, with the code each was made with: ``fresh.txt``.
"""

from __future__ import annotations

import importlib
import sys

import torch

from poolskip.experiments.reproduce import plan

E = importlib.import_module("poolskip.experiments.reproduce.estimate")


def main() -> None:
    table, network, row = sys.argv[1:4]
    times = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    data = "../shared/data/cifar10-jpg"
    runs = plan(table, "quick", dataset="imagefolder", data_dir=data, seeds=[3], controls=True, threads=1)
    r = next(r for r in runs if f"_{network}-" in r.name and r.key == row)
    g, macs = E.geometry(r.config), E.run_cost(r)[1]
    if len(sys.argv) > 5:
        torch.ones(30 * 2**20 // 4)  # allocated and freed
    t = [E._time_train_step(r, g, macs, 2) for _ in range(times)]
    ratios = f"first/second {t[0] / t[1]:.3f} first/third {t[0] / t[2]:.3f}"
    print(network, row, " ".join(f"{x:.4f}" for x in t), ratios)


if __name__ == "__main__":
    main()
