"""Tasks: what a problem brings to the one training loop (data, loss, evaluation, a diagnostics probe).

:mod:`.base` is the contract (:class:`Task` built from a :class:`TaskContext`, :class:`Monitor`,
:class:`ModelSpec`), the optional capabilities (:class:`CrossValidated`, :class:`PicturesPredictions`,
:class:`NominalSpec`) and the registry; each module beside it registers one task. ``list_tasks()`` names them.
"""

from . import classification, segmentation, segmentation3d  # noqa: F401  (importing registers the tasks)
from .base import (
    Autocast,
    CrossValidated,
    ModelSpec,
    Monitor,
    NominalSpec,
    PictureExamples,
    PicturesPredictions,
    Task,
    TaskContext,
    get_task,
    list_tasks,
    register_task,
)

__all__ = [
    "Autocast",
    "CrossValidated",
    "ModelSpec",
    "Monitor",
    "NominalSpec",
    "PictureExamples",
    "PicturesPredictions",
    "Task",
    "TaskContext",
    "get_task",
    "list_tasks",
    "register_task",
]
