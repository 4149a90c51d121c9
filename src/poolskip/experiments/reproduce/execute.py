"""Running a reproduction's runs: finished ones skipped, half-done ones resumed, starts without a
checkpoint moved aside, runs another process is training refused, then the folds' ensembles of Table 3 scored;
where they run is :func:`poolskip.experiments.launch.launch`'s (local slots with one device each, or Slurm)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from ..results import ResultsError, config_change, run_status
from .plan import Run

__all__ = ["execute", "refuse_held"]


def _refuse_changed(r: Run, run_dir: Path) -> None:
    """A run on disk (finished or resumable) trained with another config than the plan's is refused: skipping
    or resuming it would put its numbers under this plan's table (e.g. an --epochs 1 run in an --epochs 2 one)."""
    from ...engine.config import make_config

    changed = config_change(make_config(r.config).to_dict(), run_dir)
    if changed:
        raise ResultsError(
            f"{run_dir} was trained with {changed}; choose another --out for this plan, or remove that run to train "
            "it again"
        )


def refuse_held(runs: Sequence[Run], root: Path, training: bool = True) -> list[str]:
    """Each run's status (:func:`run_status`), read once; a run another process is training (its lock is
    held, e.g. a concurrent ``poolskip train`` into it) stops the reproduction before it writes anything
    (where this one would train: ``training``), as does a run on disk whose config differs from the plan's
    (:func:`_refuse_changed`)."""
    statuses = [run_status(root / "runs" / r.name) for r in runs]
    held = [r.name for r, status in zip(runs, statuses) if training and not r.note and status == "running"]
    if held:
        raise ResultsError(
            f"{len(held)} run(s) are being trained by another process (their lock is held), e.g. "
            f"{root / 'runs' / held[0]}; wait for them to finish, then run reproduce again"
        )
    for r, status in zip(runs, statuses):
        if not r.note and status in ("finished", "incomplete"):
            _refuse_changed(r, root / "runs" / r.name)
    return statuses


def _prepare(r: Run, status: str, root: Path, i: int, n: int, log) -> str | None:
    """The run's ``status`` after moving aside a start that never checkpointed; None if it needs no training."""
    run_dir = root / "runs" / r.name
    if r.note:
        log(f"[{i}/{n}] {r.name}: not run ({r.note})")
        return None
    if status == "finished":
        log(f"[{i}/{n}] {r.name}: finished before, skipped")
        return None
    if status == "stale":
        stale = run_dir.with_name(f"{run_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.rename(stale)  # started but never checkpointed: keep it aside, never delete it
        log(f"[{i}/{n}] {r.name}: an unfinished start without checkpoint moved to {stale.name}")
        status = "new"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return status


def execute(
    runs: Sequence[Run],
    root: Path,
    log=print,
    jobs: int = 1,
    launcher: str = "local",
    devices: Sequence[str] | None = None,
    slurm=None,
) -> list[tuple[Run, str]]:
    """Train every run not finished yet under ``root/runs/``: finished ones skipped, half-done ones resumed;
    then score the folds' ensemble of each cell whose folds are all finished (:mod:`.ensembles`, Table 3).

    Seed-major order, so a stopped reproduction leaves whole seeds of the table. Every run's status is
    read before anything trains, so a run held by another process stops the command before it writes.
    Where they train is :func:`poolskip.experiments.launch.launch`'s: ``jobs`` at once here, each on its own
    device (``devices``, default the visible GPUs), or one Slurm job per run (``launcher="slurm"``,
    ``slurm`` options, submitit's files under ``root/slurm``).
    """
    from ..launch import Job, launch
    from .ensembles import ensemble_jobs

    runs = sorted(runs, key=lambda r: r.seed)
    statuses = refuse_held(runs, root)  # read once, before anything is written
    todo, done = [], []
    for i, (r, status) in enumerate(zip(runs, statuses), 1):
        status = _prepare(r, status, root, i, len(runs), log)
        if status is None:
            done.append((r, "unavailable" if r.note else "skipped"))
        else:
            todo.append((i, r, status))
    n = len(runs)
    work = [
        Job(r.config, root / "runs" / r.name, status == "incomplete", f"[{i}/{n}] {r.name}", f"{r.row}, {_cell(r)}")
        for i, r, status in todo
    ]
    launch(work, launcher, jobs, devices, slurm, root / "slurm", log)
    done += [(r, "trained") for _, r, _ in todo]
    # Table 3's measurement, once a cell's folds are all trained: their ensemble on the test set
    scoring = ensemble_jobs(runs, root, log)
    if scoring:
        launch(scoring, launcher, jobs, devices, slurm, root / "slurm", log)
    return done


def _cell(r: Run) -> str:
    return f"fold {r.fold}" if getattr(r, "fold", None) is not None else f"seed {r.seed}"
