"""What the training loop needs to know about a task: its data, its loss, its evaluation.

The loop (:mod:`poolskip.engine.trainer`) owns the optimiser, schedule, AMP, DDP, checkpoints and
logging; a :class:`Task` owns everything specific to the problem. Image classification is
:class:`ClassificationTask`; a segmentation task implements the same four methods.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..data import Batch, BatchAugment, ImageData, TensorLoader, load_dataset
from .config import ConfigError, TrainConfig


class Task(Protocol):
    """The task interface the loop calls."""

    num_classes: int

    def bind(self, model: nn.Module) -> None:
        """Called once with the built model, before training: build loaders that fit it."""

    def steps_per_epoch(self) -> int:
        """Global optimisation steps in one epoch."""

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        """This process's share of each training batch of ``epoch``, from step ``start`` on."""

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Per-sample training losses (the loop sums them and divides by the global batch size)."""

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Metrics on the test set, reduced over all processes; must include ``test_error`` (lower is better)."""

    def probe_batch(self, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed batch of ``n`` test samples (inputs, targets), chosen by ``seed``, for diagnostics."""


class ClassificationTask:
    """Image classification: cross-entropy (optionally label-smoothed), top-1 error in percent."""

    def __init__(self, cfg: TrainConfig, device: torch.device, rank: int = 0, world_size: int = 1):
        data = load_dataset(
            cfg.dataset, cfg.data_dir, download=cfg.download, cache_dir=cfg.cache_dir, image_size=cfg.image_size
        )
        if cfg.train_subset is not None:
            keep = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(0))[: cfg.train_subset]
            data.train_x, data.train_y = data.train_x[keep], data.train_y[keep]
        self.data: ImageData = data
        self.cfg, self.device, self.rank, self.world_size = cfg, device, rank, world_size
        self.num_classes, self.in_channels = data.num_classes, data.channels

    def bind(self, model: nn.Module) -> None:
        """Build the loaders for ``model``: grey images are repeated to RGB for a 3-channel stem."""
        cfg, data = self.cfg, self.data
        model_channels = first_conv_channels(model) or data.channels
        mean, std = (cfg.mean, cfg.std) if cfg.mean is not None else data.channel_stats()
        train_x, test_x = data.train_x, data.test_x
        if data.channels == 1 and model_channels == 3:
            train_x, test_x = train_x.expand(-1, 3, -1, -1), test_x.expand(-1, 3, -1, -1)
            mean, std = (mean * 3, std * 3) if len(mean) == 1 else (mean, std)
        elif model_channels != data.channels:
            raise ConfigError(f"the model takes {model_channels}-channel input, {data.name} has {data.channels}")
        if len(mean) != model_channels or len(std) != model_channels:
            raise ConfigError(
                f"mean/std have {len(mean)}/{len(std)} values for {model_channels}-channel input; "
                f"set mean=null std=null to measure them on the training images"
            )
        self.mean, self.std, self.in_channels = list(mean), list(std), model_channels
        common = dict(
            mean=mean, std=std, rank=self.rank, world_size=self.world_size, device=self.device,
            channels_last=cfg.channels_last,
        )  # fmt: skip
        augment = BatchAugment(cfg.crop_padding, cfg.flip, cfg.rotation, cfg.cutout)
        self.train = TensorLoader(
            train_x, data.train_y, cfg.batch_size, augment=augment, shuffle=True, seed=cfg.seed, **common
        )
        self.test = TensorLoader(test_x, data.test_y, cfg.eval_batch_size, **common)

    def steps_per_epoch(self) -> int:
        return len(self.train)

    def train_batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        return self.train.batches(epoch, start)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs.float(), targets, reduction="none", label_smoothing=self.cfg.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, autocast=None) -> dict[str, float]:
        was_training = model.training
        model.eval()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)  # loss sum, wrong, count
        for batch in self.test.batches():
            with autocast() if autocast is not None else nullcontext():
                out = model(batch.inputs)
            sums[0] += F.cross_entropy(out.float(), batch.targets, reduction="sum").double()
            sums[1] += (out.argmax(1) != batch.targets).sum()
            sums[2] += len(batch.targets)
        if self.world_size > 1:
            dist.all_reduce(sums)
        model.train(was_training)
        loss, wrong, count = sums.tolist()
        return {"test_loss": loss / count, "test_error": 100.0 * wrong / count}

    def probe_batch(self, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        # a fixed random subset, not the first n: ImageFolder test sets are sorted by class
        pick = torch.randperm(len(self.test.labels), generator=torch.Generator().manual_seed(seed))[:n]
        x = self.test.images[pick.to(self.test.images.device)].float()
        return (x - self.test.mean) / self.test.std, self.test.labels[pick.to(self.test.labels.device)]


def first_conv_channels(model: nn.Module) -> int | None:
    """Input channels of the model's first convolution (None if it has none)."""
    conv = next((m for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)), None)
    return None if conv is None else conv.in_channels
