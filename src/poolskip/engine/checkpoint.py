"""Checkpoints are data: read with ``torch.load(..., weights_only=True)``, and a model named in one is built
only from the registry unless the user opts in to importing code (``allow_external_model``).

A checkpoint holds the model weights, the epoch, the resolved config, the task's
:meth:`~poolskip.tasks.Task.state` and the :class:`~poolskip.tasks.ModelSpec` the model was built for, so
``eval`` and ``diagnose`` rebuild both without the training data's statistics being measured again.
``last.pt`` adds what a resume needs (optimiser, scaler, RNG, position in the epoch, history);
``best.pt`` adds only the monitored metric's value.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import PoolskipError, did_you_mean, torch_load_failure
from ..files import atomic_save
from ..models import ModelSpec, build, list_models
from .config import ConfigError, TrainConfig, make_config

__all__ = [
    "FORMAT",
    "CheckpointError",
    "model_from_config",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "stored_model_spec",
]

#: the checkpoint layout's version; files without it are refused with a clear message
FORMAT = 2
REQUIRED = ("format", "model", "config", "task_state", "model_spec", "epoch")


class CheckpointError(PoolskipError):
    """A checkpoint is missing, corrupt, foreign, or names code the user did not allow."""


#: Model factory options that only initialise weights (a file read, or weights downloaded): a model whose weights a
#: checkpoint then replaces is built without them, so a checkpoint loads (and a run resumes) where that file is not.
INITIAL_WEIGHTS = ("backbone_weights",)


def model_from_config(
    cfg: TrainConfig, spec: ModelSpec, allow_external: bool = True, initial_weights: bool = True
) -> nn.Module:
    """The model of ``cfg`` fitted to ``spec`` by :func:`poolskip.models.build`, every error a ConfigError
    naming the model; ``model_kwargs`` win over what the spec offers. ``package.module:factory`` is imported
    only with ``allow_external`` (the user named it, rather than a checkpoint or run config they are loading).
    ``initial_weights=False`` (the weights come from a checkpoint next) leaves out :data:`INITIAL_WEIGHTS`.
    """
    if ":" in cfg.model and not allow_external:
        raise CheckpointError(
            f"this run's model is {cfg.model!r}, code from outside poolskip; loading a checkpoint never imports "
            "what the file names: pass --allow-external-model if you trust it"
        )
    if ":" not in cfg.model and cfg.model not in list_models():
        raise ConfigError(
            f"unknown model {cfg.model!r}{did_you_mean(cfg.model, list_models())} (known: "
            f"{', '.join(list_models())}, or package.module:factory)"
        )
    kwargs = {k: v for k, v in cfg.model_kwargs.items() if initial_weights or k not in INITIAL_WEIGHTS}
    try:
        return build(cfg.model, spec, cfg.pool_skip, **kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(
            f"model {cfg.model!r} for task {cfg.task!r} on {cfg.data.dataset!r} (model_kwargs {cfg.model_kwargs}, "
            f"pool_skip {cfg.pool_skip!r}): {e}"
        ) from None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (plus the format version) atomically. A failed write (disk full, file-size limit,
    read-only directory) is a :class:`CheckpointError` (exit code 1) saying what failed and what was kept."""
    path = Path(path)
    try:
        atomic_save({"format": FORMAT, **state}, path)
    except OSError as e:
        kept = (
            f"the last good checkpoint, {path}, is kept as it was"
            if path.is_file()
            else f"no earlier {path.name} was written, so none is kept"
        )
        error = CheckpointError(f"writing checkpoint {path} failed ({e.strerror or e}); {kept}")
        error.exit_code = 1
        raise error from None


def stored_model_spec(file: str | os.PathLike, raw: Any) -> ModelSpec:
    """The :class:`ModelSpec` a checkpoint stored, every key checked: a CheckpointError naming ``file`` and the
    key for a missing, unknown or ill-typed one (the file is data; a crafted one must not reach the model
    factory as a traceback)."""
    if not isinstance(raw, dict):
        raise CheckpointError(f"{file}: 'model_spec' must be a mapping, got {type(raw).__name__}")
    known = {f.name for f in dataclasses.fields(ModelSpec)}
    unknown = sorted(map(str, set(raw) - known))
    missing = [k for k in ("in_channels", "num_classes") if k not in raw]
    if unknown or missing:
        parts = ([f"unknown keys {unknown}"] if unknown else []) + ([f"no {missing}"] if missing else [])
        what = "; ".join(parts)
        raise CheckpointError(f"{file}: 'model_spec' has {what} (expected {sorted(known)})")
    for key, low in (("in_channels", 1), ("num_classes", 1), ("spatial_dims", 1)):
        value = raw.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise CheckpointError(f"{file}: 'model_spec.{key}' must be an integer >= {low}, got {value!r}")
    if raw.get("spatial_dims", 2) > 3:
        raise CheckpointError(f"{file}: 'model_spec.spatial_dims' must be 1, 2 or 3, got {raw['spatial_dims']!r}")
    hints = raw.get("hints", {})
    if not isinstance(hints, dict) or not all(isinstance(k, str) for k in hints):
        raise CheckpointError(f"{file}: 'model_spec.hints' must be a mapping of factory keywords, got {hints!r}")
    return ModelSpec(**raw)


def read_checkpoint(file: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The checkpoint dict at ``file``; every failure is a CheckpointError naming the file."""
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"{file} not found: expected a checkpoint written by `poolskip train`")
    try:
        with warnings.catch_warnings():  # torch warns of a non-torch pickle protocol before refusing it below
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            ck = torch.load(file, map_location=device, weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holding objects that are not plain data
        reason = torch_load_failure(e)
        hint = ""
        if file.name == "last.pt" and (file.parent / "best.pt").is_file():
            hint = (
                f"; {file.parent / 'best.pt'} is a separate file with the best weights (eval, diagnose and "
                "ensemble read it with --which best), but without the optimiser state a resume needs"
            )
        raise CheckpointError(f"{file} is corrupt or not a poolskip checkpoint ({reason}){hint}") from None
    if not isinstance(ck, dict) or any(k not in ck for k in REQUIRED):
        missing = [k for k in REQUIRED if not isinstance(ck, dict) or k not in ck]
        raise CheckpointError(
            f"{file} is not a checkpoint of this poolskip version (format {FORMAT}): it lacks {missing}"
        )
    return ck


def load_checkpoint(
    path: str | os.PathLike, which: str = "last", device: str | torch.device = "cpu", allow_external: bool = False
) -> tuple[nn.Module, dict[str, Any]]:
    """``(model, info)`` from a run directory (``checkpoints/<which>.pt``) or a checkpoint file.

    The model is rebuilt from the stored config and :class:`ModelSpec` (registered models only, unless
    ``allow_external``), its weights loaded, in eval mode on ``device``. ``info`` is the checkpoint without
    the model and optimiser states, plus ``path``.
    """
    path = Path(path)
    file = path / "checkpoints" / f"{which}.pt" if path.is_dir() else path
    ck = read_checkpoint(file, device)
    if not isinstance(ck["config"], dict):
        kind = type(ck["config"]).__name__
        raise CheckpointError(f"{file}: its 'config' must be a mapping of config keys, got {kind}")
    try:
        cfg = make_config(ck["config"])
    except ConfigError as e:
        raise CheckpointError(f"{file}: its stored config is invalid: {e}") from None
    model = model_from_config(cfg, stored_model_spec(file, ck["model_spec"]), allow_external, initial_weights=False)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{file}: its weights do not fit the model its config describes ({e})") from None
    model.to(device).eval()
    info = {k: v for k, v in ck.items() if k not in ("model", "optimizer", "scaler", "rng")}
    info["path"] = str(file)
    return model, info
