"""The training configuration: one flat dataclass, filled from defaults < recipe < command line.

Every key a recipe or ``--set key=value`` may name is a field below; anything else is an error that
names the key (and the closest known one), so a typo never silently trains the wrong thing.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config key or value is wrong; the message names it."""


@dataclass
class TrainConfig:
    """What one training run does. Field comments are the reference for recipe files."""

    # data
    dataset: str = "digits"  # digits | cifar10 | cifar100 | imagefolder
    data_dir: str | None = None  # where the dataset lives (CIFAR: torchvision layout; imagefolder: train/ + test/)
    download: bool = False  # CIFAR only: fetch it into data_dir with torchvision's downloader
    cache_dir: str | None = None  # decoded-tensor cache (default: $XDG_CACHE_HOME/poolskip or ~/.cache/poolskip)
    image_size: int | None = None  # imagefolder: resize every image to this square size (default: keep, must agree)
    train_subset: int | None = None  # use only the first N training images of a fixed shuffle (quick runs)
    # model
    model: str = "resnet18"  # a poolskip.models name, or "package.module:factory" for your own
    model_kwargs: dict = field(default_factory=dict)  # passed to the model factory (e.g. {width: 16})
    pool_skip: Any = None  # null/false = plain; true, a policy name, a pool size or a dict of convert() args
    # optimisation
    epochs: int = 200
    batch_size: int = 128  # the global batch, split across processes under torchrun
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.1
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True
    betas: list = field(default_factory=lambda: [0.9, 0.999])  # AdamW betas
    weight_decay: float = 5e-4
    schedule: str = "multistep"  # multistep | cosine | constant (set per iteration)
    milestones: list = field(default_factory=lambda: [60, 120, 160])  # multistep: epochs after which lr *= gamma
    gamma: float = 0.2
    min_lr: float = 0.0  # cosine: final learning rate
    warmup_epochs: float = 0.0  # linear warm-up per iteration over this many epochs, then the schedule
    label_smoothing: float = 0.0
    grad_clip: float = 0.0  # clip the global gradient norm to this value (0 = off)
    # augmentation (batched, on the training device); pixel values in [0, 255] before normalisation
    crop_padding: int = 4  # random crop to the original size after zero padding (0 = off)
    flip: bool = True  # random horizontal flip
    rotation: float = 0.0  # random rotation in [-deg, deg], nearest, zero fill (0 = off)
    cutout: int = 0  # one square hole of this side after normalisation, centre anywhere (0 = off)
    mean: list | None = None  # per-channel mean in [0, 1]; null = measured on the training images
    std: list | None = None  # per-channel std in [0, 1]; null = measured on the training images
    # runtime
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 | fp16 (fp16 only on CUDA)
    channels_last: bool = False
    compile: bool = False  # torch.compile the model
    threads: int | None = None  # CPU threads for torch (torch.set_num_threads); null = PyTorch's default
    deterministic: bool = False  # torch.use_deterministic_algorithms; bit-exact resume on CPU
    sync_bn: bool = False  # SyncBatchNorm under torchrun (CUDA only)
    seed: int = 0
    eval_batch_size: int = 1000
    checkpoint_every: int = 0  # also checkpoint every N training steps inside an epoch (0 = epoch ends only)
    diagnostics_every: int = 0  # every N epochs, poolskip.diagnostics.probe_measures on 64 fixed random test images
    out_dir: str = "runs"  # run directories go under here
    run_name: str | None = None  # default: <time>_<dataset>_<model>_<variant>

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def variant(self) -> str:
        """``plain`` or ``pool_skip``: how reports group runs."""
        from ..models import is_plain

        return "plain" if is_plain(self.pool_skip) else "pool_skip"


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _check_type(key: str, value: Any) -> Any:
    """Coerce ``value`` to the field's type where that is lossless; raise naming the key otherwise."""
    default = getattr(TrainConfig(), key)
    annotation = str(FIELDS[key].type)
    if value is None:
        if "None" in annotation or key == "pool_skip":
            return None
        raise ConfigError(f"config key {key!r} cannot be null (expected a {annotation})")
    if key == "pool_skip":
        return value
    if isinstance(default, bool) or annotation == "bool":
        if isinstance(value, bool):
            return value
    elif "float" in annotation:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "5e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif "int" in annotation:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif "str" in annotation:
        if isinstance(value, (str, Path)):
            return str(value)
    elif "list" in annotation:
        if isinstance(value, (list, tuple)):
            return list(value)
    elif "dict" in annotation:
        if isinstance(value, dict):
            return dict(value)
    raise ConfigError(f"config key {key!r} expects a {annotation}, got {value!r}")


def check_key(key: str) -> None:
    """Raise a ValueError naming ``key`` (and the nearest known key) if it is not a config field."""
    if key not in FIELDS:
        close = difflib.get_close_matches(key, FIELDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown config key {key!r}{hint} (known keys: {', '.join(FIELDS)})")


def make_config(*layers: dict[str, Any]) -> TrainConfig:
    """A config from the defaults updated by each mapping in turn (later wins); keys and types checked."""
    values: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            check_key(key)
            values[key] = _check_type(key, value)
    cfg = TrainConfig(**values)
    _check_choices(cfg)
    return cfg


def _check_choices(cfg: TrainConfig) -> None:
    choices = {
        "optimizer": ("sgd", "adamw"),
        "schedule": ("multistep", "cosine", "constant"),
        "amp": ("none", "bf16", "fp16"),
    }
    for key, allowed in choices.items():
        if getattr(cfg, key) not in allowed:
            raise ConfigError(f"config key {key!r} must be one of {allowed}, got {getattr(cfg, key)!r}")
    for key in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"config key {key!r} must be >= 1, got {getattr(cfg, key)}")
    if (cfg.mean is None) != (cfg.std is None):
        raise ConfigError("config keys 'mean' and 'std' must both be lists or both be null")


def parse_set(items: list[str]) -> dict[str, Any]:
    """``["lr=0.05", "milestones=[2, 4]"]`` -> {"lr": 0.05, "milestones": [2, 4]}; values are YAML."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        check_key(key.strip())
        value = yaml.safe_load(text) if text.strip() else None
        if isinstance(value, dict) and any(":" in str(k) and v is None for k, v in value.items()):
            raise ConfigError(
                f"--set {item!r}: YAML reads '{{a:1}}' as the key 'a:1'; write a space after each colon, "
                f'e.g. "{key.strip()}={{width: 16}}"'
            )
        out[key.strip()] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; errors name the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, got {type(data).__name__}")
    for key in data:
        try:
            check_key(key)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None
    return data
