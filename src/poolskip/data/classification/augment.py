"""Batched classification augmentation on the training device (the airbench idea: no per-image Python work).

Random parameters are drawn for a whole batch first (:meth:`ClassificationAugment.sample`), then applied
(:meth:`ClassificationAugment.apply`): the two-phase interface every modality's augmentation has (see
:mod:`poolskip.data`). Splitting the two lets every process of a distributed run draw the same parameters
for the global batch and apply only its own share, so N processes see exactly the images one process would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ClassificationAugment:
    """Crop after zero padding, horizontal flip and rotation on [0, 255] pixels; cutout after normalisation.

    The order and fills follow torchvision's ``RandomCrop(padding) -> RandomHorizontalFlip ->
    RandomRotation(fill=0) -> Normalize`` and DeVries & Taylor's Cutout (one square hole, centre
    uniform over the image, clipped at the borders, zeros after normalisation).
    """

    crop_padding: int = 0
    flip: bool = False
    rotation: float = 0.0
    cutout: int = 0

    def sample(self, sizes: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Random parameters for images of ``sizes`` (N, 2) = (H, W) (one size: a classification batch has
        one), drawn in a fixed order from ``generator`` on its device."""
        n = len(sizes)
        height, width = (int(v) for v in sizes[0]) if n else (0, 0)
        dev = generator.device
        p = {}
        if self.crop_padding:
            p["dy"] = torch.randint(0, 2 * self.crop_padding + 1, (n,), device=dev, generator=generator)
            p["dx"] = torch.randint(0, 2 * self.crop_padding + 1, (n,), device=dev, generator=generator)
        if self.flip:
            p["flip"] = torch.rand(n, device=dev, generator=generator) < 0.5
        if self.rotation:
            p["angle"] = (torch.rand(n, device=dev, generator=generator) * 2 - 1) * self.rotation
        if self.cutout:
            p["cy"] = torch.randint(0, height, (n,), device=dev, generator=generator)
            p["cx"] = torch.randint(0, width, (n,), device=dev, generator=generator)
        return p

    def apply(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        params: dict[str, torch.Tensor],
        normalise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment float images ``x`` (N, C, H, W) with values in [0, 255]; returns the images normalised by
        ``normalise`` (between rotation and cutout, so the hole is 0 after normalisation) and the labels
        ``y`` unchanged."""
        if "dy" in params:
            x = random_crop(x, params["dy"], params["dx"], self.crop_padding)
        if "flip" in params:
            x = torch.where(params["flip"][:, None, None, None], x.flip(3), x)
        if "angle" in params:
            x = rotate(x, params["angle"])
        if normalise is not None:
            x = normalise(x)
        if "cy" in params:
            x = cutout(x, params["cy"], params["cx"], self.cutout)
        return x, y


def random_crop(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by ``padding`` and crop the original size at per-image offsets (dy, dx) in [0, 2*padding]."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    flat = (rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, flat).reshape(n, c, h, w)


def rotate(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each (square) image about its centre by its angle in degrees; nearest pixel, zero fill."""
    theta = degrees * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    # grid_sample maps output coordinates to input ones: the inverse rotation
    mat = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1).to(x.dtype)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor, length: int) -> torch.Tensor:
    """Zero a ``length`` x ``length`` square centred at (cy, cx) in each image, clipped at the borders."""
    h, w = x.shape[-2:]
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    lo_y, lo_x = (cy - length // 2)[:, None, None], (cx - length // 2)[:, None, None]
    hole = (ys >= lo_y) & (ys < lo_y + length) & (xs >= lo_x) & (xs < lo_x + length)
    return x.masked_fill(hole[:, None], 0.0)
