"""3D networks: nnU-Net's planner, PlainConvUNet and MONAI's VNet with the paper's placements."""

from __future__ import annotations

import pytest
import torch

from poolskip import load_plain_state_dict
from poolskip.convert import get_policy, is_converted
from poolskip.models import create_model, get_model_entry
from poolskip.models.volumetric import plan_3d_fullres
from poolskip.module import PoolSkip

pytest.importorskip("monai")
pytest.importorskip("dynamic_network_architectures")


def test_plan_for_hippocampus_is_nnunets():
    # nnU-Net's plans for Dataset004_Hippocampus 3d_fullres: patch 40x56x40, 4 stages, 3^3 kernels
    p = plan_3d_fullres((40, 56, 40), (1.0, 1.0, 1.0))
    assert p.patch_size == (40, 56, 40)
    assert p.strides == ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))
    assert p.kernel_sizes == ((3, 3, 3),) * 4
    assert p.features == (32, 64, 128, 256)
    assert p.bottleneck_size == (5, 7, 5)


def test_plan_caps_features_and_handles_anisotropy():
    p = plan_3d_fullres((128, 128, 128), (1.5, 1.5, 2.0))
    assert p.features == (32, 64, 128, 256, 320, 320)
    q = plan_3d_fullres((160, 160, 20), (0.7, 0.7, 5.0))  # thick slices: z is neither pooled nor convolved early
    assert q.strides[1] == (2, 2, 1) and q.kernel_sizes[0] == (3, 3, 1)
    assert plan_3d_fullres((30, 30, 30)).patch_size == (32, 32, 32)  # padded to the total stride


@pytest.mark.parametrize(
    "patch, spacing",
    [((40, 56, 40), (1, 1, 1)), ((128, 128, 128), (1.5, 1.5, 2.0)), ((80, 192, 160), (3.0, 0.78, 0.78)),
     ((20, 320, 256), (5.0, 0.7, 0.7)), ((13, 30, 50), (1, 1, 1))],
)  # fmt: skip
def test_plan_matches_nnunet_v2(patch, spacing):
    topo = pytest.importorskip("nnunetv2.experiment_planning.experiment_planners.network_topology")
    _, pools, kernels, padded, _ = topo.get_pool_and_conv_props(spacing, patch, 4, 999999)
    p = plan_3d_fullres(patch, spacing)
    assert [list(s) for s in p.strides] == [list(s) for s in pools]
    assert [list(k) for k in p.kernel_sizes] == [list(k) for k in kernels]
    assert list(p.patch_size) == list(padded)


def test_nnunet_hippocampus_patch_with_pool_skip_on_odd_maps():
    torch.manual_seed(0)
    model = create_model("nnunet", in_channels=1, num_classes=14, pool_skip=True, patch_size=(40, 56, 40)).eval()
    convs = [n for n, m in model.named_modules() if is_converted(m)]
    assert len(convs) == 8  # 4 encoder stages x 2 convs (nnunet_btcv: every encoder conv)
    assert all(n.startswith("encoder.stages.") and n.endswith(".conv") for n in convs)
    x = torch.randn(1, 1, 40, 56, 40)
    calls = []
    for m in model.modules():
        if isinstance(m, PoolSkip):
            m.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, list) and out[0].shape == (1, 14, 40, 56, 40)  # deep supervision: full resolution first
    assert [tuple(o.shape[2:]) for o in out] == [(40, 56, 40), (20, 28, 20), (10, 14, 10)]
    # the hook on the conv acts although forward runs it as ConvDropoutNormReLU.all_modules[0]
    assert len(calls) == 8
    plain = create_model("nnunet", in_channels=1, num_classes=14, patch_size=(40, 56, 40)).eval()
    state = {k: v for k, v in model.state_dict().items() if ".pool_skip." not in k}
    plain.load_state_dict(state)
    with torch.no_grad():
        assert not torch.allclose(plain(x)[0], out[0])
    assert sorted(load_plain_state_dict(model, plain.state_dict())) == sorted(
        k for k in model.state_dict() if ".pool_skip." in k
    )


def test_nnunet_conv_is_the_one_forward_runs():
    model = create_model("nnunet", num_classes=2, patch_size=(16, 16, 16))
    block = model.encoder.stages[0][0].convs[0]
    assert block.all_modules[0] is block.conv


def test_nnunet_amos_placement_leaves_the_bottleneck_out():
    model = create_model("nnunet", num_classes=3, pool_skip="nnunet_amos", patch_size=(40, 56, 40))
    convs = [n for n, m in model.named_modules() if is_converted(m)]
    assert len(convs) == 6 and not any(n.startswith("encoder.stages.3.") for n in convs)
    assert get_model_entry("nnunet").spatial_dims == (3,)


def test_nnunet_is_nnunets_own_network():
    """Same modules, parameter count and initial weights (nnU-Net's He init, zero biases; the model kept
    PyTorch's default init before) as nnU-Net v2 builds from an equivalent plans entry."""
    pytest.importorskip("nnunetv2")
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    p = plan_3d_fullres((40, 56, 40), (1.0, 1.0, 1.0))
    arch = {
        "n_stages": p.n_stages, "features_per_stage": list(p.features), "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [list(k) for k in p.kernel_sizes], "strides": [list(s) for s in p.strides],
        "n_conv_per_stage": [2] * 4, "n_conv_per_stage_decoder": [2] * 3, "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }  # fmt: skip
    torch.manual_seed(0)
    theirs = get_network_from_plans(
        "dynamic_network_architectures.architectures.unet.PlainConvUNet", arch,
        ["conv_op", "norm_op", "dropout_op", "nonlin"], 1, 3, allow_init=True, deep_supervision=True,
    )  # fmt: skip
    torch.manual_seed(0)
    ours = create_model("nnunet", num_classes=3, patch_size=(40, 56, 40))
    assert [k for k in ours.state_dict()] == [k for k in theirs.state_dict()]
    assert sum(t.numel() for t in ours.parameters()) == sum(t.numel() for t in theirs.parameters())
    for (k, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.equal(a, b), k


def test_vnet_placements_and_odd_deep_maps():
    from poolskip import convert

    torch.manual_seed(0)
    model = create_model("vnet", in_channels=2, num_classes=2)
    assert get_model_entry("vnet").pool_skip == {"policy": "vnet"}  # pool_skip=True: the paper's placement
    paper = get_policy("vnet").select(model)
    assert sorted(paper) == ["down_tr32.down_conv", "down_tr32.ops.0.conv_block.conv", "in_tr.conv_block.conv"]
    full = get_policy("vnet_full").select(model)
    assert len(full) == 13 and all(n.split(".")[0] in ("in_tr", "down_tr32", "down_tr64", "down_tr128",
                                                         "down_tr256") for n in full)  # fmt: skip
    assert len(convert(model, policy="vnet_full")) == 13
    # 48x16x16 -> 3x1x1 in the last encoder stage: odd maps, where the official module breaks
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 2, 48, 16, 16)).shape == (1, 2, 48, 16, 16)
        assert model(torch.randn(1, 2, 20, 17, 9)).shape == (1, 2, 20, 17, 9)  # padded to 32x32x16 inside


def test_vnet_in_channels_must_divide_16():
    with pytest.raises(ValueError, match="must divide 16"):
        create_model("vnet", in_channels=3, num_classes=2)
