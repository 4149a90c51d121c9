"""2D segmentation batches: random crops for training, whole images grouped by size for evaluation."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ...dist import Dist
from ..loader import Batch, mix_seed
from .augment import Seg2dAugment
from .readers import SegSplit


class SegLoader:
    """Training batches of crops (random order and augmentation fixed by (seed, epoch, step)), or evaluation
    batches of whole images grouped by size. The last incomplete training batch is dropped (as DeepLab's
    ``drop_last``: BatchNorm on ASPP's 1x1 image-pooling map needs two samples)."""

    def __init__(
        self,
        split: SegSplit,
        batch_size: int,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        augment: Seg2dAugment | None = None,
        seed: int = 0,
        dist: Dist | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
    ) -> None:
        self.split, self.batch_size, self.augment, self.seed = split, batch_size, augment, seed
        self.dist, self.channels_last = dist or Dist(), channels_last
        self.device = torch.device(device)
        self.mean = torch.tensor([m * 255.0 for m in mean], device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor([s * 255.0 for s in std], device=self.device).view(1, -1, 1, 1)
        self.sizes = torch.tensor([tuple(im.shape[-2:]) for im in split.images], dtype=torch.long)

    def __len__(self) -> int:
        if self.augment is not None:
            return len(self.split) // self.batch_size
        return len(self.eval_groups())

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def order(self, epoch: int) -> torch.Tensor:
        return torch.randperm(len(self.split), generator=torch.Generator().manual_seed(mix_seed(self.seed, epoch)))

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator[Batch]:
        """Training batches of ``epoch`` from step ``start`` on (this process's share of each)."""
        assert self.augment is not None, "an evaluation loader has eval_batches(), not batches()"
        order = self.order(epoch)
        for b in range(start, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            g = torch.Generator().manual_seed(mix_seed(self.seed, epoch, b))
            params = self.augment.sample(self.sizes[idx], g)
            share = self.dist.shard(len(idx))
            images = [self.split.images[i].to(self.device, non_blocking=True) for i in idx[share].tolist()]
            masks = [self.split.masks[i].to(self.device, non_blocking=True) for i in idx[share].tolist()]
            x, y = self.augment.apply(images, masks, {k: v[share] for k, v in params.items()}, self.normalise)
            yield Batch(x, y, len(idx))

    def eval_groups(self) -> list[list[int]]:
        """Image indices in batches of at most ``batch_size`` images of one size, in dataset order."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(self.sizes.tolist()):
            by_size.setdefault(tuple(s), []).append(i)
        return [g[k : k + self.batch_size] for g in by_size.values() for k in range(0, len(g), self.batch_size)]

    def eval_batches(self) -> Iterator[Batch]:
        """This process's share of the evaluation images (whole, full resolution): groups split by rank."""
        groups = self.eval_groups()
        for group in self.dist.every_nth(groups):
            x = torch.stack([self.split.images[i] for i in group]).to(self.device).float()
            y = torch.stack([self.split.masks[i] for i in group]).to(self.device).long()
            yield Batch(self.normalise(x), y, len(group))
