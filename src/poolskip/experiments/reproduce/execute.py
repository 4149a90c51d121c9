"""Running a reproduction's runs: finished ones skipped, half-done ones resumed, starts without a
checkpoint moved aside; ``jobs > 1`` trains several at once in spawned processes."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .plan import Run

__all__ = ["execute", "read_summary", "run_status"]


def run_status(run_dir: Path) -> str:
    """``finished`` (summary.json), ``partial`` (checkpoints/last.pt, resumable) or ``new``."""
    if (run_dir / "summary.json").is_file():
        return "finished"
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return "partial"
    return "new"


def read_summary(run_dir: Path) -> tuple[str, str, float, dict[str, Any]]:
    """``(metric, mode, final value, summary)`` of a finished run, new (``monitor``/``final``) or old format."""
    s = json.loads((Path(run_dir) / "summary.json").read_text())
    if "monitor" in s and "final" in s:
        return s["monitor"]["metric"], s["monitor"]["mode"], float(s["final"]), s
    if "final_error" in s:
        return "test_error", "min", float(s["final_error"]), s
    raise ValueError(f"{run_dir}/summary.json has neither monitor/final nor final_error: keys {sorted(s)}")


def _train_run(config: dict[str, Any], run_dir: str, resume: bool) -> None:
    """One run, in this or a worker process (a top-level function, so a spawned process can call it)."""
    from ...engine.config import make_config
    from ...engine.trainer import train

    train(make_config(config), run_dir, resume=resume)


def _prepare(r: Run, root: Path, i: int, n: int, log) -> str | None:
    """The run's status, after moving aside a start that never checkpointed; None if it needs no training."""
    run_dir = root / "runs" / r.name
    status = run_status(run_dir)
    if r.note:
        log(f"[{i}/{n}] {r.name}: not run ({r.note})")
        return None
    if status == "finished":
        log(f"[{i}/{n}] {r.name}: finished before, skipped")
        return None
    if status == "new" and run_dir.exists() and any(run_dir.iterdir()):
        stale = run_dir.with_name(f"{run_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        run_dir.rename(stale)  # started but never checkpointed: keep it aside, never delete it
        log(f"[{i}/{n}] {r.name}: an unfinished start without checkpoint moved to {stale.name}")
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    return status


def execute(runs: Sequence[Run], root: Path, log=print, jobs: int = 1) -> list[tuple[Run, str]]:
    """Train every run not finished yet under ``root/runs/``: finished ones skipped, half-done ones resumed.

    Seed-major order, so a stopped reproduction leaves whole seeds of the table. ``jobs > 1`` trains that
    many runs at once in separate processes (each with its own ``threads``): on a few busy CPU cores,
    several one-thread runs get more done than one multi-threaded run.
    """
    runs = sorted(runs, key=lambda r: r.seed)
    todo, done = [], []
    for i, r in enumerate(runs, 1):
        status = _prepare(r, root, i, len(runs), log)
        if status is None:
            done.append((r, "unavailable" if r.note else "skipped"))
        else:
            todo.append((i, r, status))
    if jobs <= 1:
        for i, r, status in todo:
            what = "resuming" if status == "partial" else "training"
            log(f"[{i}/{len(runs)}] {r.name}: {what} ({r.row}, seed {r.seed})")
            t = time.time()
            _train_run(r.config, str(root / "runs" / r.name), status == "partial")
            log(f"[{i}/{len(runs)}] {r.name}: done in {time.time() - t:.0f} s")
            done.append((r, "trained"))
        return done
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = []
        for i, r, status in todo:
            log(f"[{i}/{len(runs)}] {r.name}: queued ({r.row}, seed {r.seed})")
            futures.append((i, r, pool.submit(_train_run, r.config, str(root / "runs" / r.name), status == "partial")))
        for i, r, f in futures:
            f.result()  # a failed run raises here, after the others were given their chance
            log(f"[{i}/{len(runs)}] {r.name}: done")
            done.append((r, "trained"))
    return done
