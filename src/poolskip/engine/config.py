"""The training configuration, grouped by owner: defaults < recipe < command line.

A config has four top-level keys (``task``, ``model``, ``model_kwargs``, ``pool_skip``) and sections:

- ``data``: where the dataset is (:class:`DataConfig`);
- ``optim``: optimiser, schedule and the length of training (:class:`OptimConfig`);
- ``run``: device, precision, seeds, evaluation and checkpoint cadence, output (:class:`RunConfig`);
- one section named after the task (e.g. ``classification:``), holding the task's own ``Options``
  (augmentation, normalisation, loss settings...): see ``poolskip train --print-config``.

Recipes and ``--set`` may name a key as ``section.key``, as a nested mapping (``optim: {lr: 0.1}``) or
by its bare name (``lr``) when that name is unique, which is how every key of the former flat config
still works. An unknown key or a wrong value is a :class:`ConfigError` that names the key, the value and
what is allowed (the closest known key for a typo).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import ConfigError, DataConfig, check_value, coerce, describe_range
from ..config import option as opt
from ..errors import did_you_mean
from ..tasks import get_task, list_tasks

__all__ = [
    "ConfigError",
    "DataConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "describe_keys",
    "make_config",
    "parse_set",
    "read_yaml",
]


#: the largest learning rate a config accepts, and why (the range error and the config reference say it)
LR_MAX = 10.0
LR_WHY = "the recipes use at most 0.1; a rate this large diverges within the first steps"


@dataclass
class OptimConfig:
    """The optimiser, its learning-rate schedule and the length of training."""

    epochs: int = opt(200, "training epochs", min=1)
    batch_size: int = opt(128, "the global batch, split across processes under torchrun", min=1)
    optimizer: str = opt("sgd", "optimiser", choices=("sgd", "adamw"))
    lr: float = opt(0.1, "peak learning rate", min=0.0, max=LR_MAX, why=LR_WHY)
    momentum: float = opt(
        0.9, "SGD momentum", min=0.0, below=1.0, why="at 1 SGD never forgets a gradient and does not converge"
    )
    nesterov: bool = opt(True, "SGD Nesterov momentum")
    betas: list[float] = opt([0.9, 0.999], "AdamW betas")
    weight_decay: float = opt(
        5e-4, "weight decay", min=0.0, max=1.0, why="the recipes use at most 0.06; more shrinks the weights to 0"
    )
    schedule: str = opt(
        "multistep",
        "learning-rate schedule, set every iteration: multistep (x gamma after each milestone epoch), cosine "
        "(to min_lr), poly ((1 - t/T)^power, DeepLab's), constant",
        choices=("multistep", "cosine", "poly", "constant"),
    )
    milestones: list[int] = opt([60, 120, 160], "multistep: epochs after which lr *= gamma")
    gamma: float = opt(
        0.2, "multistep: the factor at each milestone", above=0.0, max=1.0,
        why="the rate is multiplied by it at each milestone: 0 stops learning, above 1 the rate grows",
    )  # fmt: skip
    min_lr: float = opt(0.0, "cosine and poly: the final learning rate, at most lr", min=0.0, max=LR_MAX, why=LR_WHY)
    power: float = opt(
        0.9, "poly: the exponent", above=0.0, max=10.0,
        why="DeepLab's is 0.9; a larger one drops the rate to almost 0 within the first epochs",
    )  # fmt: skip
    warmup_epochs: float = opt(0.0, "linear warm-up over this many epochs (per iteration), then the schedule", min=0.0)
    grad_clip: float = opt(0.0, "clip the global gradient norm to this value (0 = off)", min=0.0)
    lr_mult: dict[str, float] = opt(
        {}, "learning-rate multiplier per module-name prefix, e.g. {backbone: 0.1} (DeepLab's backbone rate)"
    )

    def check(self) -> None:
        """AdamW's two betas in [0, 1) (torch.optim.AdamW refuses others only when the optimiser is built)."""
        if len(self.betas) != 2 or not all(math.isfinite(b) and 0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"config key 'optim.betas' must be two numbers in [0, 1), got {self.betas}")
        bad = {k: v for k, v in self.lr_mult.items() if not (math.isfinite(v) and v >= 0.0)}
        if bad:
            raise ValueError(f"config key 'optim.lr_mult' needs finite multipliers >= 0, got {bad}")
        high = {k: v for k, v in self.lr_mult.items() if self.lr * v > LR_MAX}
        if high:
            raise ValueError(
                f"config key 'optim.lr_mult' {high} with lr {self.lr} gives a rate above {LR_MAX} ({LR_WHY})"
            )
        if self.schedule in ("cosine", "poly") and self.min_lr > self.lr:
            raise ValueError(
                f"config key 'optim.min_lr' ({self.min_lr}) must be at most 'optim.lr' ({self.lr}): the "
                f"{self.schedule} schedule goes from lr down to min_lr"
            )


@dataclass
class RunConfig:
    """How and where a run executes: hardware, precision, seed, cadence, output."""

    device: str = opt("auto", "auto | cpu | cuda | cuda:N")
    amp: str = opt("none", "mixed precision (fp16 only on CUDA)", choices=("none", "bf16", "fp16"))
    channels_last: bool = opt(False, "channels_last memory format for the model and the batches")
    compile: bool = opt(False, "torch.compile the model")
    threads: int | None = opt(None, "CPU threads for torch (torch.set_num_threads); null = PyTorch's default", min=1)
    deterministic: bool = opt(False, "torch.use_deterministic_algorithms (bit-exact resume on CPU)")
    sync_bn: bool = opt(False, "SyncBatchNorm under torchrun (CUDA only)")
    seed: int = opt(
        0, "the seed of the model's initialisation, the batch order and the augmentation", min=0, max=2**63 - 1
    )
    eval_batch_size: int = opt(1000, "samples per evaluation forward pass", min=1)
    eval_every: int = opt(1, "evaluate every N epochs (and always after the last)", min=1)
    checkpoint_every: int = opt(
        0, "also checkpoint every N training steps inside an epoch (0 = epoch ends only)", min=0
    )
    diagnostics_every: int = opt(
        0, "every N epochs, log poolskip.diagnostics measures on a fixed probe batch (0 = off)", min=0
    )
    out_dir: str = opt("runs", "run directories go under here")
    run_name: str | None = opt(None, "run directory name under out_dir (default: <time>_<dataset>_<model>_<placement>)")


SECTIONS: dict[str, type] = {"data": DataConfig, "optim": OptimConfig, "run": RunConfig}
TOP_LEVEL_HELP = {
    "task": "what is trained: a registered task (poolskip.engine.list_tasks())",
    "model": "a poolskip.models name, or package.module:factory for your own (see --allow-external-model)",
    "model_kwargs": "keyword arguments for the model factory, e.g. {width: 16}",
    "pool_skip": "null/false = plain; true (the paper's placement), a policy name, a pool size or a dict of convert()",
}


@dataclass
class TrainConfig:
    """What one training run does: ``task``, the model, and the data / optim / run / task sections."""

    task: str = "classification"
    model: str = "resnet18"
    model_kwargs: dict = field(default_factory=dict)
    pool_skip: Any = None
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    options: Any = None  # the task's Options, written as the section named after the task

    def to_dict(self) -> dict[str, Any]:
        """The nested mapping ``config.yaml`` holds (and :func:`make_config` reads back)."""
        out = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in vars(self).items()}
        out[self.task] = out.pop("options")
        return out


# --------------------------------------------------------------------------------------- resolving


def _sections(task: str) -> dict[str, type]:
    return {**SECTIONS, task: get_task(task).Options}


def _model_options(model: str | None) -> list[str]:
    """The keyword arguments a registered model's factory takes (besides the ones the engine fills in)."""
    from ..models import factory_parameters, list_models

    if not isinstance(model, str) or model not in list_models():
        return []  # an outside factory is not imported to read its signature
    return [p for p in factory_parameters(model) or [] if p not in ("num_classes", "pool_skip")]


def _leaves(task: str, model: str | None = None) -> dict[str, tuple[str, ...]]:
    """Every accepted key spelling -> its canonical path, e.g. "lr" and "optim.lr" -> ("optim", "lr"); the
    model factory's own options too (``backbone_weights`` -> ``("model_kwargs", "backbone_weights")``)."""
    out: dict[str, tuple[str, ...]] = {k: (k,) for k in TOP_LEVEL_HELP}
    bare: dict[str, list[tuple[str, ...]]] = {}
    for section, cls in _sections(task).items():
        for f in dataclasses.fields(cls):
            out[f"{section}.{f.name}"] = (section, f.name)
            bare.setdefault(f.name, []).append((section, f.name))
    for name, paths in bare.items():
        if len(paths) == 1 and name not in out:
            out[name] = paths[0]
    for name in _model_options(model):
        out[f"model_kwargs.{name}"] = ("model_kwargs", name)
        out.setdefault(name, ("model_kwargs", name))
    return out


def _unknown(key: str, known: list[str]) -> ConfigError:
    containing = sorted((k for k in known if key in k), key=len)
    close = containing[:1] or difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint} (see `poolskip train --print-config` for all keys)")


def _flatten(layers: tuple[dict[str, Any], ...], task: str, model: str | None) -> list[tuple[tuple[str, ...], Any]]:
    """The layers' (canonical path, value) pairs in order; section mappings are opened, other tasks' sections
    refused."""
    leaves, sections = _leaves(task, model), _sections(task)
    out = []
    for layer in layers:
        for key, value in layer.items():
            key = str(key)
            if key in sections and isinstance(value, dict):
                for sub, v in value.items():
                    dotted = f"{key}.{sub}"
                    if dotted not in leaves:
                        raise _unknown(dotted, list(leaves))
                    out.append((leaves[dotted], v))
            elif key in leaves:
                out.append((leaves[key], value))
            elif key in list_tasks():
                raise ConfigError(f"section {key!r} holds options of task {key!r}, but the task is {task!r}")
            else:
                raise _unknown(key, list(leaves))
    return out


def _model_of(layers: tuple[dict[str, Any], ...]) -> str | None:
    model = TrainConfig.model
    for layer in layers:
        model = layer.get("model", model)
    return model


def _task_of(layers: tuple[dict[str, Any], ...]) -> str:
    task = "classification"
    for layer in layers:
        if "task" in layer:
            task = layer["task"]
    if not isinstance(task, str) or task not in list_tasks():
        hint = did_you_mean(task, list_tasks())
        raise ConfigError(f"config key 'task' must be one of {list_tasks()}, got {task!r}{hint}")
    return task


# ------------------------------------------------------------------------------------------ values


def _build(cls: type, values: dict[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in values:
            path = f"{section}.{f.name}"
            kwargs[f.name] = coerce(path, values[f.name], hints[f.name])
            check_value(path, kwargs[f.name], dict(f.metadata))
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):  # cross-field checks of the section (e.g. mean and std together)
        try:
            check()
        except ValueError as e:
            raise ConfigError(str(e)) from None
    return obj


def make_config(*layers: dict[str, Any]) -> TrainConfig:
    """A config from the defaults updated by each mapping in turn (later wins); keys and values checked."""
    task, model_name = _task_of(layers), _model_of(layers)
    values: dict[str, Any] = {}
    model_options: dict[str, Any] = {}  # model factory options named one by one (e.g. backbone_weights)
    for path, value in _flatten(layers, task, model_name):
        if path[0] == "model_kwargs" and len(path) == 2:
            model_options[path[1]] = value
        elif path == ("model_kwargs",):
            values["model_kwargs"], model_options = value, {}
        else:
            values[".".join(path)] = value
    sections = {}
    for section, cls in _sections(task).items():
        prefix = section + "."
        sections[section] = _build(
            cls, {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}, section
        )
    model = values.get("model", "resnet18")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"config key 'model' expects a model name or package.module:factory, got {model!r}")
    kwargs = values.get("model_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ConfigError(f"config key 'model_kwargs' expects a mapping, e.g. {{width: 16}}, got {kwargs!r}")
    kwargs = {**kwargs, **model_options}
    return TrainConfig(
        task=task,
        model=model,
        model_kwargs=dict(kwargs),
        pool_skip=values.get("pool_skip"),
        data=sections["data"],
        optim=sections["optim"],
        run=sections["run"],
        options=sections[task],
    )


def describe_keys(task: str = "classification") -> list[tuple[str, Any, str]]:
    """``(section.key, default, meaning)`` of every key a config of ``task`` takes, in order; the meaning ends
    with the key's bounds where it has any, e.g. ``peak learning rate (0.0 <= lr <= 10.0)``."""
    rows = [(k, getattr(TrainConfig(), k), v) for k, v in TOP_LEVEL_HELP.items()]
    for section, cls in _sections(task).items():
        for f in dataclasses.fields(cls):
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            bounds = describe_range(f.metadata, f.name)
            text = f.metadata.get("help", "") + (f" ({bounds})" if bounds else "")
            rows.append((f"{section}.{f.name}", default, text))
    return rows


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["lr=0.05", "optim.milestones=[2, 4]"]`` -> {"lr": 0.05, "optim.milestones": [2, 4]}; values are YAML."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            reason = str(e).splitlines()[0]
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({reason})") from None
        if isinstance(value, dict) and any(":" in str(k) and v is None for k, v in value.items()):
            raise ConfigError(
                f"--set {item!r}: YAML reads '{{a:1}}' as the key 'a:1'; write a space after each colon, "
                f'e.g. "{key}={{width: 16}}"'
            )
        out[key] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; every error names the file."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a directory; expected a YAML file of config keys")
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not text; expected a YAML file of config keys") from None
    except yaml.YAMLError as e:
        reason = " ".join(str(e).split())
        raise ConfigError(f"config file {path} is not valid YAML: {reason}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    try:
        _flatten((data,), _task_of((data,)), _model_of((data,)))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return data
