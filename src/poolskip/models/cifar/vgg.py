"""VGG with batch norm for 32x32 inputs, pytorch-cifar100 layout.

Configuration D (VGG16): 13 3x3 convs with bias, each + BN + ReLU, five 2x2 max-pools (32 -> 1);
classifier 512 -> 4096 -> 4096 -> classes with ReLU and dropout 0.5.
"""

from __future__ import annotations

from torch import Tensor, nn

from .._registry import register_model

__all__ = ["CONFIGS", "VGG", "vgg16"]

#: conv widths per configuration, "M" = 2x2 max-pool
CONFIGS: dict[str, list[int | str]] = {
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG-BN for CIFAR: children ``features`` (convs, BN, ReLU, pools) and ``classifier``."""

    def __init__(self, config: str = "D", num_classes: int = 10, dropout: float = 0.5, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for v in CONFIGS[config]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(in_channels, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model(pool_skip={"policy": "every_conv"})
def vgg16(num_classes: int = 10, in_channels: int = 3) -> VGG:
    """VGG16 with BN; paper: Tables 1 and 4, after every conv (``every_conv``, pool 2)."""
    return VGG("D", num_classes, in_channels=in_channels)
