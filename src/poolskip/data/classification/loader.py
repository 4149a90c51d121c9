"""Classification batches straight from uint8 tensors kept on the training device (the airbench idea)."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ...dist import Dist
from ..loader import Batch, mix_seed
from .augment import ClassificationAugment


class TensorLoader:
    """Global batches of ``batch_size`` images; this process yields its share of each one."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        mean: list[float],
        std: list[float],
        augment: ClassificationAugment | None = None,
        shuffle: bool = False,
        seed: int = 0,
        dist: Dist | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be a uint8 (N, C, H, W) tensor, got {images.dtype} {tuple(images.shape)}")
        if len(mean) != images.shape[1] or len(std) != images.shape[1]:
            raise ValueError(
                f"mean/std have {len(mean)}/{len(std)} values but the images have {images.shape[1]} channels; "
                f"set mean=null std=null to measure them on the training images"
            )
        self.device = torch.device(device)
        self.images, self.labels = images.to(self.device), labels.to(self.device)
        self.batch_size, self.augment, self.shuffle, self.seed = batch_size, augment, shuffle, seed
        self.dist, self.channels_last = dist or Dist(), channels_last
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255.0

    def __len__(self) -> int:
        return -(-len(self.images) // self.batch_size)

    def order(self, epoch: int) -> torch.Tensor:
        """The image order of ``epoch``: a permutation fixed by (seed, epoch), or 0..N-1 without shuffling."""
        n = len(self.images)
        if not self.shuffle:
            return torch.arange(n, device=self.device)
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(n, generator=g).to(self.device)

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """The batches of ``epoch`` from batch index ``start`` on."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            share = self.dist.shard(len(idx), self.device)
            x, y = self.images[idx[share]].float(), self.labels[idx[share]]
            if self.augment is not None:
                g = torch.Generator(device=self.device).manual_seed(mix_seed(self.seed, epoch, b))
                params = self.augment.sample(torch.tensor(x.shape[2:]).expand(len(idx), 2), g)
                x, y = self.augment.apply(x, y, {k: v[share] for k, v in params.items()}, self.normalise)
            else:
                x = self.normalise(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield Batch(x, y, len(idx))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 255] images to ``(x / 255 - mean) / std``."""
        return (x - self.mean) / self.std
