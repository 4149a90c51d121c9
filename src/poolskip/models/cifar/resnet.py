"""ResNets for 32x32 inputs (pytorch-cifar100 layout), one builder for every depth.

3x3 stem conv (no bias) + BN + ReLU at stride 1, no max-pool; four stages of residual blocks with
widths ``width * (1, 2, 4, 8)`` and strides 1/2/2/2; a 1x1 conv + BN shortcut where the shape changes;
global average pool; fc. Blocks name their convs ``conv1``, ``conv2`` (``conv3``) and their shortcut
``shortcut``, so the ``official`` and ``deep_resnet`` placement policies find the residual branches.

Depths 18/34 (BasicBlock) and 50/101/152 follow He et al. 2016; 200/350/420 use the ResNet-RS stage
lists (Bello et al. 2021) with this CIFAR stem, without SE or ResNet-D changes, as the paper did.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .._registry import register_model

__all__ = ["DEPTHS", "BasicBlock", "Bottleneck", "ResNet", "resnet"]


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first strided) with BN; output ``planes`` channels."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand to ``4 * planes`` channels, each with BN."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _shortcut(in_planes, out, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _shortcut(in_planes: int, out_planes: int, stride: int) -> nn.Module:
    if stride == 1 and in_planes == out_planes:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, 1, stride, bias=False), nn.BatchNorm2d(out_planes))


class ResNet(nn.Module):
    """A CIFAR ResNet: ``block`` repeated ``layers[i]`` times in stage i, base width ``width``.

    Children: ``conv1``, ``bn1`` (the stem), ``layer1``..``layer4``, ``avgpool``, ``fc``.
    PyTorch's default initialisation, as pytorch-cifar100 and the official Pool Skip code.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int = 10,
        width: int = 64,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if len(layers) != 4 or any(n < 1 for n in layers):
            raise ValueError(f"layers must be four positive block counts, got {list(layers)}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        in_planes = width
        for i, (n, stride) in enumerate(zip(layers, (1, 2, 2, 2)), 1):
            planes = width * 2 ** (i - 1)
            blocks = []
            for j in range(n):
                blocks.append(block(in_planes, planes, stride if j == 0 else 1))
                in_planes = planes * block.expansion
            self.add_module(f"layer{i}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


#: depth -> (block, blocks per stage)
DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
    200: (Bottleneck, (3, 24, 36, 3)),  # ResNet-RS
    350: (Bottleneck, (4, 36, 72, 4)),  # ResNet-RS
    420: (Bottleneck, (4, 44, 87, 4)),  # ResNet-RS
}


def resnet(depth: int, num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """The CIFAR ResNet of ``depth`` (one of :data:`DEPTHS`); ``width`` is the stem/first-stage width.

    ``width=64`` is the paper's network; a smaller width (e.g. 16, 1/16 of the parameters) keeps the
    same depth and layout for quick CPU runs. ``in_channels``: channels of the input images.
    """
    if depth not in DEPTHS:
        raise ValueError(f"no CIFAR ResNet of depth {depth}; known depths: {sorted(DEPTHS)}")
    block, layers = DEPTHS[depth]
    return ResNet(block, layers, num_classes=num_classes, width=width, in_channels=in_channels)


@register_model(pool_skip={"policy": "official"})
def resnet18(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet18 (BasicBlock [2,2,2,2]); paper: Table 1, placed by the official code (``official``, pool 2)."""
    return resnet(18, num_classes, width, in_channels)


@register_model(pool_skip={"policy": "official"})
def resnet34(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet34 (BasicBlock [3,4,6,3]); paper: Table 1, placed by the official code (``official``, pool 2)."""
    return resnet(34, num_classes, width, in_channels)


@register_model(pool_skip={"policy": "deep_resnet"})
def resnet50(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet50 (Bottleneck [3,4,6,3]); paper: Fig. 3, ``deep_resnet`` (pool 4 on CIFAR-100, 2 on CIFAR-10)."""
    return resnet(50, num_classes, width, in_channels)


@register_model(pool_skip={"policy": "deep_resnet"})
def resnet101(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet101 (Bottleneck [3,4,23,3]); paper: Fig. 3, ``deep_resnet`` (pool 4 on CIFAR-100, 2 on CIFAR-10)."""
    return resnet(101, num_classes, width, in_channels)


@register_model(pool_skip={"policy": "deep_resnet"})
def resnet152(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet152 (Bottleneck [3,8,36,3]); paper: Fig. 3, ``deep_resnet`` (pool 4 on CIFAR-100, 2 on CIFAR-10)."""
    return resnet(152, num_classes, width, in_channels)


@register_model(pool_skip={"policy": "deep_resnet"})
def resnet200(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet200 (ResNet-RS [3,24,36,3]); paper: Fig. 3, ``deep_resnet`` (pool 4 on CIFAR-100, 2 on CIFAR-10)."""
    return resnet(200, num_classes, width, in_channels)


@register_model(pool_skip={"policy": "deep_resnet"})
def resnet350(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet350 (ResNet-RS [4,36,72,4]); paper: Fig. 3/4, ``deep_resnet`` (pool 4 on CIFAR-100, 2 on CIFAR-10)."""
    return resnet(350, num_classes, width, in_channels)


@register_model(pool_skip={"policy": "deep_resnet"})
def resnet420(num_classes: int = 10, width: int = 64, in_channels: int = 3) -> ResNet:
    """ResNet420 (ResNet-RS [4,44,87,4]); paper: Fig. 3/4, ``deep_resnet`` (pool 4 on CIFAR-100, 2 on CIFAR-10)."""
    return resnet(420, num_classes, width, in_channels)
