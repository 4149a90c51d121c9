"""Cost-matched controls (issue 12) and the paper's numbers kept as package data."""

from pathlib import Path

import pytest
import torch

from poolskip.convert import is_converted
from poolskip.experiments.controls import CONTROLS, control_spec, cost, match_width, models_with_width
from poolskip.experiments.controls import build as build_meta
from poolskip.experiments.paper import paper_entry, paper_numbers


def test_conv_skip_control_costs_what_pool_skip_costs():
    spec, kwargs = control_spec("conv_skip", "resnet18", True, {"width": 8})
    assert spec == {"variant": "conv_skip"} and kwargs == {"width": 8}
    assert cost("resnet18", spec, kwargs) == cost("resnet18", True, kwargs)
    net = build_meta("resnet18", spec, kwargs, 10)
    sites = [m.pool_skip for m in net.modules() if is_converted(m)]
    assert len(sites) == 16 and all(p.variant == "conv_skip" for p in sites)  # the paper's placement


def test_conv_skip_keeps_a_non_default_pool_size_and_placement():
    spec, _ = control_spec("conv_skip", "resnet50", {"pool_size": 2})
    assert spec == {"pool_size": 2, "variant": "conv_skip"}
    spec, _ = control_spec("depthwise", "resnet18", "every_conv")
    assert spec == {"policy": "every_conv", "groups": "depthwise"}


def test_depthwise_control_is_cheap_and_placed_like_pool_skip():
    spec, kwargs = control_spec("depthwise", "mobilenet", True, {"width": 4})
    net = build_meta("mobilenet", spec, kwargs, 10)
    sites = [m for m in net.modules() if is_converted(m)]
    full = build_meta("mobilenet", True, kwargs, 10)
    assert len(sites) == sum(is_converted(m) for m in full.modules())
    assert all(m.pool_skip.groups == m.out_channels for m in sites)
    plain, ps, dw = cost("mobilenet", None, kwargs), cost("mobilenet", True, kwargs), cost("mobilenet", spec, kwargs)
    assert plain.macs < dw.macs < ps.macs and plain.params < dw.params < ps.params


@pytest.mark.parametrize(
    "model,kwargs", [("resnet18", {"width": 8}), ("vgg16", {"width": 8}), ("mobilenet", {"width": 4})]
)
def test_wide_control_matches_pool_skip_macs(model, kwargs):
    width, plain, target = match_width(model, True, kwargs)
    assert width > kwargs["width"]
    # the best integer width: its neighbours are no closer to Pool Skip's MACs
    for w in (width - 1, width + 1):
        assert abs(cost(model, None, {"width": w}).macs - target.macs) >= abs(plain.macs - target.macs)
    assert abs(plain.macs - target.macs) / target.macs < 0.15
    spec, wide = control_spec("wide", model, True, kwargs)
    assert spec is None and wide == {"width": width}


def test_wide_control_fails_clearly_without_a_width_knob():
    assert {"resnet18", "resnet34", "vgg16", "mobilenet"} <= set(models_with_width())
    assert "googlenet" not in models_with_width()
    with pytest.raises(ValueError, match="'googlenet' has no width knob.*models with one: .*resnet18"):
        control_spec("wide", "googlenet")
    with pytest.raises(ValueError, match="unknown control 'bogus'"):
        control_spec("bogus", "resnet18")
    with pytest.raises(ValueError, match="matched to a Pool Skip network"):
        control_spec("conv_skip", "resnet18", None)
    assert set(CONTROLS) == {"conv_skip", "wide", "depthwise"}


def test_cost_counts_like_the_models_table():
    from poolskip.models.table import count

    assert tuple(vars(cost("resnet18", True)).values()) == count("resnet18", 10, True)
    assert (
        cost("resnet18", None, {"width": 8}, input_shape=(3, 16, 16)).macs < cost("resnet18", None, {"width": 8}).macs
    )
    assert not torch.empty(0).is_meta  # counting left the default device alone


# ------------------------------------------------------------------------------------ paper numbers

# Verbatim fragments of the paper's tables (Sun et al., AAAI 2025), one per checked entry.
PAPER_TEXT = {
    ("table1", "mobilenet", "cifar100", "pool_skip"): "28.31 ± 0.23 -5.44",
    ("table1", "resnet18", "cifar10", "plain"): "5.17 ± 0.15",
    ("table1", "vgg16", "cifar100", "plain"): "27.84 ±0.38",
    ("table2", "deeplabv3plus_resnet101", "voc", "pool_skip"): "74.99 ± 0.23 +0.16",
    ("table5", "cvt_7_4_32", "cifar10", "pool_skip"): "6.36 ± 0.36 +0.38",
    ("table4", "vgg16", "cifar100", "pool_conv"): "44.07",
}


def _number(fragment: str) -> tuple[float, float | None]:
    parts = fragment.replace("±", " ± ").split()
    mean = float(parts[0])
    std = float(parts[2]) if len(parts) > 2 and parts[1] == "±" else None
    return mean, std


@pytest.mark.parametrize("key,fragment", PAPER_TEXT.items())
def test_paper_numbers_match_the_paper_text(key, fragment):
    entry = paper_entry(*key)
    assert (entry["mean"], entry["std"]) == _number(fragment)
    assert entry["source"].startswith(key[0].replace("table", "Table "))
    paper = Path(__file__).resolve().parents[2] / "shared" / "paper" / "poolskip-paper.md"
    if paper.is_file():  # on the project's machines: the fragment is really in the paper
        assert fragment in paper.read_text()


def test_paper_numbers_are_complete_and_sourced():
    data = paper_numbers()
    assert set(data) == {"table1", "table2", "table3", "table4", "table5", "fig3", "fig4"}
    assert len(data["table1"]["entries"]) == 5 * 2 * 2 and len(data["table4"]["entries"]) == 5
    assert len(data["table3"]["entries"]) == 2 * 2 * 2 * 3
    assert paper_entry("table3", "nnunet", "amos", "pool_skip", "nsd")["mean"] == 85.52
    assert paper_entry("fig3", "resnet350", "cifar10", "pool_skip")["mean"] == 4.562
    assert paper_entry("table1", "resnet18", "digits", "plain") is None
    assert data["table2"]["mode"] == "max" and data["table1"]["mode"] == "min"
    with pytest.raises(ValueError, match="no 'table9'"):
        paper_entry("table9", "x", "y", "plain")


@pytest.mark.parametrize(
    "model,kwargs,classes,shape",
    [
        ("deeplabv3plus_mobilenet", {}, 11, (3, 45, 61)),
        ("nnunet", {"patch_size": [16, 24, 16]}, 3, (1, 16, 24, 16)),
    ],
)
def test_segmentation_models_have_a_width_knob_for_the_wide_control(model, kwargs, classes, shape):
    if model == "nnunet":
        pytest.importorskip("dynamic_network_architectures")
    assert model in models_with_width()
    width, plain, target = match_width(model, True, kwargs, classes, shape)
    base = cost(model, None, kwargs, classes, shape)
    assert base.macs < target.macs and abs(plain.macs - target.macs) / target.macs < 0.15
    spec, wide = control_spec("wide", model, True, kwargs, classes, shape)
    assert spec is None and wide["width"] == width


def test_deeplab_and_nnunet_width_scale_the_head_and_the_stages():
    from poolskip.models import create_model

    default = create_model("deeplabv3plus_mobilenet", num_classes=11)
    assert sum(p.numel() for p in default.parameters()) == 5_223_147  # the reference's head (width 256)
    narrow = create_model("deeplabv3plus_mobilenet", num_classes=11, width=64, pool_skip=True)
    head = narrow.classifier
    assert head.project[0].out_channels == 12 and head.aspp.project[0].out_channels == 64
    assert head.classifier[0].in_channels == 76 and head.classifier[3].in_channels == 64
    assert narrow(torch.randn(2, 3, 45, 61)).shape == (2, 11, 45, 61)  # odd size, Pool Skip in the narrow head
    with pytest.raises(ValueError, match="width"):
        create_model("deeplabv3plus_mobilenet", num_classes=11, width=0)
    pytest.importorskip("dynamic_network_architectures")
    from poolskip.models.volumetric.planning import plan_3d_fullres

    assert plan_3d_fullres((128, 128, 128)).features == (32, 64, 128, 256, 320, 320)  # nnU-Net's own
    assert plan_3d_fullres((128, 128, 128), base_features=16).features == (16, 32, 64, 128, 160, 160)
    net = create_model("nnunet", in_channels=1, num_classes=3, patch_size=(16, 24, 16), width=8)
    assert net.encoder.stages[0][0].convs[0].conv.out_channels == 8


def test_a_planned_model_is_counted_at_the_input_it_is_planned_for():
    pytest.importorskip("dynamic_network_architectures")
    shape = (1, 16, 24, 16)
    offered = cost("nnunet", True, {"width": 8}, 3, shape)
    assert offered == cost("nnunet", True, {"width": 8, "patch_size": [16, 24, 16]}, 3, shape)
    params = [  # the model's own patch_size wins over the counted shape: a deeper plan, more parameters
        sum(p.numel() for p in build_meta("nnunet", True, {"width": 8, **kw}, 3, input_shape=shape).parameters())
        for kw in ({}, {"patch_size": [64, 64, 64]})
    ]
    assert params[0] == offered.params < params[1]


def test_a_cost_is_counted_once_and_again_for_a_model_or_policy_registered_anew(monkeypatch):
    """cost() keeps its counts (a plan asks for the same ones many times), keyed by the arguments and by the
    factory and placement policy they resolve to: the same name registered anew is counted anew."""
    import dataclasses
    import importlib

    from poolskip.experiments import controls
    from poolskip.models import _registry

    first = cost("resnet18", True, {"width": 4})
    built = []
    real_build = controls.build
    monkeypatch.setattr(controls, "build", lambda *a, **k: built.append(a) or real_build(*a, **k))
    assert cost("resnet18", True, {"width": 4}) == first and not built
    entry = _registry.get_model_entry("resnet18")

    def resnet18(num_classes: int = 10, width: int = 64, in_channels: int = 3):  # the same name, twice as wide
        return entry.factory(num_classes, 2 * width, in_channels)

    monkeypatch.setitem(_registry._MODELS, "resnet18", dataclasses.replace(entry, factory=resnet18))
    wider = cost("resnet18", True, {"width": 4})
    assert len(built) == 1 and wider.params > first.params
    monkeypatch.setitem(_registry._MODELS, "resnet18", entry)
    assert cost("resnet18", True, {"width": 4}) == first and len(built) == 1
    convert = importlib.import_module("poolskip.convert")  # the module (poolskip.convert is also the function)
    official = convert.get_policy("official")  # the placement registered anew: its first site only

    def first_site(model):
        return dict(list(official.select(model).items())[:1])

    monkeypatch.setitem(convert._POLICIES, "official", dataclasses.replace(official, select=first_site))
    assert cost("resnet18", None, {"width": 4}).params < cost("resnet18", True, {"width": 4}).params < first.params
