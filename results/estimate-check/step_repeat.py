"""How much the dry run's own step timing varies on this machine: ``_time_train_step`` (the estimator's timing
of one training step) called four times in a row for plain MobileNet width 8 (Table 1 quick) and plain VGG16
width 8 (Table 4 quick), one thread, with the estimator's sampling budget (4 s, at most 15 steps) and with a
longer one (12 s, at most 100):

    python results/estimate-check/step_repeat.py 4 15; python results/estimate-check/step_repeat.py 12 100

Output of 2026-12-02 ~17:10 UTC, nothing else running: ``step_repeat.txt``.
"""

from __future__ import annotations

import importlib
import sys

from poolskip.experiments.reproduce import plan

E = importlib.import_module("poolskip.experiments.reproduce.estimate")


def main() -> None:
    budget, most = float(sys.argv[1]), int(sys.argv[2])
    E._time.__defaults__ = (budget, most, 2)  # the sampling budget of every timed call
    for name, command in (("MobileNet", "table1"), ("VGG16", "table4")):
        data = "../shared/data/cifar10-jpg"
        runs = plan(command, "quick", dataset="imagefolder", data_dir=data, seeds=[3], threads=1)
        r = next(r for r in runs if name in r.name and r.key == "plain")
        g, macs = E.geometry(r.config), E.run_cost(r)[1]
        print(name, budget, most, [round(E._time_train_step(r, g, macs, 2), 4) for _ in range(4)], flush=True)


if __name__ == "__main__":
    main()
