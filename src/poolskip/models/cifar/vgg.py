"""VGG with batch norm for 32x32 inputs, pytorch-cifar100 layout.

Configuration D (VGG16): 13 3x3 convs with bias, each + BN + ReLU, five 2x2 max-pools (32 -> 1);
classifier 512 -> 4096 -> 4096 -> classes with ReLU and dropout 0.5. ``width`` is the first conv's
channels (64 in the paper's network); every conv scales with it and the classifier's hidden layers
are ``64 * width`` wide (4096 at 64), e.g. for quick CPU runs.
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

    def __init__(
        self, config: str = "D", num_classes: int = 10, dropout: float = 0.5, in_channels: int = 3, width: int = 64
    ) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(
                f"width must be a positive int (the first conv's channels, 64 in the paper), got {width!r}"
            )
        layers: list[nn.Module] = []
        for v in CONFIGS[config]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                v = v * width // 64
                layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_channels = v
        self.features = nn.Sequential(*layers)
        hidden = 64 * width
        self.classifier = nn.Sequential(
            nn.Linear(in_channels, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


@register_model(pool_skip={"policy": "every_conv"})
def vgg16(num_classes: int = 10, in_channels: int = 3, width: int = 64) -> VGG:
    """VGG16 with BN; paper: Tables 1 and 4, after every conv (``every_conv``, pool 2).

    ``width=64`` (the first conv's channels) is the paper's network; every layer scales with it.
    """
    return VGG("D", num_classes, in_channels=in_channels, width=width)
