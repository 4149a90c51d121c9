import copy
import pickle
import re
import warnings

import pytest
import torch
from torch import nn
from torchvision import models as tvm

from poolskip import PoolSkip, convert, list_policies, load_plain_state_dict, unconvert
from poolskip.convert import Policy, is_converted, register_policy


def _n_convs(model, types=(nn.Conv1d, nn.Conv2d, nn.Conv3d)):
    return sum(isinstance(m, types) for m in model.modules())


def _round_trip(factory, x, **convert_kwargs):
    """Plain model -> checkpoint; fresh converted model loads it; zero-init Pool Skip = plain outputs."""
    torch.manual_seed(0)
    plain = factory().eval()
    sd = plain.state_dict()
    converted = factory()
    report = convert(converted, zero_init=True, **convert_kwargs)
    keys = set(converted.state_dict())
    assert set(sd) <= keys, "original parameter names moved"
    assert keys - set(sd) == set(report.new_keys)
    new = load_plain_state_dict(converted, sd)
    assert set(new) == set(report.new_keys)
    converted.eval()
    with torch.no_grad():
        torch.testing.assert_close(converted(x), plain(x), rtol=1e-5, atol=1e-5)
    return converted, report


@pytest.mark.parametrize(
    "factory,x",
    [
        (lambda: tvm.resnet18(num_classes=10), torch.randn(2, 3, 32, 32)),
        (lambda: tvm.mobilenet_v2(num_classes=10), torch.randn(2, 3, 32, 32)),
        (lambda: tvm.vgg11_bn(num_classes=10), torch.randn(2, 3, 32, 32)),
    ],
    ids=["resnet18", "mobilenet_v2", "vgg11_bn"],
)
def test_torchvision_models_every_conv(factory, x):
    converted, report = _round_trip(factory, x, example_input=x)
    n = _n_convs(factory())
    assert len(report) + len(report.skipped) == n
    assert len(report) > 0
    assert all(re.search(r"smaller than pool size", why) for _, why in report.skipped)
    # the new parameters really are used and trainable
    for p in converted.parameters():
        p.grad = None
    converted.train()
    converted(x).sum().backward()
    grads = [m.pool_skip.conv.weight.grad for m in converted.modules() if is_converted(m)]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_official_policy_on_torchvision_resnets():
    m = tvm.resnet18()
    report = convert(m, "official")
    names = [p.name for p in report.converted]
    assert len(names) == 16 and all(re.fullmatch(r"layer\d\.\d\.conv[12]", n) for n in names)
    assert {p.pool_size for p in report.converted} == {(2, 2)}
    assert "conv1" not in names and not any("downsample" in n for n in names)

    m = tvm.resnet50()
    report = convert(m, "official")
    assert len(report) == 48 and {p.pool_size for p in report.converted} == {(4, 4)}
    # the explicit pool size overrides the policy's
    report = convert(tvm.resnet50(), "official", pool_size=2)
    assert {p.pool_size for p in report.converted} == {(2, 2)}


def test_3d_model_r3d18():
    x = torch.randn(1, 3, 4, 32, 32)
    converted, report = _round_trip(lambda: tvm.video.r3d_18(num_classes=5), x, include="layer[12].*")
    assert len(report) > 0 and all(p.pool_size == (2, 2, 2) for p in report.converted)
    assert all(p.name.startswith(("layer1", "layer2")) for p in report.converted)


def test_parameter_count_matches_report():
    m = tvm.resnet18()
    before = sum(p.numel() for p in m.parameters())
    report = convert(m, "official", bias=True)
    after = sum(p.numel() for p in m.parameters())
    assert after - before == report.num_params
    # inner conv C -> C 3x3 with bias, for each residual-branch conv
    expected = sum(c * c * 9 + c for c in [64] * 4 + [128] * 4 + [256] * 4 + [512] * 4)
    assert report.num_params == expected


def test_placement_is_after_conv_before_bn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    x = torch.randn(2, 3, 6, 6)
    conv_out = model[0](x)
    convert(model)
    seen = {}
    model[1].register_forward_hook(lambda m, i, o: seen.setdefault("bn_in", i[0]))
    model(x)
    torch.testing.assert_close(seen["bn_in"], model[0].pool_skip(conv_out))


def test_convert_twice_does_not_insert_twice():
    m = tvm.resnet18()
    first = convert(m)
    n_params = sum(p.numel() for p in m.parameters())
    second = convert(m)
    assert len(second) == 0 and len(second.skipped) == len(first)
    assert all(why == "already converted" for _, why in second.skipped)
    assert sum(p.numel() for p in m.parameters()) == n_params
    hooks = [len(mod._forward_hooks) for mod in m.modules() if is_converted(mod)]
    assert set(hooks) == {1}


def test_selection_filters():
    m = tvm.resnet18()
    r = convert(m, include="layer1.*")
    assert len(r) == 4 and all(p.name.startswith("layer1.") for p in r.converted)

    m = tvm.resnet18()
    r = convert(m, exclude=re.compile(r"downsample|^conv1$"))
    assert len(r) == 16

    m = tvm.resnet18()
    r = convert(m, where=lambda name, conv: conv.kernel_size == (1, 1))
    assert len(r) == 3 and all("downsample" in p.name for p in r.converted)

    m = tvm.resnet18()
    n = _n_convs(m)
    r = convert(m, pool_size=lambda name, conv: 4 if conv.out_channels >= 256 else None)
    assert {p.pool_size for p in r.converted} == {(4, 4)}
    assert len(r.skipped) == n - len(r)
    assert all(why == "pool_size function returned None" for _, why in r.skipped)

    m = tvm.resnet18()
    r = convert(m, include=["conv1", "layer4.1.*"], pool_size=(2, 1), kernel_size=1, bias=False)
    assert [p.name for p in r.converted] == ["conv1", "layer4.1.conv1", "layer4.1.conv2"]
    assert m.conv1.pool_skip.conv.kernel_size == (1, 1) and m.conv1.pool_skip.conv.bias is None


def test_transposed_only_when_asked():
    def make():
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ConvTranspose2d(4, 3, 2, stride=2))

    assert [p.name for p in convert(make()).converted] == ["0"]
    m = make()
    assert [p.name for p in convert(m, transposed=True).converted] == ["0", "1"]
    assert m(torch.randn(1, 2, 5, 5)).shape == (1, 3, 10, 10)
    # a policy that selects no transposed conv (every built-in one) says so instead of leaving them out silently
    with pytest.warns(UserWarning, match=r"transposed=True, but placement policy 'every_conv' selects none .*'1'"):
        r = convert(make(), policy="every_conv", transposed=True)
    assert [p.name for p in r.converted] == ["0"]
    assert r.skipped == [("1", "transposed conv not selected by policy 'every_conv'")]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # without transposed=True nothing was asked of them: no warning
        assert [p.name for p in convert(make(), policy="every_conv").converted] == ["0"]
    # a policy that selects one transposed conv leaves the other out on purpose, even where exclude= drops the first
    takes_one = Policy("takes_one_transposed", "convs 0 and 1", lambda m: {"0": 2, "1": 2})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = nn.Sequential(*make(), nn.ConvTranspose2d(3, 3, 1))
        r = convert(model, policy=takes_one, transposed=True, exclude=["1"])
    assert [p.name for p in r.converted] == ["0"] and r.skipped == []


def test_small_maps_skipped_by_rule_and_harmless_without_it():
    def make():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.Flatten())

    x = torch.randn(2, 3, 8, 8)
    m = make()
    r = convert(m, example_input=x)
    assert [p.name for p in r.converted] == ["0"]
    assert r.skipped == [("2", "output size (1, 1) smaller than pool size (2, 2)")]
    assert "smaller than pool size" in str(r)
    m = make()
    convert(m)  # no rule: the 1x1 map still runs (the window is the whole map)
    assert m(x).shape == (2, 8)


def test_model_behaviour_after_convert():
    torch.manual_seed(0)
    m = tvm.resnet18(num_classes=7)
    convert(m, "official")
    m.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = m(x)
        torch.testing.assert_close(copy.deepcopy(m)(x), y)
        torch.testing.assert_close(pickle.loads(pickle.dumps(m))(x), y)
        m64 = copy.deepcopy(m).to(torch.float64)
        assert m64.layer1[0].conv1.pool_skip.conv.weight.dtype == torch.float64
        torch.testing.assert_close(m64(x.double()).float(), y, rtol=1e-4, atol=1e-4)
        traced = torch.jit.trace(m, x)
        torch.testing.assert_close(traced(x), y)
        x2 = torch.randn(1, 3, 40, 24)
        torch.testing.assert_close(traced(x2), m(x2))


def test_unconvert_restores_the_plain_model():
    torch.manual_seed(0)
    m = tvm.resnet18().eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = m(x)
        convert(m)
        assert not torch.allclose(m(x), before)
        assert unconvert(m) == 20
        torch.testing.assert_close(m(x), before)
    assert not any(isinstance(mod, PoolSkip) for mod in m.modules())


def test_load_plain_state_dict_is_strict_on_original_keys():
    m = tvm.resnet18()
    convert(m)
    sd = tvm.resnet18().state_dict()
    sd.pop("fc.bias")
    with pytest.raises(RuntimeError, match="missing keys \\['fc.bias'\\]"):
        load_plain_state_dict(m, sd)


def test_policies_registry_and_errors():
    assert {"every_conv", "official"} <= set(list_policies())
    with pytest.raises(ValueError, match="unknown placement policy 'nope'; known:"):
        convert(nn.Conv2d(1, 1, 3), "nope")
    with pytest.raises(TypeError, match="expects an nn.Module"):
        convert("resnet18")
    with pytest.raises(TypeError, match="sets PoolSkip's 'channels'"):
        convert(nn.Conv2d(1, 1, 3), channels=3)
    with pytest.warns(UserWarning, match="got no Pool Skip"):
        convert(nn.Sequential(), pool_size=(2, 2))  # nothing selected: a warning, no error
    with pytest.raises(ValueError, match="pool_size for 'conv'"):
        convert(nn.ModuleDict({"conv": nn.Conv2d(1, 1, 3)}), pool_size=(2, 2, 2))
    custom = Policy("first_only_test", "only the first conv", lambda model: {"0": 4})
    register_policy(custom)
    with pytest.raises(ValueError, match="already registered"):
        register_policy(custom)
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3))
    r = convert(m, "first_only_test")
    assert [(p.name, p.pool_size) for p in r.converted] == [("0", (4, 4))]


def test_depthwise_groups_through_convert():
    # groups="depthwise" gives each inserted Pool Skip one filter per channel, whatever the conv's width
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(8, 12, 1)).eval()
    x = torch.randn(2, 3, 6, 6)
    report = convert(model, groups="depthwise")
    ps = [m.pool_skip for m in model.modules() if is_converted(m)]
    assert [p.groups for p in ps] == [8, 12]
    assert report.num_params == (8 * 9 + 8) + (12 * 9 + 12)
    y = model[0](x)  # the hook applies Pool Skip: conv -> pool skip
    plain = nn.functional.conv2d(x, model[0].weight, model[0].bias, padding=1)
    torch.testing.assert_close(y, ps[0](plain))
    with pytest.raises(ValueError, match="got groups=3 for channels=8"):
        convert(nn.Sequential(nn.Conv2d(3, 8, 3)), groups=3)


def test_a_conversion_that_converts_nothing_says_why():
    import warnings

    two_convs = lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))  # noqa: E731
    with pytest.warns(UserWarning, match="Sequential got no Pool Skip: placement policy 'official' selects none"):
        r = convert(two_convs(), policy="official")  # no ResNet blocks (as timm's convnext)
    assert len(r) == 0 and "selects none of its 2 convs" in r.reason and "policy='every_conv'" in r.reason
    assert str(r).startswith("Pool Skip after 0 convs: placement policy 'official'")
    for model, kwargs, why in (
        (nn.Sequential(nn.Linear(3, 4)), {}, "it has no Conv1d/Conv2d/Conv3d"),
        (nn.Sequential(nn.ConvTranspose2d(3, 4, 2)), {}, "it has transposed convs only (pass transposed=True"),
        (two_convs(), {"include": "layer*"}, "include/exclude/where leave none of its 2 conv(s)"),
        (
            two_convs(),
            {"example_input": torch.zeros(1, 3, 6, 6), "pool_size": 8},
            "all 2 selected conv(s) were left out",
        ),
    ):
        with pytest.warns(UserWarning, match="got no Pool Skip"):
            assert convert(model, **kwargs).reason.startswith(why)
    m = two_convs()
    first = convert(m)
    assert len(first) == 2 and first.reason == ""  # a conversion that converts has no reason
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = convert(m)  # converting again is not a mistake: no warning
    assert len(again) == 0 and "already converted" in again.reason


def test_a_model_asked_for_pool_skip_that_gets_none_is_an_error(tmp_path, capsys):
    from poolskip.cli import main
    from poolskip.models import create_model

    with pytest.raises(ValueError, match="got no Pool Skip: placement policy 'official' selects none"):
        create_model("torchvision.models:mobilenet_v3_small", num_classes=10, pool_skip="official")
    argv = ["train", "--model", "torchvision.models:mobilenet_v3_small", "--pool-skip", "official"]
    assert main([*argv, "--epochs", "1", "--out-dir", str(tmp_path), "--set", "threads=1"]) == 2
    err = capsys.readouterr().err
    assert "got no Pool Skip: placement policy 'official' selects none" in err and "Traceback" not in err


def test_the_policy_registry_is_complete_without_importing_the_models():
    import json
    import subprocess
    import sys

    code = (
        "import json, poolskip\n"
        "before = poolskip.list_policies()\n"
        "nnunet = poolskip.get_policy('nnunet_amos').name\n"
        "import poolskip.models\n"
        "print(json.dumps([sorted(before), before == poolskip.list_policies(), nnunet]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, same_after, nnunet = json.loads(out)
    assert {"deeplab", "deep_resnet", "nnunet_btcv", "tokenizer", "vnet"} <= set(names)
    assert same_after and nnunet == "nnunet_amos"


def test_a_conv_already_followed_by_an_explicit_pool_skip_is_left_out_and_listed():
    import warnings

    # in an nn.Sequential the order says it: no example pass needed
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), PoolSkip(8), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a conv that already has Pool Skip is no mistake, as "already converted"
        r = convert(m)
    assert [p.name for p in r.converted] == ["4"]
    assert r.skipped == [("0", "already followed by PoolSkip '1'")]
    assert "0: already followed by PoolSkip '1'" in str(r)
    assert sum(isinstance(x, PoolSkip) for x in m.modules()) == 2  # the explicit one and conv 4's
    only = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), PoolSkip(8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = convert(only)
    assert len(r) == 0 and "already followed by PoolSkip '1'" in r.reason

    class Explicit(nn.Module):  # an explicit PoolSkip outside a Sequential: only a forward pass tells
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.ps = PoolSkip(8)
            self.head = nn.Conv2d(8, 4, 3, padding=1)

        def forward(self, x):
            return self.head(torch.relu(self.ps(self.conv(x))))

    x = torch.randn(1, 3, 8, 8)
    r = convert(Explicit(), example_input=x)
    assert [p.name for p in r.converted] == ["head"]
    assert r.skipped == [("conv", "already followed by PoolSkip 'ps'")]
    with pytest.warns(UserWarning, match="already holds PoolSkip module\\(s\\) 'ps' .* Pass example_input="):
        r = convert(Explicit())
    assert [p.name for p in r.converted] == ["conv", "head"]


def test_a_conv_the_example_pass_does_not_call_is_left_out_and_listed():
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            return self.used(x)

    r = convert(Unused(), example_input=torch.randn(1, 3, 8, 8))
    assert [p.name for p in r.converted] == ["used"]
    assert r.skipped == [("unused", "not called by a forward pass of example_input")]


def _conv_bn(bias):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.BatchNorm2d(4), nn.ReLU())
    m[1].running_mean.uniform_(-1, 1)
    m[1].running_var.uniform_(0.5, 2)
    return m


def test_folding_batchnorm_into_a_bias_free_converted_conv_is_refused():
    from torch.ao.quantization import fuse_modules
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    m = _conv_bn(bias=False)
    convert(m)
    m.eval()
    x = torch.randn(2, 3, 8, 8)
    m(x)  # unfused: runs
    copy.deepcopy(m)(x)
    pickle.loads(pickle.dumps(m))(x)
    # the folded conv is a copy of the converted one, its hook and Pool Skip child included, now with a bias
    # from the BN: Pool Skip would run after the BN instead of before it
    with pytest.raises(RuntimeError, match="a BatchNorm was folded into it"):
        fuse_conv_bn_eval(m[0], m[1])(x)
    with pytest.raises(RuntimeError, match="Keep the BatchNorms of a converted model unfused"):
        fuse_modules(m, [["0", "1", "2"]], inplace=False)(x)
    # fusing the plain model first, then converting, runs (Pool Skip then follows the folded BN)
    plain = fuse_modules(_conv_bn(bias=False).eval(), [["0", "1", "2"]], inplace=False)
    assert len(convert(plain)) == 1
    plain(x)
