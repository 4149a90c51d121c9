"""Table 3's measurement: each cell's folds' ensemble on the test set, scored once all its folds finished.

The paper scores the ensemble of the 5 folds (softmax averaged) on the test set (BTCV's 12 scans, AMOS' 120), not
each fold on its validation part. For every cell (row, column and seed of the table) whose planned folds are all
the task's folds, all finished, on data with a labelled test set, :func:`ensemble_jobs` makes one job that scores
their ensemble (:func:`poolskip.experiments.folds3d.ensemble_runs`, each fold's ``best.pt`` as ``poolskip
ensemble`` takes it) and writes ``ensembles/<cell>/seed<S>.json`` under the reproduction's folder, atomically:
the scores, the checkpoint and device, and a digest of each member's ``summary.json``. :func:`read_ensemble`
gives a cell's record only while it is the ensemble of the runs on disk now (a fold trained again since: none,
and the next reproduction scores it again). :func:`why_not` says why a cell has none (the table then shows the
folds' own validation scores, and says so).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from ..results import read_config, run_status
from .plan import Run

__all__ = [
    "ENSEMBLES",
    "WHICH",
    "EnsembleJob",
    "cells",
    "ensemble_jobs",
    "read_ensemble",
    "task_of",
    "test_cases",
    "test_config",
    "why_not",
]

#: The folder of the ensembles' records, beside ``runs/``.
ENSEMBLES = "ensembles"
#: Each fold's checkpoint in its ensemble: the one of its best validation score (``poolskip ensemble``'s default).
WHICH = "best"


def cells(runs: Sequence[Run]) -> dict[tuple[str, int], list[Run]]:
    """The runs with a fold, by cell: ``(the cell's folder under runs/, seed) -> its folds' runs``."""
    out: dict[tuple[str, int], list[Run]] = {}
    for r in runs:
        if r.fold is not None:
            out.setdefault((str(PurePosixPath(r.name).parent), r.seed), []).append(r)
    return out


def _record_path(root: Path, cell: str, seed: int) -> Path:
    return root / ENSEMBLES / cell / f"seed{seed}.json"


def _digests(root: Path, names: Sequence[str]) -> dict[str, str]:
    """Each member's ``summary.json`` digest (sha256), by run name: what ties a record to the runs it scored."""
    return {n: hashlib.sha256((root / "runs" / n / "summary.json").read_bytes()).hexdigest() for n in names}


def task_of(members: Sequence[Run]):
    """``(config, task class)`` of one cell's folds (their first run's: a cell's folds share all but the fold)."""
    from ...engine.config import make_config
    from ...tasks import get_task

    cfg = make_config(members[0].config)
    return cfg, get_task(cfg.task)


def test_config(members: Sequence[Run]) -> dict[str, Any]:
    """The resolved config one cell's folds' ensemble reads its test set with, as ``ensemble_runs`` builds it:
    the first fold's, with every fold's options (the task's ``fold_options(options, None)``: the test set, whole)
    and the whole training set (no ``train_subset``)."""
    cfg, task = task_of(members)
    cfg.options = task.fold_options(cfg.options, None)
    cfg.data.train_subset = None
    return cfg.to_dict()


def test_cases(members: Sequence[Run]) -> list[str] | None:
    """The labelled test cases of the data one cell's folds train on (empty: none; None: unreadable here, or a
    task without folds)."""
    from ...engine.trainer import task_context
    from ...tasks import CrossValidated

    cfg, task = task_of(members)
    return task.test_cases(task_context(cfg)) if isinstance(task, CrossValidated) else None


def why_not(members: Sequence[Run], root: Path, finished: bool = True) -> str:
    """Why the folds ``members`` of one cell have no ensemble to score ('' where they can have one): a run that
    cannot start here, fewer folds planned than the task has (the quick scale's 3 of 5), a fold not finished
    (with ``finished``; without it, what the plan will allow once they are), or data without a labelled test
    set (the Decathlon's, nnU-Net's raw layout) or unreadable here."""
    from ...tasks import CrossValidated

    if any(r.note for r in members):
        return "its runs cannot start here"
    cfg, task = task_of(members)
    if not isinstance(task, CrossValidated):
        return f"task {cfg.task!r} has no folds"
    n = task.num_folds(cfg.options)
    folds = sorted(r.fold for r in members)
    if folds != list(range(n)):
        return f"fold{'s' * (len(folds) != 1)} {', '.join(map(str, folds))} of {n} planned, not all"
    unfinished = [r.fold for r in members if finished and run_status(root / "runs" / r.name) != "finished"]
    if unfinished:
        return f"fold(s) {', '.join(map(str, unfinished))} not finished"
    test = test_cases(members)
    if test is None:
        where = f"its data folder {cfg.data.data_dir} cannot be read here" if cfg.data.data_dir else "no --data-dir"
        return f"{where}: its labelled test set is unknown"
    if not test:
        return f"its data ({cfg.data.dataset} at {cfg.data.data_dir}) has no labelled test set"
    return ""


def read_ensemble(members: Sequence[Run], root: Path) -> dict[str, Any] | None:
    """The record of the folds' ensemble of ``members`` (one cell's runs), where one was written for the runs on
    disk now: every member finished, with the ``summary.json`` it had when the ensemble was scored."""
    r0 = members[0]
    path = _record_path(root, str(PurePosixPath(r0.name).parent), r0.seed)
    if not path.is_file() or any(run_status(root / "runs" / r.name) != "finished" for r in members):
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):  # unreadable: scored again
        return None
    names = sorted(r.name for r in members)
    return record if record.get("members") == _digests(root, names) else None


@dataclass(frozen=True)
class EnsembleJob:
    """Score one cell's folds' ensemble on the test set and write its record (a :class:`~..launch.Work`)."""

    root: Path  # the reproduction's folder: runs/ and ensembles/
    names: tuple[str, ...]  # the folds' runs, under root/runs
    out: Path  # the record written
    label: str = ""
    detail: str = ""
    device: str | None = None  # set by the launcher; None: the runs' own run.device

    @property
    def name(self) -> str:
        return self.label or str(self.out)

    @property
    def what(self) -> str:
        detail = f" ({self.detail})" if self.detail else ""
        return f"scoring the {len(self.names)} folds' ensemble on the test set{detail}"

    def run(self) -> dict[str, Any]:
        from ...engine.config import make_config
        from ...engine.distributed import resolve_device
        from ...engine.rundir import strict_json
        from ...files import atomic_write_text
        from ..folds3d import ensemble_runs

        dirs = [self.root / "runs" / n for n in self.names]
        run_device = make_config(read_config(dirs[0])).run.device
        device = str(resolve_device(self.device or run_device))
        digests = _digests(self.root, self.names)  # before scoring: a fold trained again meanwhile is not this one
        scores = ensemble_runs(dirs, WHICH, device)
        record = {"members": digests, "which": WHICH, "device": device, "scores": strict_json(scores)}
        atomic_write_text(self.out, json.dumps(record, indent=1) + "\n")
        return record

    def requeued(self) -> EnsembleJob:
        return self  # nothing half-written to resume: scored again

    def portable(self) -> EnsembleJob:
        return replace(self, device=None, root=Path(self.root).resolve(), out=Path(self.out).resolve())


def ensemble_jobs(runs: Sequence[Run], root: Path, log=print) -> list[EnsembleJob]:
    """One :class:`EnsembleJob` per cell of ``runs`` whose folds can have an ensemble (:func:`why_not`) and have
    no record of it for the runs on disk now (:func:`read_ensemble`); a cell that cannot is logged with why."""
    jobs = []
    for (cell, seed), members in cells(runs).items():
        why = why_not(members, root)
        if why:
            log(f"{cell} (seed {seed}): no folds' ensemble on the test set ({why}); the table shows the folds' scores")
            continue
        if read_ensemble(members, root) is not None:
            log(f"{cell} (seed {seed}): the folds' ensemble was scored before, kept")
            continue
        names = tuple(sorted(r.name for r in members))
        detail = f"{members[0].row}, seed {seed}"
        jobs.append(EnsembleJob(root, names, _record_path(root, cell, seed), f"{cell}/seed{seed}", detail))
    return jobs
