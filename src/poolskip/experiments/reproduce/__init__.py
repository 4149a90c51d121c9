"""``poolskip reproduce {table1..table5, fig3, fig4}``: one command per table and figure of the paper.

Each command is a plan (a list of runs: a cell of the table, the recipe its config starts from and the
layers over it, a seed and, for Table 3, a fold), then the runs (finished ones skipped, half-done ones
resumed), then the table in the paper's layout: our mean ± std over seeds, our difference to our own plain
network (beside the paper's number and ours − paper only at the paper's scale and dataset), and the
parameters and multiply-adds of every row. Figures are PNGs.

Scales (:mod:`.protocols`):

- ``paper``: the recipes exactly (``recipes/*.yaml``, checked against ``paper_protocols.yaml``): every
  model of the table, both variants, 5 seeds (5 folds for Table 3), full schedules. Days of GPU time;
  ``--dry-run`` says how long on this machine and how much memory each run needs.
- ``quick``: a clearly labelled shortened version (fewer epochs, 3 seeds, smaller widths, one column,
  stand-in datasets) sized for a few hours to about a day per table on a 2-core CPU, in a regime calibrated
  on real data where the plain network trains, declared in
  :data:`.protocols.QUICK`. Never the paper's protocol.
- ``tiny``: a smoke test for the tests, declared in :data:`.protocols.TINY`: 1 epoch, 1 seed, the table's
  rows on tiny networks and data (scikit-learn's digits for Tables 1, 4 and 5; 64 CIFAR-10 images and a
  ResNet50 of width 4 for Figures 3 and 4; a CamVid or Decathlon folder given with ``--data-dir``, cut to
  a few steps and volumes, for Tables 2 and 3).

``--controls`` adds the cost-matched controls of :mod:`poolskip.experiments.controls` to every row
with Pool Skip: the {Conv, Skip} ablation (same cost, no pooling), a plain network widened to Pool
Skip's MACs, and a depthwise Pool Skip. The question each table lets a reader answer: does Pool Skip
beat a plain network that costs the same?

Table 3 is scored as the paper scores it where it can be: each cell's folds' ensemble on the test set, once its
folds have all finished (:mod:`.ensembles`).

Modules: :mod:`.protocols` (tables, recipes, scale overlays), :mod:`.plan` (runs), :mod:`.estimate`
(cost, memory, time, the dry run), :mod:`.execute` (training), :mod:`.ensembles` (Table 3's folds' ensembles),
:mod:`.tables` (the table and figures).
"""

from __future__ import annotations

from .estimate import Estimate, dry_run_report, estimate, peak_memory, run_cost
from .execute import execute, refuse_held
from .plan import Run, check, dump, plan
from .protocols import COMMANDS, PAPER, QUICK, SCALES, TINY, overlay, resolve
from .tables import collect, layer_l2_l1, render_table, write_outputs

__all__ = [
    "COMMANDS",
    "PAPER",
    "QUICK",
    "SCALES",
    "TINY",
    "Estimate",
    "Run",
    "check",
    "collect",
    "dry_run_report",
    "dump",
    "estimate",
    "execute",
    "layer_l2_l1",
    "overlay",
    "peak_memory",
    "plan",
    "refuse_held",
    "render_table",
    "resolve",
    "run_cost",
    "write_outputs",
]
