"""nnU-Net's 3d_fullres planner: the network topology (stages, kernels, strides, features) and the padded patch
for a patch size and a target spacing, without building a network (the 3D task plans its patch with it).

:func:`plan_3d_fullres` follows the rule of nnU-Net v2's default ``ExperimentPlanner`` for the
3d_fullres configuration, given the patch size and the target spacing: an axis is downsampled (stride
2) while its feature map stays >= 8 voxels (so the deepest map is >= 4) and its spacing is within a
factor 2 of the finest one (one axis alone only while it is >= 12); a conv kernel is 3 along an axis
once that axis's spacing is within a factor 2 of the finest, else 1; the bottleneck is 3^3; the patch
is padded up to a multiple of the total stride. Features double from 32 per stage up to 320.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .._registry import register_planner

__all__ = ["BASE_FEATURES", "MAX_FEATURES_3D", "MIN_FEATURE_MAP", "Plan", "plan_3d_fullres"]

BASE_FEATURES = 32
MAX_FEATURES_3D = 320
MIN_FEATURE_MAP = 4  # nnU-Net's UNet_featuremap_min_edge_length


@dataclass(frozen=True)
class Plan:
    """A 3d_fullres network topology: what nnU-Net's plans file holds for the architecture."""

    patch_size: tuple[int, ...]  # padded to a multiple of the total stride
    spacing: tuple[float, ...]
    features: tuple[int, ...]  # per stage
    kernel_sizes: tuple[tuple[int, ...], ...]  # per stage
    strides: tuple[tuple[int, ...], ...]  # per stage (the first is all ones)

    @property
    def n_stages(self) -> int:
        return len(self.features)

    @property
    def bottleneck_size(self) -> tuple[int, ...]:
        """The deepest feature map's size for one patch."""
        size = list(self.patch_size)
        for stride in self.strides:
            size = [math.ceil(s / k) for s, k in zip(size, stride)]
        return tuple(size)


@register_planner("nnunet_3d_fullres")
def plan_3d_fullres(
    patch_size: Sequence[int],
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    max_stages: int | None = None,
    base_features: int = BASE_FEATURES,
) -> Plan:
    """The topology nnU-Net's default planner gives a 3D patch of ``patch_size`` voxels at ``spacing`` mm.

    ``base_features`` (nnU-Net: 32) scales every stage: ``min(base * 2**i, 320 * base / 32)`` features."""
    if base_features < 1:
        raise ValueError(f"base_features must be >= 1, got {base_features}")
    size = [int(s) for s in patch_size]
    if len(size) != 3 or any(s < 1 for s in size):
        raise ValueError(f"patch_size must be three positive ints, got {tuple(patch_size)}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or any(s <= 0 for s in spacing):
        raise ValueError(f"spacing must be three positive numbers (mm), got {spacing}")
    cur_spacing, cur_size = list(spacing), list(size)
    kernel = [1, 1, 1]
    strides: list[tuple[int, ...]] = [(1, 1, 1)]
    kernels: list[tuple[int, ...]] = []
    pools = [0, 0, 0]
    while max_stages is None or len(strides) < max_stages:
        axes = [i for i in range(3) if cur_size[i] >= 2 * MIN_FEATURE_MAP]
        if not axes:
            break
        finest = min(cur_spacing[i] for i in axes)
        axes = [i for i in axes if cur_spacing[i] / finest < 2]
        if len(axes) == 1 and cur_size[axes[0]] < 3 * MIN_FEATURE_MAP:
            break
        if not axes:
            break
        finest_all = min(cur_spacing)
        kernel = [3 if kernel[d] == 3 or cur_spacing[d] / finest_all < 2 else 1 for d in range(3)]
        stride = [1, 1, 1]
        for i in axes:
            stride[i] = 2
            pools[i] += 1
            cur_spacing[i] *= 2
            cur_size[i] = math.ceil(cur_size[i] / 2)
        kernels.append(tuple(kernel))
        strides.append(tuple(stride))
    kernels.append((3, 3, 3))  # the bottleneck
    multiple = [2**p for p in pools]
    padded = tuple(math.ceil(s / m) * m for s, m in zip(size, multiple))
    cap = max(1, round(MAX_FEATURES_3D * base_features / BASE_FEATURES))
    features = tuple(min(base_features * 2**i, cap) for i in range(len(strides)))
    return Plan(padded, spacing, features, tuple(kernels), tuple(strides))
