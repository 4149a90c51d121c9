"""The paper's 3D protocol on top of the engine: k-fold training that runs or resumes every fold, and the
folds' ensemble (softmax averaged) on the test set. The CLI can wire them as ``poolskip train --folds`` and
``poolskip ensemble RUN_DIR...``; the task itself is :mod:`poolskip.tasks.segmentation3d`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..engine.checkpoint import load_checkpoint
from ..engine.config import ConfigError, make_config
from ..engine.trainer import build_task, train
from ..tasks import CrossValidated, get_task, list_tasks
from ..tasks.segmentation3d import ensemble
from .results import run_status

__all__ = ["ensemble_runs", "run_folds"]


def run_folds(cfg, out_dir: str | Path, folds: Sequence[int] | None = None, log: Callable[[str], None] = print):
    """Train (or resume) every fold of ``cfg`` into ``out_dir/fold<k>``; finished folds are kept as they are.

    Returns the fold run directories. ``cfg`` is the config of a :class:`~poolskip.tasks.CrossValidated`
    task; each fold gets a copy with the task's options for fold k; all folds share one splits file (in
    ``out_dir`` unless the options name one).
    """
    out_dir = Path(out_dir)
    task = _cross_validated(cfg.task)
    folds = list(range(task.num_folds(cfg.options))) if folds is None else list(folds)
    dirs = []
    for k in folds:
        run_dir = out_dir / f"fold{k}"
        dirs.append(run_dir)
        status = run_status(run_dir)
        if status == "finished":
            log(f"fold {k}: finished ({run_dir}), kept")
            continue
        c = copy.deepcopy(cfg)
        c.options = task.fold_options(cfg.options, k, str(out_dir / "splits.json"))
        resume = status == "incomplete"
        log(f"fold {k}: {'resuming' if resume else 'training'} -> {run_dir}")
        train(c, run_dir, resume=resume)
    return dirs


def ensemble_runs(
    run_dirs: Sequence[str | Path], which: str = "best", device: str = "cpu", load=None
) -> dict[str, Any]:
    """The folds' ensemble on the test set: load each fold run's model, build the task with ``fold: -1``
    (same options, so the same spacing and patch) and call :func:`ensemble`.

    ``load(run_dir, which, device) -> (model, info with "config")`` defaults to the engine's
    ``load_checkpoint``.
    """
    load = load_checkpoint if load is None else load
    models, cfg = [], None
    for d in run_dirs:
        model, info = load(d, which, device)
        models.append(model.eval())
        cfg = cfg if cfg is not None else make_config(info["config"])
    if cfg is None:
        raise ValueError("ensemble_runs needs at least one run directory")
    test_cfg = copy.deepcopy(cfg)
    test_cfg.options = _cross_validated(cfg.task).fold_options(cfg.options, None)
    test_cfg.data.train_subset = None
    return ensemble(build_task(test_cfg, device), models)


def _cross_validated(name: str) -> type[CrossValidated]:
    task = get_task(name)
    if not isinstance(task, CrossValidated):
        able = [t for t in list_tasks() if isinstance(get_task(t), CrossValidated)]
        raise ConfigError(f"task {name!r} has no cross-validation folds (tasks with folds: {', '.join(able)})")
    return task
