"""The nnU-Net v2 trainer plugin: found through nnUNet_extTrainer, builds nnU-Net's network converted."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("nnunetv2")

from poolskip.convert import is_converted  # noqa: E402
from poolskip.integrations.nnunet import trainer_dir  # noqa: E402
from poolskip.module import PoolSkip  # noqa: E402

PLANS = {
    "dataset_name": "Dataset999_Tiny", "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [1.0, 1.0, 1.0], "original_median_shape_after_transp": [36, 50, 35],
    "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
    "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {},
    "configurations": {"3d_fullres": {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
        "patch_size": [40, 56, 40], "median_image_size_in_voxels": [36, 50, 35], "spacing": [1.0, 1.0, 1.0],
        "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
        "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_seg": "resample_data_or_seg_to_shape",
        "resampling_fn_data_kwargs": {}, "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities":
        "resample_data_or_seg_to_shape", "resampling_fn_probabilities_kwargs": {}, "batch_dice": False,
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": 4, "features_per_stage": [32, 64, 128, 256], "conv_op": "torch.nn.modules.conv.Conv3d",
                "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
                "n_conv_per_stage": [2, 2, 2, 2], "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
                "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
                "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
    }},
}  # fmt: skip


def _find(name, monkeypatch):
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    monkeypatch.setenv("nnUNet_extTrainer", str(trainer_dir()))
    return recursive_find_trainer_class_by_name(name)


def test_nnunet_finds_the_trainers_and_they_build_converted_networks(monkeypatch):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = PlansManager(PLANS)
    conf = plans.get_configuration("3d_fullres")
    for name, expected in [("nnUNetTrainerPoolSkip", 8), ("nnUNetTrainerPoolSkipAMOS_5epochs", 6)]:
        cls = _find(name, monkeypatch)
        assert cls.__name__ == name
        net = cls.build_network_architecture(plans, conf, 1, 3, True)
        assert sum(is_converted(m) for m in net.modules()) == expected
    calls = []
    for m in net.modules():
        if isinstance(m, PoolSkip):
            m.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        out = net.eval()(torch.randn(1, 1, 40, 56, 40))  # nnU-Net's Hippocampus patch: 5x7x5 at the bottom
    assert out[0].shape == (1, 3, 40, 56, 40) and len(calls) == 6  # Pool Skip runs inside all_modules


def test_the_5epochs_trainer_is_an_nnunet_trainer_of_five_epochs(monkeypatch, tmp_path):
    import copy

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    cls = _find("nnUNetTrainerPoolSkip_5epochs", monkeypatch)
    plans = {**copy.deepcopy(PLANS), "continue_training": False}  # nnUNetv2_train adds this key
    dataset_json = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 4,
                    "file_ending": ".nii.gz"}  # fmt: skip
    trainer = cls(plans, "3d_fullres", 0, dataset_json, torch.device("cpu"))
    assert trainer.num_epochs == 5


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_checkpoints_load_as_data_and_crafted_ones_are_refused(monkeypatch, tmp_path):
    """nnU-Net's own load_checkpoint unpickles with weights_only=False; ours reads what nnU-Net writes
    (tensors, numpy float scalars of its logger, torch.device) as data and refuses code."""
    import copy

    import numpy as np

    from poolskip.errors import PoolskipError

    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(var, str(tmp_path / var))
    preprocessed = tmp_path / "nnUNet_preprocessed" / PLANS["dataset_name"] / "nnUNetPlans_3d_fullres"
    preprocessed.mkdir(parents=True)
    (preprocessed / "case.npz").touch()  # initialize() infers the dataset class from the file endings
    cls = _find("nnUNetTrainerPoolSkip", monkeypatch)
    plans = {**copy.deepcopy(PLANS), "continue_training": False}
    dataset_json = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 4,
                    "file_ending": ".nii.gz"}  # fmt: skip

    def trainer():
        t = cls(copy.deepcopy(plans), "3d_fullres", 0, dataset_json, torch.device("cpu"))
        t.initialize()
        return t

    saved = trainer()
    for epoch in range(2):  # what nnU-Net's on_*_epoch_end log: numpy float32 losses, float64 Dice
        saved.logger.log("train_losses", np.float32(0.7 - epoch / 10), epoch)
        saved.logger.log("mean_fg_dice", np.float64(0.5 + epoch / 10), epoch)
        saved.logger.log("ema_fg_dice", np.float64(0.5), epoch)
        saved.logger.log("dice_per_class_or_region", [np.float64(0.4), np.float64(0.6)], epoch)
    saved._best_ema, saved.current_epoch = np.float64(0.5), 1
    with torch.no_grad():
        next(saved.network.parameters()).add_(1.0)
    saved.save_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    loaded = trainer()
    loaded.load_checkpoint(str(tmp_path / "checkpoint_latest.pth"))
    assert loaded.current_epoch == 2 and loaded._best_ema == 0.5
    assert loaded.logger.get_checkpoint()["train_losses"] == saved.logger.get_checkpoint()["train_losses"]
    for a, b in zip(saved.network.state_dict().values(), loaded.network.state_dict().values()):
        assert torch.equal(a, b)

    marker = tmp_path / "ran"
    crafted = torch.load(tmp_path / "checkpoint_latest.pth", weights_only=False)
    crafted["logging"]["train_losses"].append(_RunsCode(marker))
    torch.save(crafted, tmp_path / "crafted.pth")
    with pytest.raises(PoolskipError, match=r"crafted\.pth: refused to load") as e:
        loaded.load_checkpoint(str(tmp_path / "crafted.pth"))
    assert not marker.exists() and len(str(e.value).splitlines()) == 1


def _plans(**arch_kwargs):
    import copy

    plans = copy.deepcopy(PLANS)
    arch = plans["configurations"]["3d_fullres"]["architecture"]
    arch["arch_kwargs"].update(arch_kwargs)
    return arch, plans


def test_resenc_plans_get_pool_skip_on_the_residual_branch_convs_not_the_shortcuts(monkeypatch):
    """nnU-Net's ResEnc presets build dynamic-network-architectures' ResidualEncoderUNet: Pool Skip goes after
    conv1/conv2 of every BasicBlockD (as in the paper's ResNets), never on the 1x1 convs of ``skip``."""
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    arch, plans = _plans(n_blocks_per_stage=[1, 3, 4, 6], features_per_stage=[8, 16, 32, 64])
    arch["network_class_name"] = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
    del arch["arch_kwargs"]["n_conv_per_stage"]
    plans = PlansManager(plans)
    for name, stages in [("nnUNetTrainerPoolSkip", 4), ("nnUNetTrainerPoolSkipAMOS", 3)]:
        net = _find(name, monkeypatch).build_network_architecture(
            plans, plans.get_configuration("3d_fullres"), 1, 3, True
        )
        assert type(net).__name__ == "ResidualEncoderUNet"
        converted = [n for n, m in net.named_modules(remove_duplicate=False) if is_converted(m)]
        assert len({id(m) for m in net.modules() if is_converted(m)}) == 2 * sum([1, 3, 4, 6][:stages])
        assert all(".skip." not in n and ".stem." not in n for n in converted)
        assert all(m.kernel_size == (3, 3, 3) for m in net.modules() if is_converted(m))
        shortcuts = [m for n, m in net.named_modules() if ".skip." in n and isinstance(m, torch.nn.Conv3d)]
        assert shortcuts and not any(is_converted(m) for m in shortcuts)


def test_a_one_stage_plan_with_the_amos_placement_is_a_clear_error(monkeypatch):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    _, plans = _plans(n_stages=1, features_per_stage=[8], kernel_sizes=[[3, 3, 3]], strides=[[1, 1, 1]],
                      n_conv_per_stage=[2], n_conv_per_stage_decoder=[])  # fmt: skip
    plans = PlansManager(plans)
    conf = plans.get_configuration("3d_fullres")
    with pytest.raises(ValueError, match="nnunet_amos leaves out the last encoder stage.*only 1 stage.*nnunet_btcv"):
        _find("nnUNetTrainerPoolSkipAMOS", monkeypatch).build_network_architecture(plans, conf, 1, 3, True)
    net = _find("nnUNetTrainerPoolSkip", monkeypatch).build_network_architecture(plans, conf, 1, 3, True)
    assert sum(is_converted(m) for m in net.modules()) == 2  # the BTCV placement works on one stage
