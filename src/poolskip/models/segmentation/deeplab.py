"""DeepLabv3+ with a dilated ResNet101 or MobileNetV2 backbone (the design of VainF/DeepLabV3Plus-Pytorch).

- Backbone: torchvision's ``resnet101`` (``replace_stride_with_dilation`` for output stride 16 or 8; low-level
  features from ``layer1``, 256 channels) or torchvision's ``mobilenet_v2`` features without the last 1x1 conv
  (strides after the output stride turned into dilations; low-level features from ``features[0:4]``, 24
  channels). Parameter names are torchvision's, so an ImageNet state dict loads into ``model.backbone``.
- Head (``model.classifier``, :class:`DeepLabHeadV3Plus`): low-level ``project`` 1x1 conv -> 48 + BN + ReLU;
  :class:`ASPP` (1x1, three 3x3 atrous convs with rates (6, 12, 18) at output stride 16, (12, 24, 36) at 8,
  image pooling, then a 1x1 projection 1280 -> 256 + BN + ReLU + dropout 0.1) upsampled to the low-level map;
  ``classifier``: 3x3 conv 304 -> 256 + BN + ReLU, then 1x1 -> classes. ``width`` (default 256, the
  reference's) sets the head's channels: ASPP and classifier ``width``, low-level projection
  ``round(48 * width / 256)``; a wider plain head is the cost-matched control of ``reproduce --controls``.
- The logits are upsampled bilinearly (``align_corners=False``) to the input size.

The paper's placement is the ``deeplab`` policy: Pool Skip (pool 2) after the low-level projection, the three
atrous convs and the first classifier conv, i.e. "the convolution of the head block, the first convolution
of the classifier, and all the atrous convolutions". The image-pooling conv works on a 1x1 map and is left
out. The backbone is named ``backbone`` so ``optim.lr_mult: {backbone: 0.1}`` gives DeepLab's backbone rate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...convert import Policy, list_policies, register_policy
from ...errors import PoolskipError
from .._registry import register_model

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

ATROUS_RATES = {16: (6, 12, 18), 8: (12, 24, 36)}


def _check_output_stride(output_stride: int) -> None:
    if output_stride not in ATROUS_RATES:
        raise ValueError(f"output_stride must be 8 or 16, got {output_stride!r}")


# ------------------------------------------------------------------------------------------------ head


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
    )


class ASPPPooling(nn.Sequential):
    """Image-level features: global average pool, 1x1 conv + BN + ReLU, broadcast back to the map size."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True)
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``convs`` = [1x1, three 3x3 atrous, image pooling], then ``project``.

    ``convs[1..3]`` are ``Sequential(conv, BN, ReLU)``; the same module layout (and state-dict keys) as
    torchvision's ``ASPP``, with DeepLabv3+'s dropout 0.1 after the projection.
    """

    def __init__(self, cin: int, rates: Sequence[int], cout: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        branches = [_conv_bn_relu(cin, cout, 1)] + [_conv_bn_relu(cin, cout, 3, r) for r in rates]
        self.convs = nn.ModuleList([*branches, ASPPPooling(cin, cout)])
        self.project = nn.Sequential(
            nn.Conv2d(len(self.convs) * cout, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.project(torch.cat([branch(x) for branch in self.convs], dim=1))

    def atrous_convs(self) -> list[nn.Conv2d]:
        """The three dilated 3x3 convs (where the paper puts Pool Skip)."""
        return [branch[0] for branch in self.convs[1:-1]]


class DeepLabHeadV3Plus(nn.Module):
    """The DeepLabv3+ decoder: ASPP on the deep features, fused with projected low-level features."""

    def __init__(
        self, in_channels: int, low_level_channels: int, num_classes: int, rates: Sequence[int], width: int = 256
    ) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width (the head's channels) must be >= 1, got {width}")
        low = max(1, round(48 * width / 256))
        self.project = _conv_bn_relu(low_level_channels, low, 1)
        self.aspp = ASPP(in_channels, rates, width)
        self.classifier = nn.Sequential(
            nn.Conv2d(low + width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(True),
            nn.Conv2d(width, num_classes, 1),
        )
        for m in self.modules():  # the reference's _init_weight
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, low_level: Tensor, out: Tensor) -> Tensor:
        low_level = self.project(low_level)
        out = F.interpolate(self.aspp(out), size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.classifier(torch.cat([low_level, out], dim=1))

    def pool_skip_sites(self) -> list[nn.Conv2d]:
        """The paper's five convs: low-level projection, the three atrous convs, the first classifier conv."""
        return [self.project[0], *self.aspp.atrous_convs(), self.classifier[0]]


# ------------------------------------------------------------------------------------------- backbones


def _stem(in_channels: int, conv: nn.Conv2d) -> nn.Conv2d:
    """``conv`` itself for RGB; a freshly initialised copy of its shape taking ``in_channels`` otherwise."""
    if in_channels == conv.in_channels:
        return conv
    new = nn.Conv2d(
        in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=conv.bias is not None
    )
    nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
    return new


class ResNetBackbone(nn.Module):
    """torchvision's ResNet101 up to ``layer4`` (no avgpool/fc); returns ``(layer1 output, layer4 output)``."""

    low_level_channels = 256
    out_channels = 2048
    #: keys of torchvision's ImageNet state dict that the backbone does not have
    dropped_prefixes = ("fc.",)
    weights_enum = "ResNet101_Weights"

    def __init__(self, output_stride: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        _check_output_stride(output_stride)
        from torchvision.models import resnet101  # here, not at the top: torchvision takes seconds to import

        net = resnet101(weights=None, replace_stride_with_dilation=[False, output_stride == 8, True])
        self.conv1 = _stem(in_channels, net.conv1)
        for name in ("bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(net, name))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        low = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        return low, self.layer4(self.layer3(self.layer2(low)))


class MobileNetV2Backbone(nn.Module):
    """torchvision's MobileNetV2 ``features[0:18]`` (without the last 1x1 conv to 1280), dilated after the
    output stride; returns ``(features[0:4] output, features[4:18] output)``.

    Dilation follows the reference: in the stage whose stride would pass the output stride, the first block
    keeps stride 1 and the previous dilation, later blocks (and stages) dilate by the skipped stride.
    """

    low_level_channels = 24
    out_channels = 320
    dropped_prefixes = ("features.18.", "classifier.")
    weights_enum = "MobileNet_V2_Weights"

    def __init__(self, output_stride: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        _check_output_stride(output_stride)
        from torchvision.models import mobilenet_v2
        from torchvision.models.mobilenetv2 import InvertedResidual

        features = mobilenet_v2(weights=None).features[:-1]
        features[0][0] = _stem(in_channels, features[0][0])
        current, dilation = 2, 1  # the stem has stride 2
        for block in features[1:]:
            assert isinstance(block, InvertedResidual)
            depthwise = next(m for m in block.conv.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
            stride, rate = depthwise.stride[0], dilation  # rate: this block's dilation
            if stride > 1 and current == output_stride:  # a stage past the output stride: its first block keeps
                dilation *= stride  # stride 1 and the previous rate, the blocks after it dilate by the stride
                stride = 1
            elif stride > 1:
                current *= stride
            depthwise.stride, depthwise.dilation, depthwise.padding = (stride, stride), (rate, rate), (rate, rate)
            block.stride = stride
        self.features = features

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        low = self.features[:4](x)
        return low, self.features[4:](low)


# ---------------------------------------------------------------------------------------------- model


class DeepLabV3Plus(nn.Module):
    """``backbone`` -> ``classifier`` (:class:`DeepLabHeadV3Plus`) -> bilinear upsampling to the input size."""

    def __init__(self, backbone: nn.Module, num_classes: int, output_stride: int = 16, width: int = 256) -> None:
        super().__init__()
        _check_output_stride(output_stride)
        self.output_stride = output_stride
        self.backbone = backbone
        self.classifier = DeepLabHeadV3Plus(
            backbone.out_channels, backbone.low_level_channels, num_classes, ATROUS_RATES[output_stride], width
        )

    def forward(self, x: Tensor) -> Tensor:
        low, out = self.backbone(x)
        return F.interpolate(self.classifier(low, out), size=x.shape[-2:], mode="bilinear", align_corners=False)


def load_backbone_weights(backbone: nn.Module, source: str | os.PathLike | Mapping[str, Tensor]) -> None:
    """Load ImageNet weights into ``backbone``: a state dict, a local file holding one (torchvision's own
    ``.pth`` files, or a dict with a ``state_dict``/``model`` entry), or the name of a torchvision weights
    enum member such as ``IMAGENET1K_V1`` or ``DEFAULT`` (downloads; needs internet).

    The classifier keys of the ImageNet model are dropped; every other key must match (strict)."""
    where = "the state dict"
    if isinstance(source, Mapping):
        state = source
    else:
        text = str(source)
        path = Path(text).expanduser()
        if not path.exists() and text.replace("_", "").isalnum() and text.upper() == text:
            from torchvision.models import get_weight

            try:
                weights = get_weight(f"{backbone.weights_enum}.{text}")
            except (ValueError, KeyError, AttributeError):
                raise PoolskipError(
                    f"backbone_weights {text!r} is neither a file nor a member of torchvision's {backbone.weights_enum}"
                ) from None
            state, where = weights.get_state_dict(progress=True), f"torchvision's {backbone.weights_enum}.{text}"
        else:
            if not path.is_file():
                raise PoolskipError(f"backbone_weights: {path} does not exist (expected an ImageNet state dict file)")
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001  (any unreadable file is the same user error)
                raise PoolskipError(f"backbone_weights: cannot read {path} as a torch state dict: {e}") from None
            where = str(path)
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), Mapping):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(backbone.dropped_prefixes)}
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise PoolskipError(f"backbone_weights {where} does not fit the {type(backbone).__name__}: {first}") from None
    missing = [k for k in missing if ".pool_skip." not in f".{k}"]
    if missing or unexpected:
        raise PoolskipError(
            f"backbone_weights {where} does not fit the {type(backbone).__name__}: "
            f"missing keys {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected keys {list(unexpected)[:5]}{'...' if len(unexpected) > 5 else ''}"
        )


def _build(backbone: nn.Module, num_classes: int, output_stride: int, backbone_weights, width: int) -> DeepLabV3Plus:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int (ASPP and decoder channels, DeepLabv3+: 256), got {width!r}")
    if backbone_weights is not None:
        load_backbone_weights(backbone, backbone_weights)
    return DeepLabV3Plus(backbone, num_classes, output_stride, width)


@register_model(pool_skip={"policy": "deeplab"}, spatial_dims=(2,))
def deeplabv3plus_resnet101(
    num_classes: int = 21,
    in_channels: int = 3,
    output_stride: int = 16,
    backbone_weights: str | None = None,
    width: int = 256,
) -> DeepLabV3Plus:
    """DeepLabv3+ ResNet101 (dilated, OS 16/8); paper: Table 2, ``deeplab`` (five head convs, pool 2).
    ``width``: the head's channels (256 in the reference)."""
    return _build(ResNetBackbone(output_stride, in_channels), num_classes, output_stride, backbone_weights, width)


@register_model(pool_skip={"policy": "deeplab"}, spatial_dims=(2,))
def deeplabv3plus_mobilenet(
    num_classes: int = 21,
    in_channels: int = 3,
    output_stride: int = 16,
    backbone_weights: str | None = None,
    width: int = 256,
) -> DeepLabV3Plus:
    """DeepLabv3+ MobileNetV2 (dilated, OS 16/8); paper: Table 2, ``deeplab`` (five head convs, pool 2).
    ``width``: the head's channels (256 in the reference)."""
    return _build(MobileNetV2Backbone(output_stride, in_channels), num_classes, output_stride, backbone_weights, width)


# --------------------------------------------------------------------------------------------- policy


def _deeplab(model: nn.Module) -> dict[str, int | None]:
    sites = {id(c) for head in model.modules() if isinstance(head, DeepLabHeadV3Plus) for c in head.pool_skip_sites()}
    return {name: 2 for name, m in model.named_modules() if id(m) in sites}


DEEPLAB = Policy(
    "deeplab",
    "Table 2's DeepLabv3+: the low-level projection, the three atrous convs and the first classifier conv "
    "of the head (five convs), pool 2; not the backbone, not the 1x1 image-pooling conv",
    _deeplab,
)
if DEEPLAB.name not in list_policies():  # importing twice (e.g. a reload) must not fail
    register_policy(DEEPLAB)
