"""The task contract: everything the training loop needs to know about a problem, and nothing more.

The engine (:mod:`poolskip.engine`) owns the optimiser, schedule, AMP, DDP, checkpoints, logging and
progress; a task owns its data, loss, evaluation and diagnostics probe. The loop never names a task or
a metric: it asks the task, and the task's :class:`Monitor` says which metric decides ``best.pt``, the
summary and ``poolskip report``.

A task is a class registered with :func:`register_task`, built as ``Task(ctx, state=None)``. ``ctx`` is a
:class:`TaskContext` the engine makes from the run's config: the task's own :attr:`Task.Options`, the
``data:`` section (:class:`~poolskip.config.DataConfig`), the global training batch, the evaluation batch,
the seed, ``channels_last`` and a :class:`~poolskip.dist.Dist` (this process's rank and device, with
``shard()`` for the loaders and ``all_reduce_sum()`` for the metrics). A task never sees the engine's
config, so it can be built and tested without it.

``state`` is what :meth:`Task.state` returned when a checkpoint was written (e.g. normalisation measured
on the training set): passed back when a task is rebuilt for ``eval``, ``diagnose`` or ``--resume`` so
the model sees its data exactly as in training. A task given a state first checks the data it found
against it (channels, classes, normalisation: what the state recorded) and raises :class:`StateMismatch`
naming both, before it prepares anything; the engine adds a generic check of the model's
:class:`ModelSpec` (input channels, classes) against the data for what a state does not record.

Beyond the contract a task may offer optional capabilities, each a runtime-checkable protocol that the
commands and experiments test with ``isinstance`` instead of naming tasks: :class:`CrossValidated`
(k-fold training, checked on the task class), :class:`PicturesPredictions` (a picture of its predictions),
:class:`HasNominalGeometry` (a config's :class:`NominalGeometry` from its context alone, without reading
data: what ``poolskip reproduce --dry-run`` counts costs on) and :class:`HasScoringCost` (what scoring one
evaluation input costs beyond its forward pass, for the dry run's time estimate).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from ..config import DataConfig
from ..data.errors import DatasetError
from ..dist import Dist
from ..models import ModelSpec

__all__ = [
    "Autocast",
    "CrossValidated",
    "HasNominalGeometry",
    "HasScoringCost",
    "ModelSpec",
    "Monitor",
    "NominalGeometry",
    "PictureExamples",
    "PicturesPredictions",
    "StateMismatch",
    "Task",
    "TaskContext",
    "check_state",
    "get_task",
    "list_tasks",
    "register_task",
]

#: ``autocast()`` returns the context manager a forward pass runs under (AMP or a no-op).
Autocast = Callable[[], AbstractContextManager]


class StateMismatch(DatasetError):
    """The data a task is rebuilt on differs from what its checkpoint's task state recorded (other channels,
    normalisation or classes): the message says what was stored and what was found."""


def check_state(stored: Mapping[str, Any], found: Mapping[str, Any], where: str) -> None:
    """Refuse data unlike a checkpoint's: a :class:`StateMismatch` naming, for every key of ``found`` that the
    state ``stored`` records with another value, both values (``where`` names the data found). A key the state
    lacks (written before it was recorded) is not compared."""
    keys = [k for k in found if k in stored and stored[k] != found[k]]
    if keys:
        raise StateMismatch(
            f"the checkpoint was trained on {', '.join(f'{k} {stored[k]!r}' for k in keys)}, but {where} has "
            f"{', '.join(f'{k} {found[k]!r}' for k in keys)}; point --data-dir/--dataset at data like the data "
            "it was trained on"
        )


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
class TaskContext:
    """What a task is built from (the engine makes it from the run's config; tests can write one directly)."""

    options: Any  # the task's own Options dataclass (the config section named after the task)
    data: DataConfig = field(default_factory=DataConfig)
    batch_size: int = 128  # the global training batch, split across processes by dist.shard()
    eval_batch_size: int = 1000  # samples per evaluation forward pass
    seed: int = 0  # the seed of the batch order and the augmentation
    channels_last: bool = False  # batches in channels_last memory format
    dist: Dist = field(default_factory=Dist)  # this process among the run's processes, and its device

    @property
    def device(self) -> torch.device:
        """The device batches and metrics live on (``dist.device``)."""
        return self.dist.device


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
        """The scalar mean loss of a probe batch, whose gradients the diagnostics measure.

        A mean per sample, or, where the task also has ``probe_loss_weight(targets)`` (optional), a mean over
        what that counts (e.g. the pixels not ignored), so that the diagnostics can combine probe batches
        into the loss of the whole probe set."""


# ------------------------------------------------------------------------------ optional capabilities


@runtime_checkable
class CrossValidated(Protocol):
    """A task trained as k folds of a cross-validation (checked on the task class, before any data is read)."""

    @classmethod
    def num_folds(cls, options: Any) -> int:
        """How many folds ``options`` split the training data into."""

    @classmethod
    def fold_options(
        cls, options: Any, fold: int | None, split_file: str | None = None, replace_split_file: bool = False
    ) -> Any:
        """A copy of ``options`` that trains fold ``fold`` and evaluates on its held-out part, or with
        ``fold=None`` trains on all the training data and evaluates on the test set; ``split_file``: where
        the folds are written once and read by every fold, where the options name none (None: keep the options'
        choice), or instead of theirs with ``replace_split_file``."""

    @classmethod
    def test_cases(cls, ctx: TaskContext) -> list[str] | None:
        """The labelled test cases of the data ``ctx`` names, which the folds' ensemble is scored on (empty where
        the data has none); None where the data cannot be read here."""


@dataclass(frozen=True)
class PictureExamples:
    """Evaluation samples with their ground truth and each model's prediction, ready to draw.

    2D (``spatial_dims == 2``): each sample is ``{"image": uint8 (H, W, 3), "target": (H, W), "preds":
    {name: (H, W)}}`` and ``palette`` colours the classes. 3D: each sample is one volume, ``{"image": (X, Y, Z)
    first channel, "target": (X, Y, Z), "preds": {name: (X, Y, Z)}, "slices": [z, ...]}``, drawn as those
    axial slices. ``classes`` names the classes for the pictures' legend (index = label value)."""

    spatial_dims: int
    samples: list[dict[str, Any]]
    palette: list[list[int]] | None = None
    classes: list[str] | None = None


@runtime_checkable
class PicturesPredictions(Protocol):
    """A task whose predictions can be drawn (label maps): ``poolskip report``'s prediction pictures."""

    def prediction_examples(self, models: Mapping[str, nn.Module], count: int = 3) -> PictureExamples:
        """``count`` evaluation samples (a fixed choice) with every model's prediction, at full resolution."""


@dataclass(frozen=True)
class NominalGeometry:
    """A config's data as a cost estimate sees it, told by the task from its context (no image or voxel read).

    The numbers are the dataset's standard copy (CIFAR's 50,000 / 10,000 images, VOC's trainaug set, ...),
    what the data folder's listing or headers tell (an ImageFolder tree's files, a 3D dataset's ``dataset.json``
    and NIfTI headers) or a stated assumption where only the data could tell and is not there (a CT volume's
    size after resampling), after the config's ``train_subset`` / ``eval_subset``. Evaluation is either whole
    inputs, ``eval_batch`` of them per forward pass, or sliding windows: ``eval_windows`` windows of shape
    ``eval_window`` per input (the mean over inputs of different sizes), ``eval_batch`` windows per forward
    pass; ``eval_shape`` is the largest input."""

    classes: int
    n_train: int  # training samples (images or volumes)
    n_eval: int  # evaluation samples (images or volumes)
    train_shape: tuple[int, ...]  # one training input (C, *spatial): the image, crop or patch
    eval_shape: tuple[int, ...]  # one evaluation input (C, *spatial): the image or the whole volume
    steps_per_epoch: int  # global optimisation steps in one epoch
    eval_batch: int  # inputs (whole, or windows) of one evaluation forward pass
    eval_window: tuple[int, ...] | None = None  # sliding-window evaluation: one window (C, *spatial); None: whole
    eval_windows: float = 1  # windows per evaluation input, their mean over the inputs (1: whole inputs)

    @property
    def model_spec(self) -> ModelSpec:
        """The channels, classes and spatial dims the model must have for these inputs."""
        return ModelSpec(self.train_shape[0], self.classes, len(self.train_shape) - 1)


@runtime_checkable
class HasNominalGeometry(Protocol):
    """A task class that knows a config's :class:`NominalGeometry` without reading the data (cost estimates)."""

    @classmethod
    def nominal_geometry(cls, ctx: TaskContext) -> NominalGeometry | None:
        """The nominal sizes, input shapes, steps per epoch and evaluation of ``ctx`` (its options, ``data:``
        section and batch sizes; nothing is read but, at most, a folder's listing), or None where only the
        data can tell (e.g. a folder of the user's own images without a count of classes)."""


@runtime_checkable
class HasScoringCost(Protocol):
    """A task class whose evaluation scores each input apart from its forward pass (a volume's surface distances:
    seconds, not the argmax's microseconds): what that costs, for ``poolskip reproduce --dry-run``."""

    @classmethod
    def scoring_seconds(cls, ctx: TaskContext) -> float | None:
        """Seconds to score one evaluation input of ``ctx`` after its forward pass, measured on this machine on
        what the data folder holds; None where it cannot be measured (no data folder)."""


# ------------------------------------------------------------------------------------------ registry


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
