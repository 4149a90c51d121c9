"""nnU-Net's 3D U-Net (``PlainConvUNet`` from ``dynamic-network-architectures``) as its planner sets it up.

:func:`plan_3d_fullres` follows the rule of nnU-Net v2's default ``ExperimentPlanner`` for the
3d_fullres configuration, given the patch size and the target spacing: an axis is downsampled (stride
2) while its feature map stays >= 8 voxels (so the deepest map is >= 4) and its spacing is within a
factor 2 of the finest one (one axis alone only while it is >= 12); a conv kernel is 3 along an axis
once that axis's spacing is within a factor 2 of the finest, else 1; the bottleneck is 3^3; the patch
is padded up to a multiple of the total stride. Features double from 32 per stage up to 320, two convs
per stage in encoder and decoder, conv bias, instance norm (affine, eps 1e-5), LeakyReLU(0.01), no
dropout, deep supervision: what nnU-Net writes into ``nnUNetPlans.json``.

Placements (pool 2; Pool Skip after the conv, before instance norm and LeakyReLU; the encoder's first
conv of each stage is the strided one):

- ``nnunet_btcv``: every conv of every encoder stage (the paper's BTCV runs);
- ``nnunet_amos``: every conv of every encoder stage but the last, the bottleneck (the paper's AMOS runs);
  a 1-stage network has no stage but the last, and is refused.

On nnU-Net's residual encoder (``ResidualEncoderUNet``, the ResEnc plans) "every conv" is the convs of the
residual branches (``conv1``, ``conv2`` of each block), not the 1x1 shortcut convs in ``skip`` nor the stem
(outside the stages), as for the paper's ResNets.

In ``PlainConvUNet`` each conv is held twice, as ``ConvDropoutNormReLU.conv`` and inside
``.all_modules`` (the Sequential its forward runs). :func:`~poolskip.convert` hooks the conv object
itself, so the one forward hook acts whichever name runs it (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from ...convert import Policy, list_policies, register_policy
from ...optional import require
from .._registry import register_model

__all__ = ["NNUNET_AMOS", "NNUNET_BTCV", "Plan", "build_plain_conv_unet", "nnunet", "plan_3d_fullres"]

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


def build_plain_conv_unet(plan: Plan, in_channels: int, num_classes: int, deep_supervision: bool = True) -> nn.Module:
    """nnU-Net's ``PlainConvUNet`` for ``plan``, with nnU-Net's 3d_fullres settings."""
    unet = require("dynamic_network_architectures.architectures.unet", "med", "the nnunet model")
    n = plan.n_stages
    return unet.PlainConvUNet(
        input_channels=in_channels, n_stages=n, features_per_stage=list(plan.features), conv_op=nn.Conv3d,
        kernel_sizes=[list(k) for k in plan.kernel_sizes], strides=[list(s) for s in plan.strides],
        n_conv_per_stage=[2] * n, num_classes=num_classes, n_conv_per_stage_decoder=[2] * (n - 1),
        conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
        dropout_op=None, dropout_op_kwargs=None, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True},
        deep_supervision=deep_supervision,
    )  # fmt: skip


def _encoder_stages(model: nn.Module) -> list[str]:
    """Names of the encoder stages of a PlainConvUNet (or a model holding one), shallow to deep."""
    out = []
    for name, m in model.named_modules():
        stages = getattr(m, "stages", None)
        if name.split(".")[-1] == "encoder" and isinstance(stages, nn.Sequential):
            prefix = f"{name}.stages" if name else "stages"
            out = [f"{prefix}.{i}" for i in range(len(stages))]
            break
    return out


def _encoder_convs(skip_last: bool):
    def select(model: nn.Module) -> dict[str, int | None]:
        stages = _encoder_stages(model)
        if not stages:
            raise ValueError("the nnunet placements need a model with an nnU-Net encoder (a module 'encoder.stages')")
        if skip_last:
            if len(stages) < 2:
                raise ValueError(
                    "nnunet_amos leaves out the last encoder stage (the bottleneck), and this network has only "
                    f"{len(stages)} stage: nowhere to put Pool Skip; use nnunet_btcv (every stage) or a larger "
                    "patch, which gives more stages"
                )
            stages = stages[:-1]
        # the convs of each stage's conv blocks; in a residual encoder (ResEnc) not the 1x1 shortcut convs
        # of ``skip`` nor squeeze-excitation's: the paper puts Pool Skip after the convs of the residual branch
        return {
            name: 2
            for name, m in model.named_modules()
            if isinstance(m, nn.Conv3d | nn.Conv2d)
            and any(name.startswith(s + ".") for s in stages)
            and not {"skip", "squeeze_excitation"} & set(name.split("."))
        }

    return select


NNUNET_BTCV = Policy(
    "nnunet_btcv",
    "the paper's nnU-Net placement on BTCV: every conv of every encoder stage, pool 2",
    _encoder_convs(skip_last=False),
)
NNUNET_AMOS = Policy(
    "nnunet_amos",
    "the paper's nnU-Net placement on AMOS: every conv of every encoder stage but the last (bottleneck), pool 2",
    _encoder_convs(skip_last=True),
)
for _policy in (NNUNET_BTCV, NNUNET_AMOS):
    if _policy.name not in list_policies():
        register_policy(_policy)


@register_model(pool_skip={"policy": "nnunet_btcv"}, spatial_dims=(3,))
def nnunet(
    num_classes: int = 2,
    in_channels: int = 1,
    patch_size: Sequence[int] = (128, 128, 128),
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    deep_supervision: bool = True,
    width: int = BASE_FEATURES,
) -> nn.Module:
    """nnU-Net 3d_fullres (``PlainConvUNet``) planned for ``patch_size`` at ``spacing``; deep supervision.
    ``width``: the first stage's features (nnU-Net's 32; every stage scales with it)."""
    plan = plan_3d_fullres(patch_size, spacing, base_features=width)
    return build_plain_conv_unet(plan, in_channels, num_classes, deep_supervision)
