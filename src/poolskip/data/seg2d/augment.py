"""2D segmentation augmentation on the training device: image and mask together, one ``grid_sample`` per
source size of the batch, with the two-phase interface of every modality (see :mod:`poolskip.data`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .readers import IGNORE


@dataclass
class Seg2dAugment:
    """Random scale, crop (padding: image 0, mask ignore), horizontal flip and colour jitter, image and mask
    together (DeepLab's ``RandomScale -> RandomCrop(pad_if_needed) -> RandomHorizontalFlip -> ColorJitter``).

    The image is resampled bilinearly (no antialiasing) and the mask by nearest neighbour, through one
    ``grid_sample`` per source size. Colour jitter multiplies brightness, contrast and saturation by factors
    in ``[1 - color_jitter, 1 + color_jitter]``, in that fixed order.
    """

    crop_size: tuple[int, int] = (513, 513)
    scale_range: tuple[float, float] = (0.5, 2.0)
    flip: bool = True
    color_jitter: float = 0.0

    def sample(self, sizes: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Parameters for images of ``sizes`` (N, 2) = (H, W), drawn on the CPU in a fixed order."""
        n = len(sizes)
        lo, hi = self.scale_range
        scale = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
        scaled = (sizes.double() * scale[:, None]).round().clamp(min=1)
        crop = torch.tensor(self.crop_size, dtype=torch.float64)
        # the crop's top-left corner in the scaled image: inside it when the image is larger, else the image
        # lies at a random place inside the (padded) crop
        first, last = torch.minimum(scaled - crop, torch.zeros(2)), torch.maximum(scaled - crop, torch.zeros(2))
        u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        offset = first + torch.floor(u * (last - first + 1)).clamp(max=last - first)
        p = {"scaled": scaled, "offset": offset}
        p["flip"] = torch.rand(n, generator=generator) < 0.5 if self.flip else torch.zeros(n, dtype=torch.bool)
        if self.color_jitter:
            j = self.color_jitter
            p["jitter"] = 1 - j + 2 * j * torch.rand(n, 3, generator=generator)
        return p

    def apply(
        self,
        images: list[torch.Tensor],
        masks: list[torch.Tensor],
        params: dict[str, torch.Tensor],
        normalise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Float images (N, 3, h, w) of crop size (h, w), in [0, 255] or normalised by ``normalise`` (after
        the colour jitter), and long masks (N, h, w)."""
        device = images[0].device
        h, w = self.crop_size
        n = len(images)
        sizes = [tuple(im.shape[-2:]) for im in images]
        groups = list(dict.fromkeys(sizes))
        parts = []
        for size in groups:  # one grid_sample per source size (usually one per batch)
            sel = [i for i, s in enumerate(sizes) if s == size]
            src_h, src_w = size
            scaled = params["scaled"][sel].to(device, torch.float32)
            offset = params["offset"][sel].to(device, torch.float32)
            flip = params["flip"][sel].to(device)
            rows = torch.arange(h, device=device, dtype=torch.float32) + 0.5
            cols = torch.arange(w, device=device, dtype=torch.float32) + 0.5
            cols = torch.where(flip[:, None], w - cols[None], cols[None])  # (n, w) output columns, mirrored
            ys = (offset[:, 0:1] + rows[None]) * (src_h / scaled[:, 0:1])  # the source rows of the output rows
            xs = (offset[:, 1:2] + cols) * (src_w / scaled[:, 1:2])
            inside = ((ys >= 0) & (ys < src_h))[:, :, None] & ((xs >= 0) & (xs < src_w))[:, None, :]
            grid = torch.empty(len(sel), h, w, 2, device=device)
            grid[..., 0] = (2 / src_w * xs - 1)[:, None, :]
            grid[..., 1] = (2 / src_h * ys - 1)[:, :, None]
            img = torch.stack([images[i] for i in sel]).float()
            msk = torch.stack([masks[i] for i in sel])[:, None].float()
            xi = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
            yi = F.grid_sample(msk, grid, mode="nearest", padding_mode="border", align_corners=False)[:, 0]
            parts.append((sel, xi.mul_(inside[:, None]), torch.where(inside, yi.long(), IGNORE), inside))
        if len(parts) == 1:  # the usual case: nothing to scatter
            _, x, y, within = parts[0]
        else:
            x = torch.empty(n, images[0].shape[0], h, w, device=device)
            y = torch.empty(n, h, w, dtype=torch.long, device=device)
            within = torch.empty(n, h, w, dtype=torch.bool, device=device)
            for sel, xi, yi, inside in parts:
                index = torch.tensor(sel, device=device)
                x[index], y[index], within[index] = xi, yi, inside
        if "jitter" in params:  # on the image only: the padding stays 0
            x = color_jitter(x, params["jitter"].to(device), within).mul_(within[:, None])
        if normalise is not None:
            x = normalise(x)
        return x, y


def color_jitter(x: torch.Tensor, factors: torch.Tensor, within: torch.Tensor | None = None) -> torch.Tensor:
    """Brightness, contrast and saturation of [0, 255] images (N, 3, H, W) times ``factors`` (N, 3); the
    contrast pivot is each image's mean grey level (over the ``within`` pixels (N, H, W) if given)."""
    b, c, s = (factors[:, i].view(-1, 1, 1, 1).to(x.dtype) for i in range(3))
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    x = (x * b).clamp(0, 255)
    grey = (x * weights).sum(1, keepdim=True)
    if within is None:
        mean = grey.mean((2, 3), keepdim=True)
    else:
        w = within[:, None].to(x.dtype)
        mean = (grey * w).sum((2, 3), keepdim=True) / w.sum((2, 3), keepdim=True).clamp(min=1)
    x = (mean + c * (x - mean)).clamp(0, 255)
    gray = (x * weights).sum(1, keepdim=True)
    return (gray + s * (x - gray)).clamp(0, 255)
