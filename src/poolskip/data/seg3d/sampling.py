"""3D training batches of patches.

:class:`PatchSampler` cuts random training patches (foreground-oversampled as nnU-Net does: the last third
of each batch is centred on a voxel of a random present class) and augments them with MONAI's random
transforms, every random choice drawn from ``mix_seed(seed, epoch, step)``: batch ``b`` of epoch ``e`` is
the same whatever ran before, on every process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ...dist import Dist
from ..errors import DatasetError
from ..loader import Batch, mix_seed
from .augment import Seg3dAugment, patch_seeds

__all__ = ["PatchSampler", "crop_patch", "patch_start"]


def crop_patch(
    image: torch.Tensor, label: torch.Tensor, patch: Sequence[int], start: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The patch of size ``patch`` whose lower corner is ``start`` (may lie outside: zero padded)."""
    shape = image.shape[1:]
    out_img = image.new_zeros((image.shape[0], *patch))
    out_lab = label.new_zeros(tuple(patch))
    src, dst = [], []
    for s, p, n in zip(start, patch, shape):
        a, b = max(s, 0), min(s + p, n)
        src.append(slice(a, b))
        dst.append(slice(a - s, b - s))
    out_img[(slice(None), *dst)] = image[(slice(None), *src)]
    out_lab[tuple(dst)] = label[tuple(src)]
    return out_img, out_lab


def patch_start(
    shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator, center: Sequence[int] | None = None
) -> list[int]:
    """A random lower corner: anywhere the patch fits (centred when the volume is smaller), or around ``center``."""
    start = []
    for d, (n, p) in enumerate(zip(shape, patch)):
        lo, hi = min(0, n - p), max(0, n - p)  # a smaller volume sits inside the patch, padded
        if center is None:
            s = int(rng.integers(lo, hi + 1)) if n >= p else (n - p) // 2
        else:
            s = min(max(int(center[d]) - p // 2, lo), hi)
        start.append(s)
    return start


class PatchSampler:
    """Training batches of random patches, every choice a function of (seed, epoch, step, sample)."""

    def __init__(
        self,
        volumes: Sequence[dict[str, Any]],
        patch_size: Sequence[int],
        batch_size: int,
        steps: int,
        *,
        seed: int = 0,
        oversample: float = 1 / 3,
        augment: Seg3dAugment | None = None,
        dist: Dist | None = None,
        device: torch.device | str = "cpu",
    ):
        if not volumes:
            raise DatasetError("no training volumes to sample patches from")
        self.volumes, self.patch = list(volumes), tuple(int(p) for p in patch_size)
        self.batch_size, self.steps, self.seed, self.oversample = batch_size, steps, seed, oversample
        self.augment = augment
        if augment is not None:
            augment.transform()  # MONAI missing: say so now, not at the first batch
        self.dist, self.device = dist or Dist(), torch.device(device)

    def __len__(self) -> int:
        return self.steps

    def sample(self, index: int, force_fg: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One patch of volume ``index`` (centred on a random foreground class voxel if ``force_fg``)."""
        vol = self.volumes[index]
        image, label = vol["image"], vol["label"]
        rng = np.random.default_rng(seed)
        center = None
        locs = vol.get("locations", {})
        if force_fg and locs:
            cls = sorted(locs, key=int)[int(rng.integers(len(locs)))]
            pts = locs[cls]
            center = pts[int(rng.integers(len(pts)))].tolist()
        start = patch_start(image.shape[1:], self.patch, rng, center)
        x, y = crop_patch(image, label, self.patch, start)
        if self.augment is not None:
            xs, ys = self.augment.apply(x[None], y[None], {"seed": torch.tensor([seed])})
            x, y = xs[0], ys[0]
        return x, y.long()

    def plan(self, epoch: int, step: int) -> list[tuple[int, bool, int]]:
        """The global batch ``step`` of ``epoch``: (volume index, force foreground, sample seed) per sample."""
        rng = np.random.default_rng(mix_seed(self.seed, epoch, step))
        n = self.batch_size
        which = rng.integers(len(self.volumes), size=n)
        if self.augment is not None:  # the augmentation's sample phase: one seed per patch
            seeds = self.augment.sample(torch.tensor(self.patch).expand(n, 3), rng)["seed"].numpy()
        else:
            seeds = patch_seeds(rng, n)
        fg_from = round(n * (1 - self.oversample))  # nnU-Net: the last third of each batch sees foreground
        return [(int(which[i]), i >= fg_from, int(seeds[i])) for i in range(n)]

    def batch(self, epoch: int, step: int) -> Batch:
        plan = self.plan(epoch, step)
        share = self.dist.shard(len(plan)).tolist()
        xs, ys = zip(*(self.sample(*plan[i]) for i in share)) if share else ((), ())
        if not share:
            c = self.volumes[0]["image"].shape[0]
            return Batch(torch.zeros(0, c, *self.patch, device=self.device),
                         torch.zeros(0, *self.patch, dtype=torch.long, device=self.device), len(plan))  # fmt: skip
        return Batch(torch.stack(xs).to(self.device), torch.stack(ys).to(self.device), len(plan))

    def batches(self, epoch: int, start: int = 0) -> Iterator[Batch]:
        for b in range(start, self.steps):
            yield self.batch(epoch, b)
