"""DeepLabv3+ (ResNet101 / MobileNetV2): torchvision's parts, the deeplab placement, odd sizes, local weights."""

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet101
from torchvision.models.segmentation.deeplabv3 import ASPP as TorchvisionASPP

from poolskip import convert, load_plain_state_dict
from poolskip.errors import PoolskipError
from poolskip.models import create_model, get_model_entry, list_models
from poolskip.models.segmentation import ASPP, MobileNetV2Backbone, ResNetBackbone

FIVE = [
    "classifier.project.0",
    "classifier.aspp.convs.1.0",
    "classifier.aspp.convs.2.0",
    "classifier.aspp.convs.3.0",
    "classifier.classifier.0",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _pool_skip_sites(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {n: m.pool_skip.pool_size for n, m in model.named_modules() if hasattr(m, "pool_skip") and n}


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_models_are_registered_with_the_deeplab_placement():
    assert {"deeplabv3plus_resnet101", "deeplabv3plus_mobilenet"} <= set(list_models())
    for name in ("deeplabv3plus_resnet101", "deeplabv3plus_mobilenet"):
        assert get_model_entry(name).pool_skip == {"policy": "deeplab"}
        assert get_model_entry(name).spatial_dims == (2,)
    with torch.device("meta"):
        model = create_model("deeplabv3plus_resnet101", num_classes=21, pool_skip=True)
        plain = create_model("deeplabv3plus_resnet101", num_classes=19)
    assert _pool_skip_sites(model) == dict.fromkeys(FIVE, (2, 2))
    assert model.classifier.classifier[-1].out_channels == 21
    assert _pool_skip_sites(plain) == {}
    assert plain.classifier.classifier[-1].out_channels == 19


def test_backbones_are_torchvisions_with_its_parameter_names():
    """The backbone state dicts are torchvision's ImageNet models' minus their classifiers (same shapes)."""
    with torch.device("meta"):
        tv_r, tv_m = resnet101(), mobilenet_v2()
        ours_r, ours_m = ResNetBackbone(16), MobileNetV2Backbone(16)
    ref_r = {k: v.shape for k, v in tv_r.state_dict().items() if not k.startswith("fc.")}
    ref_m = {k: v.shape for k, v in tv_m.state_dict().items() if not k.startswith(("features.18.", "classifier."))}
    assert {k: v.shape for k, v in ours_r.state_dict().items()} == ref_r
    assert {k: v.shape for k, v in ours_m.state_dict().items()} == ref_m
    assert _count(ours_r) == _count(tv_r) - _count(tv_r.fc) == 42_500_160
    assert _count(ours_m) == _count(tv_m) - _count(tv_m.features[18]) - _count(tv_m.classifier)


def test_head_parameter_count_matches_torchvisions_aspp_plus_the_decoder():
    with torch.device("meta"):
        for name, cin, low in (("deeplabv3plus_resnet101", 2048, 256), ("deeplabv3plus_mobilenet", 320, 24)):
            model = create_model(name, num_classes=21)
            decoder = (low * 48 + 2 * 48) + (304 * 256 * 9 + 2 * 256) + (256 * 21 + 21)
            assert _count(model.classifier) == _count(TorchvisionASPP(cin, [6, 12, 18])) + decoder
    # pinned plain totals (backbone + head as counted above; no published reference count to check against)
    assert _count(model) == 5_225_717


def test_aspp_computes_what_torchvisions_aspp_computes():
    torch.manual_seed(0)
    ref = TorchvisionASPP(16, [2, 3, 4], out_channels=8).eval()
    ours = ASPP(16, [2, 3, 4], cout=8).eval()
    ours.load_state_dict(ref.state_dict())  # same module layout and keys
    x = torch.randn(2, 16, 9, 11)
    torch.testing.assert_close(ours(x), ref(x))


@pytest.mark.parametrize("output_stride", [16, 8])
def test_mobilenet_output_stride_and_odd_sizes_end_to_end(output_stride):
    """Odd inputs give odd maps at every level; Pool Skip handles them, logits come back at the input size."""
    torch.manual_seed(0)
    model = create_model("deeplabv3plus_mobilenet", num_classes=5, pool_skip=True, output_stride=output_stride)
    shapes = {}
    model.backbone.register_forward_hook(lambda m, i, o: shapes.update(low=o[0].shape, out=o[1].shape))
    x = torch.randn(2, 3, 65, 97)
    out = model(x)
    assert out.shape == (2, 5, 65, 97)
    assert shapes["low"][-2:] == (17, 25)  # output stride 4: ceil(65/4), ceil(97/4)
    expect = {16: (5, 7), 8: (9, 13)}[output_stride]
    assert shapes["out"][-2:] == expect
    out.mean().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if "pool_skip" in n)
    rates = [m.dilation[0] for m in model.classifier.aspp.atrous_convs()]
    assert rates == {16: [6, 12, 18], 8: [12, 24, 36]}[output_stride]


def test_resnet101_dilates_for_output_stride_8():
    torch.manual_seed(0)
    model = create_model("deeplabv3plus_resnet101", num_classes=3, pool_skip=True, output_stride=8).eval()
    with torch.no_grad():
        low, out = model.backbone(torch.randn(1, 3, 33, 33))
        assert low.shape[-2:] == (9, 9) and out.shape[-2:] == (5, 5) and out.shape[1] == 2048
        assert model(torch.randn(1, 3, 33, 31)).shape == (1, 3, 33, 31)


def test_513_crop_gives_the_papers_odd_maps():
    """At 513x513 the low-level map is 129x129 and ASPP's 33x33 (OS16); the five Pool Skips see them."""
    model = create_model("deeplabv3plus_mobilenet", num_classes=21, pool_skip=True).eval()
    seen = {}
    for name, m in model.named_modules():
        if name in FIVE:
            m.register_forward_hook(lambda mod, i, o, name=name: seen.update({name: tuple(o.shape[-2:])}))
    with torch.no_grad():
        assert model(torch.randn(1, 3, 513, 513)).shape == (1, 21, 513, 513)
    assert seen == {FIVE[0]: (129, 129), **dict.fromkeys(FIVE[1:4], (33, 33)), FIVE[4]: (129, 129)}


def test_a_plain_checkpoint_loads_into_the_pool_skip_model():
    plain = create_model("deeplabv3plus_mobilenet", num_classes=4)
    ps = create_model("deeplabv3plus_mobilenet", num_classes=4, pool_skip=True)
    new = load_plain_state_dict(ps, plain.state_dict())
    assert len(new) == 10 and all(".pool_skip.conv." in k for k in new)
    # and convert() with the policy name is the same as pool_skip=True
    again = create_model("deeplabv3plus_mobilenet", num_classes=4)
    report = convert(again, "deeplab")
    assert [p.name for p in report.converted] == FIVE


def test_backbone_weights_from_a_local_state_dict(tmp_path):
    torch.manual_seed(1)
    imagenet = mobilenet_v2()  # stands in for the ImageNet weights: a full torchvision state dict
    path = tmp_path / "mobilenet_v2.pth"
    torch.save(imagenet.state_dict(), path)
    model = create_model("deeplabv3plus_mobilenet", num_classes=3, pool_skip=True, backbone_weights=str(path))
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, imagenet.state_dict()[k])
    torch.save({"state_dict": {f"module.{k}": v for k, v in imagenet.state_dict().items()}}, tmp_path / "wrapped.pt")
    wrapped = create_model("deeplabv3plus_mobilenet", num_classes=3, backbone_weights=str(tmp_path / "wrapped.pt"))
    torch.testing.assert_close(wrapped.backbone.features[0][0].weight, imagenet.features[0][0].weight)


def test_backbone_weights_errors_name_the_file(tmp_path):
    with pytest.raises(PoolskipError, match="does not exist"):
        create_model("deeplabv3plus_mobilenet", backbone_weights=str(tmp_path / "missing.pth"))
    bad = tmp_path / "notweights.pth"
    bad.write_text("hello")
    with pytest.raises(PoolskipError, match="cannot read .*notweights.pth"):
        create_model("deeplabv3plus_mobilenet", backbone_weights=str(bad))
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, other)
    with pytest.raises(PoolskipError, match="resnet.pth does not fit the MobileNetV2Backbone"):
        create_model("deeplabv3plus_mobilenet", backbone_weights=str(other))
    with pytest.raises(PoolskipError, match="neither a file nor a member"):
        create_model("deeplabv3plus_mobilenet", backbone_weights="NOT_A_WEIGHT")


def test_in_channels_and_output_stride_are_checked():
    model = create_model("deeplabv3plus_mobilenet", num_classes=2, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 2, 32, 32)
    with pytest.raises(ValueError, match="output_stride must be 8 or 16"):
        create_model("deeplabv3plus_mobilenet", output_stride=32)


@pytest.mark.parametrize(
    "output_stride, expect",
    [
        # block index -> (stride, dilation) of its depthwise conv, from block 7 on (earlier blocks are undilated)
        (16, {7: (2, 1), 11: (1, 1), 14: (1, 1), 15: (1, 2), 16: (1, 2), 17: (1, 2)}),
        (8, {7: (1, 1), 8: (1, 2), 10: (1, 2), 11: (1, 2), 14: (1, 2), 15: (1, 4), 16: (1, 4), 17: (1, 4)}),
    ],
)
def test_mobilenet_dilation_follows_the_reference(output_stride, expect):
    """The stage that would pass the output stride keeps stride 1; its first block keeps the previous dilation."""
    with torch.device("meta"):
        backbone = MobileNetV2Backbone(output_stride)
    got = {}
    for i, block in enumerate(backbone.features[1:], 1):
        dw = next(m for m in block.conv.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
        assert dw.padding == dw.dilation  # "same" padding for a dilated 3x3
        got[i] = (dw.stride[0], dw.dilation[0])
    assert {i: got[i] for i in expect} == expect
    assert all(got[i][1] == 1 for i in range(1, 7))
