"""The paper's 3D protocol on top of the engine: k-fold training that runs or resumes every fold, and the
folds' ensemble (softmax averaged) on the test set. The CLI can wire them as ``poolskip train --folds`` and
``poolskip ensemble RUN_DIR...``; the task itself is :mod:`poolskip.tasks.segmentation3d`.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..engine.checkpoint import load_checkpoint
from ..engine.config import ConfigError, make_config
from ..engine.rundir import RunDir, RunDirError, confine
from ..engine.trainer import autocast_context, build_task, evaluation_precision, train
from ..errors import repeated
from ..tasks import CrossValidated, get_task, list_tasks
from ..tasks.segmentation3d import check_ensemble_members, check_ensemble_test_set, ensemble
from .results import STATUSES, config_change, config_differences, flat_config, run_status

__all__ = ["ensemble_runs", "fold_list", "plan_folds", "run_folds"]


def fold_list(cfg, folds: Sequence[int] | None) -> list[int]:
    """The folds ``--folds`` names (all of the task's folds when None or empty), checked before anything is
    written: the task has folds, each is one of them, none is named twice."""
    task = get_task(cfg.task)
    if not isinstance(task, CrossValidated):
        able = ", ".join(t for t in list_tasks() if isinstance(get_task(t), CrossValidated))
        raise ConfigError(f"--folds needs a task with cross-validation folds ({able}); task is {cfg.task}")
    n = task.num_folds(cfg.options)
    if not folds:
        return list(range(n))
    bad = [k for k in folds if not 0 <= k < n]
    if bad:
        raise ConfigError(f"--folds {bad[0]}: {cfg.task} with {n} folds has folds 0..{n - 1}")
    twice = repeated(folds)
    if twice:
        raise ConfigError(f"--folds names fold {twice[0]} twice; name each fold once")
    return list(folds)


def plan_folds(
    cfg, out_dir: str | Path, folds: Sequence[int] | None = None, overwrite: bool = False
) -> list[tuple[int, Path, str]]:
    """What :func:`run_folds` does with each fold, checked and decided before anything is written:
    ``(k, run_dir, action)`` with action ``keep`` (finished), ``resume`` (checkpointed), ``restart`` (stopped
    before its first checkpoint: nothing to resume, trained afresh) or ``train``; with ``overwrite`` every
    fold is trained afresh. A fold another process is writing, a fold directory that is a link leading out of
    ``out_dir``, or a fold to keep or resume that was trained with another config (its number would enter this
    config's ensemble) is refused."""
    out_dir = Path(out_dir)
    task = _cross_validated(cfg.task)
    plan = []
    for k in fold_list(cfg, folds):
        run_dir = out_dir / f"fold{k}"
        if os.path.lexists(run_dir):
            confine(run_dir, out_dir)
        status = run_status(run_dir)
        if status == "running":
            raise RunDirError(
                f"fold {k} ({run_dir}) is being written by another process; one run directory has one writer"
            )
        if overwrite:
            action = "train"
        else:
            action = {"finished": "keep", "incomplete": "resume", "stale": "restart"}.get(status, "train")
        if action in ("keep", "resume"):
            changed = config_change(_fold_config(cfg, task, k, out_dir).to_dict(), run_dir)
            if changed:
                raise RunDirError(
                    f"fold {k} ({run_dir}) was trained with {changed}; train the folds afresh with --overwrite, "
                    "into another --out-dir, or go on with that fold's own config (train --resume)"
                )
        if action != "keep":
            RunDir(run_dir).check(resume=action == "resume", overwrite=action != "resume")
        plan.append((k, run_dir, action))
    return plan


#: The one splits file of a folds folder, shared by its folds (unless their options name another).
SPLITS_FILE = "splits.json"


def run_folds(
    cfg,
    out_dir: str | Path,
    folds: Sequence[int] | None = None,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
):
    """Train (or resume) every fold of ``cfg`` into ``out_dir/fold<k>``; finished folds are kept as they are,
    a fold that stopped before its first checkpoint is trained afresh, ``overwrite`` trains every fold
    afresh (see :func:`plan_folds`).

    Returns the fold run directories. ``cfg`` is the config of a :class:`~poolskip.tasks.CrossValidated`
    task; each fold gets a copy with the task's options for fold k; all folds share one splits file (in
    ``out_dir`` unless the options name one).
    """
    out_dir = Path(out_dir)
    task = _cross_validated(cfg.task)
    plan = plan_folds(cfg, out_dir, folds, overwrite)
    split_file = out_dir / SPLITS_FILE
    made_splits = not split_file.exists()
    for k, run_dir, action in plan:
        if action == "keep":
            log(f"fold {k}: finished ({run_dir}), kept")
            continue
        c = _fold_config(cfg, task, k, out_dir)
        said = {"resume": "resuming", "restart": "stopped before its first checkpoint; training afresh"}
        log(f"fold {k}: {said.get(action, 'training')} -> {run_dir}")
        try:
            train(c, run_dir, resume=action == "resume", overwrite=action != "resume")
        except BaseException:
            # a fold that failed before anything was written leaves no splits file it made for nothing
            if made_splits and not any(os.path.lexists(d) for _, d, _ in plan):
                split_file.unlink(missing_ok=True)
            raise
    return [run_dir for _, run_dir, _ in plan]


def _fold_config(cfg, task, k: int, out_dir: Path):
    """``cfg`` for fold ``k``: the task's options for that fold, the splits file shared in ``out_dir`` unless
    the options name one. The shared file is named by its absolute path: a fold's config is read again from
    other working directories (``ensemble``, ``--resume``), where ``runs/...`` would name another file."""
    c = copy.deepcopy(cfg)
    c.options = task.fold_options(cfg.options, k, str((out_dir / SPLITS_FILE).resolve()))
    return c


def ensemble_runs(
    run_dirs: Sequence[str | Path],
    which: str = "best",
    device: str = "cpu",
    load=None,
    allow_external_model: bool = False,
    data_dir: str | Path | None = None,
    amp: str | None = None,
) -> dict[str, Any]:
    """The folds' ensemble on the test set: load each fold run's model, build the task with ``fold: -1``
    from the first run's config (same options, so the same spacing and patch: its test set is the one
    scored; ``data_dir``: where that data is on this machine, default the run's) and call :func:`ensemble`
    under the runs' mixed precision (``run.amp``, as their own evaluations; ``amp`` instead where given:
    :func:`~poolskip.engine.trainer.evaluation_precision`). The result adds ``models`` and ``amp``.

    Before any model is loaded, each member (a run directory, or a checkpoint file in a run's
    ``checkpoints/``) must be a finished run (:func:`~poolskip.experiments.results.run_status`: its
    summary.json written): a fold still training, stopped or killed mid-way has a ``best.pt`` already, and its
    half-trained model would lower the ensemble's score. Before any model predicts, the members are checked
    against each other and against the test set
    (:func:`~poolskip.tasks.segmentation3d.check_ensemble_members`, then their configs, then, once the test set
    is read, :func:`~poolskip.tasks.segmentation3d.check_ensemble_test_set`): runs of another task, the same
    fold twice, a member that was trained or validated on a test case, members whose data, channels,
    normalisation, classes, spacing or patch differ, or a member whose checkpoint's config differs from the
    first's in anything but its fold and where it ran (:data:`~poolskip.experiments.results.LOCAL_KEYS`: the
    model, ``pool_skip``, ``model_kwargs``, optimiser, epochs, seed, sliding-window overlap, ...) are a
    :class:`ConfigError` naming the member and why. One run is scored alone (``models: 1`` in the result):
    that fold's model on the test set, not an ensemble. A refused ensemble writes no file (a refusal against the
    test set comes after its volumes were read into the preprocessing cache).

    ``load(run_dir, which, device) -> (model, info with "config" and "task_state")`` defaults to the engine's
    ``load_checkpoint`` (importing a ``package.module:factory`` model a run names only with
    ``allow_external_model``).
    """
    load = partial(load_checkpoint, allow_external=allow_external_model) if load is None else load
    if not run_dirs:
        raise ConfigError("ensemble needs at least one fold run directory")
    for d in run_dirs:
        _check_finished(d)
    models, members, tests, task_cls = [], [], [], None
    for d in run_dirs:
        model, info = load(d, which, device)
        models.append(model.eval())
        members.append((str(d), info["task_state"]))
        c = make_config(info["config"])
        if task_cls is None:
            task_cls = _cross_validated(c.task, f"ensemble member {d}: ")
        elif c.task != tests[0].task:
            raise ConfigError(
                f"ensemble member {d} is a {c.task!r} run, {run_dirs[0]} a {tests[0].task!r} run; an ensemble's "
                "members are folds of one run"
            )
        c.options = task_cls.fold_options(c.options, None)  # its config as every fold's: the test set's options
        tests.append(c)
    check_ensemble_members(members)
    configs = [c.to_dict() for c in tests]
    for d, config in zip(run_dirs[1:], configs[1:]):
        changed = config_differences(config, configs[0])
        if changed:
            k, theirs, ours = changed[0], flat_config(config), flat_config(configs[0])
            raise ConfigError(
                f"ensemble member {d} was trained with {k} {theirs[k]!r} where {run_dirs[0]} has {ours[k]!r} "
                f"(keys that differ: {', '.join(changed)}); an ensemble's members are folds of one config "
                "(poolskip train --folds)"
            )
    test_cfg = tests[0]  # the first run's config, its fold options the test set's
    test_cfg.data.train_subset = None
    if data_dir is not None:
        test_cfg.data.data_dir = str(data_dir)
    where = torch.device(device)
    precision = evaluation_precision(amp, test_cfg.run.amp, where, str(run_dirs[0]))
    with tempfile.TemporaryDirectory(prefix="poolskip-ensemble-") as tmp:
        # a scoring command writes no splits file (the runs' may be elsewhere, or a relative path that would be
        # written under the working directory): the test set is the layout's, the same in any splits file
        test_cfg.options = task_cls.fold_options(test_cfg.options, None, str(Path(tmp) / SPLITS_FILE), True)
        task = build_task(test_cfg, device)
    check_ensemble_test_set(task, members)
    return {**ensemble(task, models, autocast_context(precision, where)), "amp": precision}


def _check_finished(member: str | Path) -> None:
    """Refuse an ensemble member that is not a finished run: a run directory, or a checkpoint file in a run's
    ``checkpoints/`` (read as its run), whose :func:`run_status` is not ``finished``."""
    path = Path(member)
    if not os.path.lexists(path):
        raise ConfigError(f"ensemble member {member}: no such run directory or checkpoint file")
    run_dir = path if path.is_dir() else path.parent.parent if path.parent.name == "checkpoints" else None
    if run_dir is None:
        raise ConfigError(
            f"ensemble member {member} is a checkpoint file outside a run's checkpoints/ folder: whether its run "
            "finished cannot be told; give the fold's run directory"
        )
    status = run_status(run_dir)
    if status != "finished":
        raise ConfigError(
            f"ensemble member {member}: its run {run_dir} has not finished ({status}: {STATUSES[status]}); a fold "
            "still training or stopped before its last epoch would lower the ensemble's score: finish it "
            "(poolskip train --folds resumes it) or leave it out"
        )


def _cross_validated(name: str, who: str = "") -> type[CrossValidated]:
    task = get_task(name)
    if not isinstance(task, CrossValidated):
        able = [t for t in list_tasks() if isinstance(get_task(t), CrossValidated)]
        raise ConfigError(f"{who}task {name!r} has no cross-validation folds (tasks with folds: {', '.join(able)})")
    return task
