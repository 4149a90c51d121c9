"""The task contract: everything the training loop needs to know about a problem, and nothing more.

The engine (:mod:`poolskip.engine`) owns the optimiser, schedule, AMP, DDP, checkpoints, logging and
progress; a task owns its data, loss, evaluation and diagnostics probe. The loop never names a task or
a metric: it asks the task, and the task's :class:`Monitor` says which metric decides ``best.pt``, the
summary and ``poolskip report``.

A task is a class registered with :func:`register_task`. It is built as
``Task(cfg, device, rank=0, world_size=1, state=None)`` where ``cfg`` is the run's resolved
:class:`~poolskip.engine.config.TrainConfig`; a task reads only these parts of it:

- ``cfg.options``: its own :attr:`Task.Options` dataclass (the config section named after the task);
- ``cfg.data``: ``dataset``, ``data_dir``, ``download``, ``cache_dir``, ``train_subset``;
- ``cfg.optim.batch_size`` (the global training batch) and ``cfg.run``: ``eval_batch_size``, ``seed``,
  ``channels_last``.

``state`` is what :meth:`Task.state` returned when a checkpoint was written (e.g. normalisation measured
on the training set): passed back when a task is rebuilt for ``eval``, ``diagnose`` or ``--resume`` so
the model sees its data exactly as in training.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["Autocast", "Monitor", "ModelSpec", "Task", "get_task", "list_tasks", "register_task"]

#: ``autocast()`` returns the context manager a forward pass runs under (AMP or a no-op).
Autocast = Callable[[], AbstractContextManager]


@dataclass(frozen=True)
class Monitor:
    """The metric that ranks evaluations: ``best.pt``, the summary's ``best`` and ``report`` follow it."""

    metric: str  # a key of Task.evaluate()'s result, e.g. "test_error", "miou", "dice"
    mode: str  # "min" (lower is better) or "max"

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"Monitor mode must be 'min' or 'max', got {self.mode!r}")

    def better(self, value: float, than: float) -> bool:
        """Whether ``value`` is strictly better than ``than`` (NaN is never better)."""
        if value != value:
            return False
        return value < than if self.mode == "min" else value > than

    def best_index(self, values: Sequence[float]) -> int:
        """Index of the best of ``values`` (the first one on ties)."""
        best = 0
        for i, v in enumerate(values):
            if self.better(v, values[best]):
                best = i
        return best


@dataclass(frozen=True)
class ModelSpec:
    """What the model factory must be told to fit a task's data (MONAI's ``spatial_dims`` convention).

    ``hints`` are optional factory keywords a task can fill in, passed only to factories that take them
    (e.g. ``patch_size`` and ``spacing`` for nnU-Net's planner); ``model_kwargs`` from the config win.
    """

    in_channels: int
    num_classes: int
    spatial_dims: int = 2
    hints: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Task(Protocol):
    """The whole contract between the loop and a problem. See the module docstring for construction."""

    name: ClassVar[str]  # the registry name, the ``task:`` config value and the config section of Options
    Options: ClassVar[type]  # a dataclass of the task's own config keys, with defaults and field comments
    monitor: ClassVar[Monitor]

    def model_spec(self) -> ModelSpec:
        """Input channels, classes and spatial dims the model must have."""

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores to rebuild this task exactly (plain Python values / tensors only:
        checkpoints are loaded with ``weights_only=True``)."""

    def describe(self) -> str:
        """One line for the run log, e.g. ``"1,347 train / 450 test images, 10 classes"``."""

    def steps_per_epoch(self) -> int:
        """Global optimisation steps in one epoch."""

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Any]:
        """This process's share of each training batch of ``epoch`` from step ``start`` on, as
        :class:`poolskip.data.Batch` ``(inputs, targets, global_size)``. Batch ``b`` of epoch ``e`` must be a
        function of (seed, e, b) only, so a resumed run sees exactly the batches it would have seen."""

    def loss(self, outputs: Any, targets: Any) -> torch.Tensor:
        """Per-sample training losses, shape (N,) for this process's N samples; the loop sums them and
        divides by the global batch size, so DDP and one process give the same gradient."""

    def evaluate(self, model: nn.Module, autocast: Autocast) -> dict[str, Any]:
        """Metrics on the evaluation split, reduced over all processes (every rank gets the same values).

        The loop calls it under ``torch.no_grad()`` with the model in eval mode, every ``run.eval_every``
        epochs and after the last one; ``autocast()`` is the forward pass's precision context.

        Scalars are floats (logged per evaluation and to TensorBoard); per-class values may be lists of
        floats (kept in metrics.jsonl and summary.json). Must hold ``monitor.metric``."""

    def probe_batch(self, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch of ``n`` evaluation samples ``(inputs, targets)`` chosen by ``seed``, prepared as
        the model sees them in evaluation, for the diagnostics."""

    def probe_loss(self, outputs: Any, targets: torch.Tensor) -> torch.Tensor:
        """The scalar mean loss of a probe batch, whose gradients the diagnostics measure."""


_TASKS: dict[str, type] = {}

_REQUIRED = ("name", "Options", "monitor")


def register_task(cls: type) -> type:
    """Class decorator: register a task class under ``cls.name``."""
    missing = [a for a in _REQUIRED if not hasattr(cls, a)]
    if missing:
        raise TypeError(f"task class {cls.__name__} lacks {missing}")
    if cls.name in _TASKS and _TASKS[cls.name] is not cls:
        raise ValueError(f"a task named {cls.name!r} is already registered")
    _TASKS[cls.name] = cls
    return cls


def list_tasks() -> list[str]:
    """Registered task names, sorted."""
    return sorted(_TASKS)


def get_task(name: str) -> type:
    """The task class registered as ``name`` (a ValueError naming the known tasks otherwise)."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}") from None
