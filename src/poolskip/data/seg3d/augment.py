"""3D patch augmentation: nnU-Net's random transforms, through MONAI."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...optional import require

__all__ = ["Seg3dAugment"]


@dataclass
class Seg3dAugment:
    """nnU-Net-like patch augmentation, each transform with its probability (MONAI transforms).

    The two phases of every modality's augmentation (see :mod:`poolskip.data`), with MONAI's transforms
    drawing their own parameters from a random state: :meth:`sample` draws one seed per sample, from the
    batch's NumPy generator in :meth:`PatchSampler.plan <poolskip.data.seg3d.sampling.PatchSampler.plan>`
    (where the seed also places the patch), and :meth:`apply` runs the transforms on each sample from it.
    """

    rotation: float = 30.0  # degrees, each axis, p=0.2
    scale: tuple[float, float] = (0.7, 1.4)  # zoom, p=0.2
    flip: bool = True  # each axis, p=0.5
    intensity: bool = True  # noise p=0.1, brightness x[0.75, 1.25] p=0.15, gamma [0.7, 1.5] p=0.3
    _transform: Any = field(default=False, init=False, repr=False, compare=False)  # compose(), built once

    def sample(self, sizes: torch.Tensor, generator: np.random.Generator) -> dict[str, torch.Tensor]:
        """One seed per patch of ``sizes`` (N, 3): ``{"seed": (N,) int64}``, drawn from ``generator``, the NumPy
        generator of the batch (MONAI's transforms are seeded, not given parameters). The same draw as
        :func:`patch_seeds` (without augmentation): a batch is the same with or without augmentation."""
        return {"seed": torch.as_tensor(patch_seeds(generator, len(sizes)))}

    def apply(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        params: dict[str, torch.Tensor],
        normalise: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Patches ``inputs`` (N, C, D, H, W) and label patches ``targets`` (N, D, H, W), each sample
        transformed with the random state of its ``params["seed"]`` (N,); ``normalise`` (none needed: the
        volumes are normalised when preprocessed) is applied to the inputs after the transforms."""
        transform = self.transform()
        if transform is None:
            xs, ys = list(inputs), [y.long() for y in targets]
        else:
            xs, ys = [], []
            for x, y, seed in zip(inputs, targets, params["seed"].tolist()):
                transform.set_random_state(seed=seed % 2**32)
                d = transform({"image": x, "label": y[None].float()})
                xs.append(_plain(d["image"]).float())
                ys.append(_plain(d["label"])[0].round().long())
        x, y = torch.stack(xs), torch.stack(ys)
        return (normalise(x) if normalise is not None else x), y

    def transform(self):
        """:meth:`compose`'s transforms, built on the first call and kept."""
        if self._transform is False:
            self._transform = self.compose()
        return self._transform

    def compose(self):
        """The MONAI ``Compose`` of the enabled transforms (None when none is)."""
        require("monai", "med", "3D augmentation")
        from monai.transforms import (
            Compose,
            RandAdjustContrastd,
            RandFlipd,
            RandGaussianNoised,
            RandRotated,
            RandScaleIntensityd,
            RandZoomd,
        )

        both, t = ["image", "label"], []
        if self.rotation > 0:
            r = math.radians(self.rotation)
            t.append(RandRotated(both, r, r, r, prob=0.2, mode=["bilinear", "nearest"], padding_mode="zeros"))
        if self.scale[0] != 1 or self.scale[1] != 1:
            t.append(
                RandZoomd(both, prob=0.2, min_zoom=self.scale[0], max_zoom=self.scale[1], mode=["trilinear", "nearest"],
                          padding_mode="constant")
            )  # fmt: skip
        if self.intensity:
            t += [
                RandGaussianNoised("image", prob=0.1, std=0.1),
                RandScaleIntensityd("image", factors=0.25, prob=0.15),
                RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
            ]
        if self.flip:
            t += [RandFlipd(both, prob=0.5, spatial_axis=a) for a in range(3)]
        return Compose(t) if t else None


def patch_seeds(generator: np.random.Generator, n: int) -> np.ndarray:
    """``n`` per-sample seeds of a batch of patches, each placing its patch and seeding its augmentation."""
    return generator.integers(2**62, size=n)


def _plain(x) -> torch.Tensor:
    """A MONAI MetaTensor as a plain tensor (batches and losses want no metadata)."""
    return x.as_tensor() if hasattr(x, "as_tensor") else torch.as_tensor(x)
