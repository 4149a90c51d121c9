"""V-Net (Milletari et al. 2016) as MONAI builds it, with the paper's Pool Skip placement.

MONAI's ``VNet`` children: ``in_tr`` (5^3 conv, 16 channels, full resolution), the encoder stages
``down_tr32``, ``down_tr64``, ``down_tr128``, ``down_tr256`` (a 2^3 stride-2 ``down_conv``, then
``ops`` of 5^3 ``LUConv``s), the decoder ``up_tr256``..``up_tr32`` and ``out_tr``. MONAI needs input sizes
divisible by 16: the factory's network zero-pads its input up to that and crops the output back, so it takes
any patch (parameter names are MONAI's). ``in_channels`` must divide 16 (MONAI repeats the input to 16).

Placements (pool 2, Pool Skip after the conv, before its norm and activation):

- ``vnet``: the paper's, the first two encoder stages: every conv of ``in_tr`` and ``down_tr32``;
- ``vnet_full``: every conv of every encoder stage (``in_tr`` .. ``down_tr256``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from ...convert import Policy, list_policies, register_policy
from ...optional import require
from .._registry import register_model

__all__ = ["ENCODER_STAGES", "VNET", "VNET_FULL", "vnet"]

#: MONAI VNet's encoder stages, shallow to deep.
ENCODER_STAGES = ("in_tr", "down_tr32", "down_tr64", "down_tr128", "down_tr256")


def _encoder_convs(stages: tuple[str, ...]):
    def select(model: nn.Module) -> dict[str, int | None]:
        return {
            name: 2 for name, m in model.named_modules() if isinstance(m, nn.Conv3d) and name.split(".")[0] in stages
        }

    return select


VNET = Policy(
    "vnet",
    "the paper's V-Net placement: every conv of the first two encoder stages (in_tr, down_tr32), pool 2",
    _encoder_convs(ENCODER_STAGES[:2]),
)
VNET_FULL = Policy(
    "vnet_full",
    "every conv of every V-Net encoder stage (in_tr .. down_tr256), pool 2",
    _encoder_convs(ENCODER_STAGES),
)
for _policy in (VNET, VNET_FULL):
    if _policy.name not in list_policies():
        register_policy(_policy)


@register_model(pool_skip={"policy": "vnet"}, spatial_dims=(3,))
def vnet(num_classes: int = 2, in_channels: int = 1, dropout: float = 0.5, act: str = "elu") -> nn.Module:
    """V-Net (MONAI ``VNet``), 3D, any input size (padded to a multiple of 16); ``in_channels`` divides 16."""
    if in_channels < 1 or 16 % in_channels:
        raise ValueError(
            f"vnet: in_channels must divide 16 (MONAI's VNet repeats the input to 16 channels), got {in_channels}"
        )
    nets = require("monai.networks.nets", "med", "the vnet model")

    class VNet(nets.VNet):
        """MONAI's VNet, any input size: zero-padded up to a multiple of 16, output cropped back."""

        def forward(self, x: Tensor) -> Tensor:
            size = x.shape[2:]
            pad = [p for s in reversed(size) for p in (0, -s % 16)]
            out = super().forward(F.pad(x, pad) if any(pad) else x)
            return out[(..., *(slice(0, s) for s in size))]

    return VNet(
        spatial_dims=3, in_channels=in_channels, out_channels=num_classes, act=act,
        dropout_prob_down=dropout, dropout_prob_up=(dropout, dropout),
    )  # fmt: skip
