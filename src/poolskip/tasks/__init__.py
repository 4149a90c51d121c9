"""Tasks: what a problem brings to the one training loop (data, loss, evaluation, a diagnostics probe).

:mod:`.base` is the contract (:class:`Task`, :class:`Monitor`, :class:`ModelSpec`) and the registry;
each module beside it registers one task. ``list_tasks()`` names them.
"""

from . import classification, segmentation, segmentation3d  # noqa: F401  (importing registers the tasks)
from .base import Autocast, ModelSpec, Monitor, Task, get_task, list_tasks, register_task

__all__ = ["Autocast", "ModelSpec", "Monitor", "Task", "get_task", "list_tasks", "register_task"]
