"""The optimiser, its parameter groups and the learning-rate schedule (set every iteration).

Parameter groups come from the config, not from code: ``optim.lr_mult`` maps module-name prefixes of
the model to learning-rate multipliers (``{backbone: 0.1}`` trains DeepLab's backbone at a tenth of the
head's rate). A parameter takes the multiplier of the longest prefix that names it, 1 otherwise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import ConfigError, OptimConfig

__all__ = ["lr_at", "make_optimizer", "param_groups", "set_lr"]


def param_groups(model: nn.Module, lr_mult: dict[str, float]) -> list[dict]:
    """``[{"params": [...], "lr_mult": m, "name": prefix}, ...]`` for ``lr_mult``; the rest at 1.0.

    A prefix that names no parameter is a ConfigError (a typo would silently train at the full rate).
    """
    for prefix, mult in lr_mult.items():
        if mult < 0:
            raise ConfigError(f"config key 'optim.lr_mult.{prefix}' must be >= 0, got {mult}")
    groups: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in lr_mult}
    rest: list[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        owners = [pre for pre in lr_mult if name == pre or name.startswith(pre + ".")]
        (groups[max(owners, key=len)] if owners else rest).append(p)
    empty = [prefix for prefix, params in groups.items() if not params]
    if empty:
        tops = sorted({n.split(".")[0] for n, _ in model.named_parameters()})
        raise ConfigError(
            f"config key 'optim.lr_mult' names {empty}, which match no parameter of the model; "
            f"prefixes are module names, e.g. {', '.join(tops[:8])}"
        )
    out = [{"params": params, "lr_mult": float(lr_mult[prefix]), "name": prefix} for prefix, params in groups.items()]
    if rest:
        out.append({"params": rest, "lr_mult": 1.0, "name": "rest"})
    return out


def make_optimizer(optim: OptimConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD or AdamW over :func:`param_groups` of ``model``."""
    groups = param_groups(model, optim.lr_mult)
    if optim.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    return torch.optim.SGD(
        groups, lr=optim.lr, momentum=optim.momentum, nesterov=optim.nesterov, weight_decay=optim.weight_decay
    )


def lr_at(optim: OptimConfig, epoch: int, step: int, steps_per_epoch: int) -> float:
    """The base learning rate for ``step`` of ``epoch`` (0-based): linear warm-up, then the schedule.

    multistep: ``lr * gamma ** (number of milestones <= epoch)``, i.e. the rate drops after that many
    complete epochs (PyTorch's MultiStepLR stepped once per epoch). cosine: from ``lr`` to ``min_lr``
    per iteration over the epochs after warm-up. poly: ``min_lr + (lr - min_lr) * (1 - t/T) ** power``
    per iteration over the iterations after warm-up (DeepLab's schedule).
    """
    total = optim.epochs * steps_per_epoch
    it = epoch * steps_per_epoch + step  # iterations done
    warm = optim.warmup_epochs * steps_per_epoch
    if warm > 0 and it < warm:
        return optim.lr * (it + 1) / warm
    if optim.schedule == "multistep":
        return optim.lr * optim.gamma ** sum(epoch >= m for m in optim.milestones)
    if optim.schedule in ("cosine", "poly"):
        progress = min(max((it - warm) / max(total - warm, 1e-9), 0.0), 1.0)
        if optim.schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * progress))
        else:
            factor = (1 - progress) ** optim.power
        return optim.min_lr + (optim.lr - optim.min_lr) * factor
    return optim.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's rate to ``lr`` times its multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
