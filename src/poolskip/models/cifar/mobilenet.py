"""MobileNet v1 (width 1.0) for 32x32 inputs, pytorch-cifar100 layout.

3x3 stem conv 3->32 (stride 1, no bias) + BN + ReLU, then depthwise-separable blocks: a depthwise 3x3
(no bias) + BN + ReLU and a pointwise 1x1 (with bias) + BN + ReLU. Stride 2 where the width grows
64->128, 128->256, 256->512, 512->1024; average pool; fc. ``width`` is the stem width (32 in the paper's
network); every layer scales with it (``width=16`` halves every layer), e.g. for quick CPU runs or
for a plain network widened to Pool Skip's cost.
"""

from __future__ import annotations

from torch import Tensor, nn

from .._registry import register_model

__all__ = ["DepthwiseSeparable", "MobileNet", "mobilenet"]


def _conv_bn_relu(conv: nn.Conv2d) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels), nn.ReLU(inplace=True))


class DepthwiseSeparable(nn.Sequential):
    """``depthwise`` (3x3, one filter per channel, no bias) then ``pointwise`` (1x1, bias), each + BN + ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.depthwise = _conv_bn_relu(
            nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False)
        )
        self.pointwise = _conv_bn_relu(nn.Conv2d(in_channels, out_channels, 1))


class MobileNet(nn.Module):
    """MobileNet v1 for CIFAR: children ``stem``, ``stage1``..``stage4``, ``avgpool``, ``fc``.

    ``width`` is the stem's channels (32); the blocks have 2, 4, 8, 16 and 32 times as many.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 32) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive int (the stem's channels, 32 in the paper), got {width!r}")
        w = width
        self.stem = nn.Sequential(
            _conv_bn_relu(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False)), DepthwiseSeparable(w, 2 * w)
        )
        self.stage1 = nn.Sequential(DepthwiseSeparable(2 * w, 4 * w, 2), DepthwiseSeparable(4 * w, 4 * w))
        self.stage2 = nn.Sequential(DepthwiseSeparable(4 * w, 8 * w, 2), DepthwiseSeparable(8 * w, 8 * w))
        self.stage3 = nn.Sequential(
            DepthwiseSeparable(8 * w, 16 * w, 2), *(DepthwiseSeparable(16 * w, 16 * w) for _ in range(5))
        )
        self.stage4 = nn.Sequential(DepthwiseSeparable(16 * w, 32 * w, 2), DepthwiseSeparable(32 * w, 32 * w))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stem(x)))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model(pool_skip={"policy": "every_conv"})
def mobilenet(num_classes: int = 10, in_channels: int = 3, width: int = 32) -> MobileNet:
    """MobileNet v1 (width 1.0); paper: Table 1, after every conv incl. depthwise (``every_conv``, pool 2).

    ``width=32`` (the stem's channels) is the paper's network; every layer scales with it.
    """
    return MobileNet(num_classes, in_channels, width)
