"""The paper's networks: registry, pool_skip semantics, layouts (pinned parameter counts), forward/backward."""

import pytest
import torch

from poolskip.convert import is_converted
from poolskip.models import create_model, list_models, resolve_pool_skip


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_params(name: str, num_classes: int = 100, **kwargs) -> int:
    with torch.device("meta"):
        return n_params(create_model(name, num_classes, **kwargs))


# 100 classes: (plain, with the paper's placement, pool_skip=True); plain counts from facts.md section 4,
# Pool Skip counts of resnet18/34 from the official code.
COUNTS = {
    "resnet18": (11_220_132, 23_757_732),
    "resnet34": (21_328_292, 43_970_340),
    "resnet50": (23_705_252, 227_438_372),
    "resnet101": (42_697_380, 426_942_756),
    "resnet152": (58_341_028, 591_245_092),
    "resnet200": (62_822_052, 638_205_732),
    "resnet350": (110_934_436, 1_143_573_412),
    "resnet420": (129_932_708, 1_343_087_012),
}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_parameter_counts_100_classes(name):
    plain, pool_skip = COUNTS[name]
    assert meta_params(name) == plain
    assert meta_params(name, pool_skip=True) == pool_skip


def test_official_placement_resnet18():
    model = create_model("resnet18", pool_skip="official")
    converted = sorted(name for name, m in model.named_modules() if is_converted(m))
    assert len(converted) == 16
    assert all(name.startswith("layer") and name.endswith(("conv1", "conv2")) for name in converted)
    assert all(m.pool_skip.pool_size == (2, 2) for m in model.modules() if is_converted(m))


@pytest.mark.parametrize("width", [16])
def test_resnet18_forward_backward(width):
    for pool_skip in (None, True):
        model = create_model("resnet18", 10, pool_skip=pool_skip, width=width)
        y = model(torch.randn(2, 3, 32, 32))
        assert y.shape == (2, 10)
        y.sum().backward()
        assert all(p.grad is not None for p in model.parameters())


def test_pool_skip_argument_forms():
    assert resolve_pool_skip("resnet18", None) is None
    assert resolve_pool_skip("resnet18", False) is None
    assert resolve_pool_skip("resnet18", True) == {"policy": "official"}
    assert resolve_pool_skip("resnet18", 4) == {"policy": "official", "pool_size": 4}
    assert resolve_pool_skip("resnet350", "every_conv") == {"policy": "every_conv"}
    assert resolve_pool_skip("resnet350", {"pool_size": 2}) == {"policy": "deep_resnet", "pool_size": 2}
    with pytest.raises(ValueError, match="unknown pool_skip key"):
        resolve_pool_skip("resnet18", {"pool": 2})
    with pytest.raises(TypeError, match="pool_skip must be"):
        resolve_pool_skip("resnet18", 2.0)
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        create_model("resnet19")
    assert "resnet18" in list_models()
