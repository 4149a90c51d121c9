"""DeepLabv3+ (Chen et al. 2018) as in VainF/DeepLabV3Plus-Pytorch, the reference of the paper's Table 2.

``deeplabv3plus_resnet101`` and ``deeplabv3plus_mobilenet`` are registered with the paper's placement,
the ``deeplab`` policy (:mod:`.deeplab`): Pool Skip after five convs of the head, pool 2.
"""

from .deeplab import (
    ASPP,
    DEEPLAB,
    DeepLabHeadV3Plus,
    DeepLabV3Plus,
    MobileNetV2Backbone,
    ResNetBackbone,
    deeplabv3plus_mobilenet,
    deeplabv3plus_resnet101,
    load_backbone_weights,
)

__all__ = [
    "ASPP",
    "DEEPLAB",
    "DeepLabHeadV3Plus",
    "DeepLabV3Plus",
    "MobileNetV2Backbone",
    "ResNetBackbone",
    "deeplabv3plus_mobilenet",
    "deeplabv3plus_resnet101",
    "load_backbone_weights",
]
