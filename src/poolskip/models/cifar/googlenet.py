"""GoogLeNet (Inception v1) for 32x32 inputs, pytorch-cifar100 layout.

Stem: three 3x3 convs (64, 64, 192; stride 1, no bias) with BN + ReLU; max-pool(3, s2, p1); inception
a3, b3; max-pool; a4..e4; max-pool; a5, b5; average pool; dropout 0.4; fc. Each inception module has
four branches (1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 in place of the 5x5; 3x3 max-pool -> 1x1), every
conv with bias and followed by BN + ReLU, concatenated along channels.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._registry import register_model

__all__ = ["GoogLeNet", "Inception", "googlenet"]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
    return [conv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]


class Inception(nn.Module):
    """An inception module; its output has ``n1x1 + n3x3 + n5x5 + pool_proj`` channels."""

    def __init__(
        self, in_channels: int, n1x1: int, n3x3_reduce: int, n3x3: int, n5x5_reduce: int, n5x5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = nn.Sequential(*_conv_bn_relu(in_channels, n1x1, 1))
        self.branch2 = nn.Sequential(*_conv_bn_relu(in_channels, n3x3_reduce, 1), *_conv_bn_relu(n3x3_reduce, n3x3, 3))
        self.branch3 = nn.Sequential(
            *_conv_bn_relu(in_channels, n5x5_reduce, 1),
            *_conv_bn_relu(n5x5_reduce, n5x5, 3),
            *_conv_bn_relu(n5x5, n5x5, 3),
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), *_conv_bn_relu(in_channels, pool_proj, 1))
        self.out_channels = n1x1 + n3x3 + n5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class GoogLeNet(nn.Module):
    """GoogLeNet for CIFAR: ``stem``, inception ``a3``..``b5``, ``maxpool``, ``avgpool``, ``dropout``, ``fc``."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.4, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            *_conv_bn_relu(in_channels, 64, 3, bias=False),
            *_conv_bn_relu(64, 64, 3, bias=False),
            *_conv_bn_relu(64, 192, 3, bias=False),
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.a3 = Inception(192, 64, 96, 128, 16, 32, 32)
        self.b3 = Inception(256, 128, 128, 192, 32, 96, 64)
        self.a4 = Inception(480, 192, 96, 208, 16, 48, 64)
        self.b4 = Inception(512, 160, 112, 224, 24, 64, 64)
        self.c4 = Inception(512, 128, 128, 256, 24, 64, 64)
        self.d4 = Inception(512, 112, 144, 288, 32, 64, 64)
        self.e4 = Inception(528, 256, 160, 320, 32, 128, 128)
        self.a5 = Inception(832, 256, 160, 320, 32, 128, 128)
        self.b5 = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.stem(x))
        x = self.maxpool(self.b3(self.a3(x)))
        x = self.maxpool(self.e4(self.d4(self.c4(self.b4(self.a4(x))))))
        x = self.b5(self.a5(x))
        return self.fc(self.dropout(self.avgpool(x).flatten(1)))


@register_model(pool_skip={"policy": "every_conv"})
def googlenet(num_classes: int = 10, in_channels: int = 3) -> GoogLeNet:
    """GoogLeNet; paper: Table 1, after every conv of stem and inception branches (``every_conv``, pool 2)."""
    return GoogLeNet(num_classes, in_channels=in_channels)
