"""One training loop for every task: config, optimiser and schedule, AMP, DDP, checkpoints/resume, logging.

A task (:mod:`poolskip.tasks`) supplies data, loss, metrics and evaluation; :mod:`.trainer` is the loop,
:mod:`.config` the grouped config, :mod:`.optim` optimiser, parameter groups and schedules,
:mod:`.checkpoint` checkpoints (data, never code), :mod:`.rundir` a run directory and its one writer.
How to add a task: ``src/poolskip/engine/README.md``.
"""

from ..tasks import list_tasks
from .checkpoint import CheckpointError, load_checkpoint, model_from_config
from .config import ConfigError, TrainConfig, make_config
from .trainer import (
    Callback,
    NonFiniteLoss,
    NonFiniteMetric,
    build_task,
    evaluate,
    load_run_config,
    restore,
    task_context,
    train,
)

__all__ = [
    "Callback",
    "CheckpointError",
    "ConfigError",
    "NonFiniteLoss",
    "NonFiniteMetric",
    "TrainConfig",
    "model_from_config",
    "build_task",
    "evaluate",
    "list_tasks",
    "load_checkpoint",
    "load_run_config",
    "make_config",
    "restore",
    "task_context",
    "train",
]
