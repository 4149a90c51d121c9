"""A small CNN for quick runs (``poolskip demo``, the ``digits`` recipe, tests): not one of the paper's networks."""

from __future__ import annotations

from torch import nn

from ._registry import register_model


@register_model(pool_skip={"policy": "every_conv"})
def small_cnn(num_classes: int = 10, width: int = 32, in_channels: int = 1) -> nn.Sequential:
    """Three conv-BN-ReLU layers and a linear classifier (8x8 digits and up); Pool Skip after every conv."""
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int (the first convs' channels), got {width!r}")

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(in_channels, width),
        *block(width, width),
        nn.MaxPool2d(2),
        *block(width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )
