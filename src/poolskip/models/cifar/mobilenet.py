"""MobileNet v1 (width 1.0) for 32x32 inputs, pytorch-cifar100 layout.

3x3 stem conv 3->32 (stride 1, no bias) + BN + ReLU, then depthwise-separable blocks: a depthwise 3x3
(no bias) + BN + ReLU and a pointwise 1x1 (with bias) + BN + ReLU. Stride 2 where the width grows
64->128, 128->256, 256->512, 512->1024; average pool; fc.
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
    """MobileNet v1 for CIFAR: children ``stem``, ``stage1``..``stage4``, ``avgpool``, ``fc``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            _conv_bn_relu(nn.Conv2d(in_channels, 32, 3, 1, 1, bias=False)), DepthwiseSeparable(32, 64)
        )
        self.stage1 = nn.Sequential(DepthwiseSeparable(64, 128, 2), DepthwiseSeparable(128, 128))
        self.stage2 = nn.Sequential(DepthwiseSeparable(128, 256, 2), DepthwiseSeparable(256, 256))
        self.stage3 = nn.Sequential(DepthwiseSeparable(256, 512, 2), *(DepthwiseSeparable(512, 512) for _ in range(5)))
        self.stage4 = nn.Sequential(DepthwiseSeparable(512, 1024, 2), DepthwiseSeparable(1024, 1024))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stem(x)))))
        return self.fc(self.avgpool(x).flatten(1))


@register_model(pool_skip={"policy": "every_conv"})
def mobilenet(num_classes: int = 10, in_channels: int = 3) -> MobileNet:
    """MobileNet v1 (width 1.0); paper: Table 1, after every conv incl. depthwise (``every_conv``, pool 2)."""
    return MobileNet(num_classes, in_channels)
