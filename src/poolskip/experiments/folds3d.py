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
from ..tasks.segmentation3d import check_ensemble_members, check_ensemble_test_set, ensemble
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
    from the first run's config (same options, so the same spacing and patch: its test set is the one
    scored) and call :func:`ensemble`.

    Before any model predicts, the members are checked against each other and against the test set
    (:func:`~poolskip.tasks.segmentation3d.check_ensemble_members`, then, once the test set is read,
    :func:`~poolskip.tasks.segmentation3d.check_ensemble_test_set`): runs of another task, the same fold
    twice, a member that was trained or validated on a test case, or members whose data, channels,
    normalisation, classes, spacing or patch differ are a :class:`ConfigError` naming the member and why.
    One run is scored alone (``models: 1`` in the result): that fold's model on the test set, not an ensemble.

    ``load(run_dir, which, device) -> (model, info with "config" and "task_state")`` defaults to the engine's
    ``load_checkpoint``.
    """
    load = load_checkpoint if load is None else load
    if not run_dirs:
        raise ConfigError("ensemble needs at least one fold run directory")
    models, members, cfg = [], [], None
    for d in run_dirs:
        model, info = load(d, which, device)
        models.append(model.eval())
        members.append((str(d), info["task_state"]))
        c = make_config(info["config"])
        if cfg is None:
            cfg = c
            _cross_validated(cfg.task, f"ensemble member {d}: ")
        elif c.task != cfg.task:
            raise ConfigError(
                f"ensemble member {d} is a {c.task!r} run, {run_dirs[0]} a {cfg.task!r} run; an ensemble's "
                "members are folds of one run"
            )
    check_ensemble_members(members)
    test_cfg = copy.deepcopy(cfg)
    test_cfg.options = _cross_validated(cfg.task).fold_options(cfg.options, None)
    test_cfg.data.train_subset = None
    task = build_task(test_cfg, device)
    check_ensemble_test_set(task, members)
    return ensemble(task, models)


def _cross_validated(name: str, who: str = "") -> type[CrossValidated]:
    task = get_task(name)
    if not isinstance(task, CrossValidated):
        able = [t for t in list_tasks() if isinstance(get_task(t), CrossValidated)]
        raise ConfigError(f"{who}task {name!r} has no cross-validation folds (tasks with folds: {', '.join(able)})")
    return task
