"""``poolskip reproduce {table1,...,fig4}``: one command per table or figure of the paper.

Plans every run of the table (``--scale paper`` is the paper's protocol, ``quick`` a labelled CPU-sized
version), trains what is left (finished runs skipped, half-done runs resumed), and writes the table in the
paper's layout with the paper's numbers beside ours, params and MACs per row; ``--controls`` adds the
cost-matched controls, ``--dry-run`` lists the runs with their estimated cost. The work is
:mod:`poolskip.experiments.reproduce`.
"""

from __future__ import annotations

from ..experiments.reproduce import add_arguments, run

__all__ = ["add_arguments", "run"]
