"""The paper's 3D protocol on top of the engine: k-fold training that runs or resumes every fold, and the
folds' ensemble (softmax averaged) on the test set. The CLI can wire them as ``poolskip train --folds`` and
``poolskip ensemble RUN_DIR...``; the task itself is :mod:`poolskip.tasks.segmentation3d`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..engine.checkpoint import load_checkpoint
from ..engine.config import make_config
from ..engine.trainer import train
from ..tasks.segmentation3d import Segmentation3dTask, ensemble
from .results import run_status

__all__ = ["ensemble_runs", "run_folds"]


def run_folds(cfg, out_dir: str | Path, folds: Sequence[int] | None = None, log: Callable[[str], None] = print):
    """Train (or resume) every fold of ``cfg`` into ``out_dir/fold<k>``; finished folds are kept as they are.

    Returns the fold run directories. ``cfg`` is a segmentation3d :class:`~poolskip.engine.config.TrainConfig`;
    each fold gets a copy with ``segmentation3d.fold = k``; all folds share one splits file.
    """
    out_dir = Path(out_dir)
    folds = list(range(cfg.options.num_folds)) if folds is None else list(folds)
    base = copy.deepcopy(cfg)
    if base.options.split_file is None:  # one splits file for every fold, in the folds' folder
        base.options.split_file = str(out_dir / "splits.json")
    dirs = []
    for k in folds:
        run_dir = out_dir / f"fold{k}"
        dirs.append(run_dir)
        status = run_status(run_dir)
        if status == "finished":
            log(f"fold {k}: finished ({run_dir}), kept")
            continue
        c = copy.deepcopy(base)
        c.options.fold = k
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
    test_cfg.options.fold = -1
    test_cfg.data.train_subset = None
    task = Segmentation3dTask(test_cfg, torch.device(device))
    return ensemble(task, models)
