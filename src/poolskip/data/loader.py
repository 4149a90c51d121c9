"""Batches straight from uint8 tensors kept on the training device.

The shuffle of epoch ``e`` and the augmentation of batch ``b`` come from generators seeded by
``(seed, e)`` and ``(seed, e, b)``: any batch can be rebuilt without replaying the ones before it,
which makes resuming mid-epoch exact, and under ``torchrun`` every process draws the same global
batch and keeps its own contiguous share (the DistributedSampler idea, without a DataLoader).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch

from ..dist import Dist
from .augment import BatchAugment


class Batch(NamedTuple):
    inputs: torch.Tensor  # this process's share, normalised float (N, C, *spatial)
    targets: torch.Tensor  # this process's targets: class labels (N,), label maps (N, *spatial), ...
    global_size: int  # samples in the global batch (all processes together)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes and Python runs."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


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
        augment: BatchAugment | None = None,
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
            x = self.images[idx[share]].float()
            if self.augment is not None:
                g = torch.Generator(device=self.device).manual_seed(mix_seed(self.seed, epoch, b))
                params = self.augment.sample(len(idx), x.shape[2], x.shape[3], g)
                x = self.augment.apply(x, {k: v[share] for k, v in params.items()}, self.mean, self.std)
            else:
                x = (x - self.mean) / self.std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield Batch(x, self.labels[idx[share]], len(idx))
