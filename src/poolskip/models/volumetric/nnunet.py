"""nnU-Net's 3D U-Net (``PlainConvUNet`` from ``dynamic-network-architectures``) as its planner sets it up.

The topology comes from :func:`~poolskip.models.volumetric.planning.plan_3d_fullres` (nnU-Net's default
planner); the network has two convs per stage in encoder and decoder, conv bias, instance norm (affine,
eps 1e-5), LeakyReLU(0.01), no dropout and deep supervision: what nnU-Net writes into ``nnUNetPlans.json``.

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

from collections.abc import Sequence

from torch import nn

from ...convert import Policy, list_policies, register_policy
from ...optional import require
from .._registry import register_model
from .planning import BASE_FEATURES, Plan, plan_3d_fullres

__all__ = ["NNUNET_AMOS", "NNUNET_BTCV", "build_plain_conv_unet", "nnunet"]


def build_plain_conv_unet(plan: Plan, in_channels: int, num_classes: int, deep_supervision: bool = True) -> nn.Module:
    """nnU-Net's ``PlainConvUNet`` for ``plan``, with nnU-Net's 3d_fullres settings and initialisation (He with
    negative slope 1e-2, zero biases: ``network.apply(network.initialize)``, as nnU-Net v2's
    ``get_network_from_plans`` does)."""
    unet = require("dynamic_network_architectures.architectures.unet", "med", "the nnunet model")
    n = plan.n_stages
    net = unet.PlainConvUNet(
        input_channels=in_channels, n_stages=n, features_per_stage=list(plan.features), conv_op=nn.Conv3d,
        kernel_sizes=[list(k) for k in plan.kernel_sizes], strides=[list(s) for s in plan.strides],
        n_conv_per_stage=[2] * n, num_classes=num_classes, n_conv_per_stage_decoder=[2] * (n - 1),
        conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
        dropout_op=None, dropout_op_kwargs=None, nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True},
        deep_supervision=deep_supervision,
    )  # fmt: skip
    net.apply(net.initialize)
    return net


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
