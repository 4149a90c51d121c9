"""The paper's networks: registry, pool_skip semantics, layouts (pinned parameter counts), forward/backward.

Parameter counts of every model are taken on the meta device (no memory, built once per module).
Forward/backward runs for real on a (2, 3, 32, 32) batch: at full width for the Table 1/5 networks and
ResNet50, and at width 8 (the same code and layers with 1/8 of the channels) for ResNet101..420, whose
full-width Pool Skip variants have 0.4-1.3 billion parameters (tens of seconds per step on 2 CPU cores);
plain ResNet350/420 also at full width with a batch of 1.
"""

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from poolskip import load_plain_state_dict
from poolskip.cli import main
from poolskip.convert import is_converted
from poolskip.models import create_model, get_model_entry, list_models, resnet, resolve_pool_skip
from poolskip.models.table import count, format_table, stats

# 100 classes: (plain, with the paper's placement, i.e. pool_skip=True).
# Plain CNN counts: pytorch-cifar100's models (the official code's base); ResNet18/34/50 Pool Skip counts: the official
# code; transformers: the Compact-Transformers layout (10 classes: CCT 3,760,139, CVT 3,716,619, as published).
COUNTS_100 = {
    "resnet18": (11_220_132, 23_757_732),
    "resnet34": (21_328_292, 43_970_340),
    "resnet50": (23_705_252, 227_438_372),
    "resnet101": (42_697_380, 426_942_756),
    "resnet152": (58_341_028, 591_245_092),
    "resnet200": (62_822_052, 638_205_732),
    "resnet350": (110_934_436, 1_143_573_412),
    "resnet420": (129_932_708, 1_343_087_012),
    "mobilenet": (3_315_428, 62_990_756),
    "googlenet": (6_402_564, 19_749_604),
    "vgg16": (34_015_396, 50_313_508),
    "vit_7_4_32": (3_740_004, 4_330_084),
    "cvt_7_4_32": (3_739_749, 4_329_829),
    "cct_7_3x1_32": (3_783_269, 4_373_349),
}
COUNTS_10 = {"vit_7_4_32": 3_716_874, "cvt_7_4_32": 3_716_619, "cct_7_3x1_32": 3_760_139}

# Run at full width in both variants; the deep ResNets at width 8.
FULL_WIDTH = ["resnet18", "resnet34", "resnet50", "mobilenet", "googlenet", "vgg16"]
FULL_WIDTH += ["vit_7_4_32", "cvt_7_4_32", "cct_7_3x1_32"]
DEEP = ["resnet101", "resnet152", "resnet200", "resnet350", "resnet420"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two threads per process oversubscribe the cores and
    the many small ops of the deep ResNets run 10-20x slower (measured: ResNet420 width 8 with Pool Skip,
    one step 3 s vs 75 s under a load of 8)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_META: dict[tuple, nn.Module] = {}


def meta_model(name: str, num_classes: int = 100, pool_skip=None) -> nn.Module:
    """``create_model`` on the meta device, cached for the module: tests only read these."""
    key = (name, num_classes, repr(pool_skip))
    if key not in _META:
        with torch.device("meta"):
            _META[key] = create_model(name, num_classes, pool_skip=pool_skip)
    return _META[key]


def converted_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if is_converted(m)]


def test_registry_lists_every_model():
    assert list_models("cifar") == sorted(COUNTS_100, key=list_models().index)
    assert set(list_models("cifar")) == set(COUNTS_100) and set(COUNTS_100) < set(list_models())
    for name in list_models("cifar"):
        entry = get_model_entry(name)
        assert "paper" in entry.description and entry.pool_skip["policy"] in entry.description


@pytest.mark.parametrize("name", list(COUNTS_100))
def test_parameter_counts_100_classes(name):
    plain, pool_skip = COUNTS_100[name]
    assert n_params(meta_model(name)) == plain
    assert n_params(meta_model(name, pool_skip=True)) == pool_skip


@pytest.mark.parametrize("name", list(COUNTS_10))
def test_transformer_counts_10_classes(name):
    assert n_params(meta_model(name, 10)) == COUNTS_10[name]


def _forward_backward(model: nn.Module, batch: int = 2, num_classes: int = 10) -> None:
    torch.manual_seed(0)
    y = model(torch.randn(batch, 3, 32, 32))
    assert y.shape == (batch, num_classes)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing[:5]}"
    ps_grads = [m.pool_skip.conv.weight.grad for m in model.modules() if is_converted(m)]
    assert all(g.abs().sum() > 0 for g in ps_grads)


@pytest.mark.parametrize("pool_skip", [None, True], ids=["plain", "pool_skip"])
@pytest.mark.parametrize("name", FULL_WIDTH)
def test_forward_backward_full_width(name, pool_skip):
    model = create_model(name, 10, pool_skip=pool_skip)
    assert bool(converted_names(model)) == bool(pool_skip)
    _forward_backward(model)


@pytest.mark.parametrize("pool_skip", [None, True], ids=["plain", "pool_skip"])
@pytest.mark.parametrize("name", DEEP)
def test_forward_backward_deep_resnets_width8(name, pool_skip):
    model = create_model(name, 7, pool_skip=pool_skip, width=8)
    full = meta_model(name, 7, pool_skip=pool_skip)
    assert [n for n, _ in model.named_modules()] == [n for n, _ in full.named_modules()]
    _forward_backward(model, num_classes=7)


@pytest.mark.parametrize("name", ["resnet350", "resnet420"])
def test_forward_backward_deepest_full_width_batch1(name):
    """The deepest plain networks as the paper ran them, at a batch of 1 (their Pool Skip variants have
    1.1-1.3 billion parameters: ~10 GB with gradients; they run above at width 8)."""
    model = create_model(name, 100)
    assert n_params(model) == COUNTS_100[name][0]
    _forward_backward(model, batch=1, num_classes=100)


def test_width_knob_is_the_same_network():
    small, full = resnet(50, 10, width=16), meta_model("resnet50", 10)
    assert [n for n, _ in small.named_modules()] == [n for n, _ in full.named_modules()]
    assert small.fc.in_features == 16 * 8 * 4
    assert n_params(create_model("resnet18", 10, width=16)) == 701_466
    with pytest.raises(ValueError, match="no CIFAR ResNet of depth 19"):
        resnet(19)


def test_resnet_stage_lists():
    def blocks(name):
        m = meta_model(name)
        return [len(getattr(m, f"layer{i}")) for i in range(1, 5)]

    assert blocks("resnet200") == [3, 24, 36, 3]
    assert blocks("resnet350") == [4, 36, 72, 4]
    assert blocks("resnet420") == [4, 44, 87, 4]


def test_official_placement_resnet18_and_resnet50():
    m = meta_model("resnet18", pool_skip="official")
    names = converted_names(m)
    assert len(names) == 16 and all(re.fullmatch(r"layer\d\.\d\.conv[12]", n) for n in names)
    assert {m.get_submodule(n).pool_skip.pool_size for n in names} == {(2, 2)}
    m = meta_model("resnet50", pool_skip="official")
    names = converted_names(m)
    assert len(names) == 48 and all(re.fullmatch(r"layer\d\.\d+\.conv[123]", n) for n in names)
    assert {m.get_submodule(n).pool_skip.pool_size for n in names} == {(4, 4)}


def test_deep_resnet_policy_and_pool_size():
    names = converted_names(meta_model("resnet350", pool_skip=True))
    assert len(names) == 3 * sum([4, 36, 72, 4])
    assert not any("shortcut" in n for n in names) and "conv1" not in names
    for pool_skip, size in [(True, 4), (2, 2), ({"pool_size": 2}, 2), ({"policy": "deep_resnet"}, 4)]:
        m = meta_model("resnet50", pool_skip=pool_skip)
        assert {m.get_submodule(n).pool_skip.pool_size for n in converted_names(m)} == {(size, size)}
    # on bottleneck ResNets it is the official code's placement
    assert converted_names(meta_model("resnet50", pool_skip=True)) == converted_names(
        meta_model("resnet50", pool_skip="official")
    )


def test_tokenizer_policy():
    for name in ("vit_7_4_32", "cvt_7_4_32", "cct_7_3x1_32"):
        m = meta_model(name, pool_skip=True)
        assert converted_names(m) == ["tokenizer.conv"]
        assert m.tokenizer.conv.pool_skip.pool_size == (2, 2)


def test_transformer_size_keywords():
    # Compact Transformers' size 2 (dim 128, 2 layers, 2 heads, MLP ratio 1): 6,272 (4x4 patch conv) + 128 (class
    # token) + 65 * 128 (positions) + 2 * 99,200 (layers: 2 LayerNorms, qkv, proj, MLP) + 256 (norm) + 1,290 (head)
    size2 = {"dim": 128, "num_layers": 2, "num_heads": 2, "mlp_ratio": 1}
    with torch.device("meta"):
        vit = create_model("vit_7_4_32", 10, **size2)
        cct = create_model("cct_7_3x1_32", 10, pool_skip=True, **size2)
    assert sum(p.numel() for p in vit.parameters()) == 214_666
    assert len(vit.blocks) == 2 and vit.fc.in_features == 128
    assert converted_names(cct) == ["tokenizer.conv"] and cct.tokenizer.conv.out_channels == 128
    with pytest.raises(ValueError, match="multiple of num_heads"):
        create_model("cvt_7_4_32", dim=100, num_heads=3)


def test_every_conv_policy_on_table1_networks():
    for name in ("mobilenet", "googlenet", "vgg16"):
        plain = meta_model(name)
        n_convs = sum(isinstance(m, nn.Conv2d) for m in plain.modules())
        assert len(converted_names(meta_model(name, pool_skip=True))) == n_convs
    assert len(converted_names(meta_model("vgg16", pool_skip=True))) == 13


def test_pool_skip_argument_forms():
    assert resolve_pool_skip("resnet18", None) is None
    assert resolve_pool_skip("resnet18", False) is None
    assert resolve_pool_skip("resnet18", True) == {"policy": "official"}
    assert resolve_pool_skip("resnet18", 4) == {"policy": "official", "pool_size": 4}
    assert resolve_pool_skip("resnet350", "every_conv") == {"policy": "every_conv"}
    assert resolve_pool_skip("resnet350", {"pool_size": 2}) == {"policy": "deep_resnet", "pool_size": 2}
    m = meta_model("resnet18", pool_skip={"include": "layer1.*", "pool_size": 3})
    names = converted_names(m)
    assert len(names) == 4 and all(n.startswith("layer1.") for n in names)
    assert m.layer1[0].conv1.pool_skip.pool_size == (3, 3)
    with pytest.raises(ValueError, match="unknown pool_skip key"):
        resolve_pool_skip("resnet18", {"pool": 2})
    with pytest.raises(ValueError, match="pool size must be >= 1"):
        resolve_pool_skip("resnet18", 0)
    with pytest.raises(TypeError, match="pool_skip must be"):
        resolve_pool_skip("resnet18", 2.0)
    with pytest.raises(ValueError, match="unknown placement policy 'nope'"):
        create_model("resnet18", pool_skip="nope")
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        create_model("resnet19")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        create_model("resnet18", 0)
    with pytest.raises(TypeError, match=r"model 'googlenet' has no option\(s\) \['width'\]"):
        create_model("googlenet", width=16)


def test_plain_checkpoint_loads_into_pool_skip_model():
    torch.manual_seed(0)
    plain = create_model("resnet18", 10, width=8).eval()
    ps = create_model("resnet18", 10, pool_skip={"zero_init": True}, width=8).eval()
    new_keys = load_plain_state_dict(ps, plain.state_dict())
    assert len(new_keys) == 16 * 2
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ps(x), plain(x))


def _hand_macs(model: nn.Module) -> int:
    """Multiply-adds per 32x32 image of the convs (with Pool Skip's inner conv) and linears, from output shapes."""
    total = 0

    def conv_hook(m, i, o):
        nonlocal total
        total += o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        if is_converted(m):  # the inner conv runs functionally: C -> C, k x k, on the conv's output size
            k = m.pool_skip.conv.kernel_size
            total += o.numel() * m.out_channels * k[0] * k[1]

    def linear_hook(m, i, o):
        nonlocal total
        total += o.numel() * m.in_features

    inner = {id(m.pool_skip.conv) for m in model.modules() if is_converted(m)}
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in inner:
            m.register_forward_hook(conv_hook)
        elif isinstance(m, nn.Linear):
            m.register_forward_hook(linear_hook)
    with torch.no_grad():
        model.eval()(torch.empty(1, 3, 32, 32, device="meta"))
    return total


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "mobilenet", "googlenet", "vgg16"])
def test_flop_count_matches_a_count_by_hand(name):
    for pool_skip in (None, True):
        params, macs = count(name, 10, pool_skip=pool_skip)
        with torch.device("meta"):
            model = create_model(name, 10, pool_skip=pool_skip)  # fresh: the count adds hooks
        assert params == n_params(model)
        assert macs == _hand_macs(model)


def test_models_cli_table(capsys):
    assert main(["models", "resnet18", "cct_7_3x1_32", "--num-classes", "100", "--markdown"]) == 0
    out = capsys.readouterr().out
    cells = (
        r"^\| (\w+) +\| +([\d,]+) \| +([\d.]+) G \| +([\d,]+) \| +([\d.]+) G \| (\w+): (\d+) convs?, pool (\d+) +\|$"
    )
    rows = re.findall(cells, out, re.M)
    assert [r[0] for r in rows] == ["resnet18", "cct_7_3x1_32"]
    for name, params, macs, ps_params, ps_macs, policy, n_convs, pool in rows:
        assert (int(params.replace(",", "")), int(ps_params.replace(",", ""))) == COUNTS_100[name]
        assert float(ps_macs) > float(macs) > 0
        assert policy == get_model_entry(name).pool_skip["policy"]
        assert (int(n_convs), pool) == {"resnet18": (16, "2"), "cct_7_3x1_32": (1, "2")}[name]
    # 0.555 G: the usual CIFAR ResNet18 figure (exact value: test_flop_count_matches_a_count_by_hand)
    assert rows[0][2] == "0.555"
    assert main(["models", "resnet19"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_docs_table_is_the_cli_output():
    section = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    lines = {line.split("|")[1].strip(): line for line in section.splitlines() if re.match(r"\| \w+ +\| +[\d,]", line)}
    assert set(lines) == set(list_models("cifar"))
    for name, line in lines.items():  # parameter columns of every row
        cells = [c.strip() for c in line.split("|")[1:-1]]
        assert (int(cells[1].replace(",", "")), int(cells[3].replace(",", ""))) == COUNTS_100[name]
    # whole rows, MACs included, for the cheap-to-count models: the table as the CLI prints it
    cheap = ["resnet18", "vgg16", "cct_7_3x1_32"]
    table = format_table(stats(cheap, 100), markdown=True).splitlines()
    for row in table[2:]:
        name = row.split("|")[1].strip()
        ours = [c.strip() for c in row.split("|")[1:-1]]
        assert ours == [c.strip() for c in lines[name].split("|")[1:-1]], name


def test_pool_skip_spec_is_one_reading_for_registered_and_outside_models():
    from poolskip.models import is_plain, pool_skip_spec

    for plain in (None, False, "none", "plain"):
        assert is_plain(plain) and pool_skip_spec(plain, {"policy": "official"}) is None
    assert not any(
        n.endswith("pool_skip.conv.weight")
        for n, _ in create_model("resnet18", width=4, pool_skip="plain").named_parameters()
    )
    assert pool_skip_spec(True, {}) == {}  # a model from elsewhere: convert's defaults
    assert pool_skip_spec(4, {}) == {"pool_size": 4}
    assert pool_skip_spec({"include": "a*"}, {"policy": "official", "pool_size": 2}) == {
        "policy": "official",
        "include": "a*",
    }
    assert pool_skip_spec({"include": "a*"}, {}) == {"include": "a*"}
    with pytest.raises(ValueError, match=">= 1"):
        pool_skip_spec(0, {})


@pytest.mark.parametrize("name,base", [("mobilenet", 32), ("vgg16", 64)])
def test_width_knob_keeps_the_paper_network_and_scales_it(name, base):
    with torch.device("meta"):
        default, same, half = (create_model(name, 100, **kw) for kw in ({}, {"width": base}, {"width": base // 2}))
    assert [tuple(p.shape) for p in default.parameters()] == [tuple(p.shape) for p in same.parameters()]
    convs = [m for m in half.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs[0].out_channels == base // 2
    assert max(c.out_channels for c in convs) == (512 if name == "vgg16" else 1024) // 2
    with pytest.raises(ValueError, match="width must be a positive int"):
        create_model(name, width=0)


def test_create_model_takes_registered_names_and_package_paths_alike():
    outside = create_model("poolskip.models.toy:small_cnn", 10, pool_skip=True, width=4, in_channels=3)
    registered = create_model("small_cnn", 10, pool_skip=True, width=4, in_channels=3)
    assert [n for n, _ in outside.named_parameters()] == [n for n, _ in registered.named_parameters()]
    assert outside(torch.randn(2, 3, 8, 8)).shape == (2, 10) and converted_names(outside)
    with pytest.raises(ValueError, match="cannot import nope"):
        create_model("poolskip.models.toy:nope")
    with pytest.raises(TypeError, match=r"no option\(s\) \['depth'\]"):
        create_model("poolskip.models.toy:small_cnn", depth=3)


def test_build_fits_the_model_to_a_spec_and_keywords_win():
    from poolskip.models import ModelSpec, build

    net = build("small_cnn", ModelSpec(in_channels=1, num_classes=7), width=4)
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 7)
    hinted = ModelSpec(in_channels=1, num_classes=7, hints={"patch_size": (16, 16, 16)})  # not a small_cnn option
    assert build("small_cnn", hinted, width=4)(torch.randn(2, 1, 8, 8)).shape == (2, 7)
    wide = build("small_cnn", ModelSpec(1, 7), width=8)
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in net.parameters())
    assert any(is_converted(m) for m in build("small_cnn", ModelSpec(1, 7), True, width=4).modules())
    with pytest.raises(ValueError, match="2D inputs, but the data has 3D samples"):
        build("small_cnn", ModelSpec(1, 7, spatial_dims=3))
    with pytest.raises(ValueError, match="unknown model"):
        build("no_such_model", ModelSpec(1, 7))
