"""nnU-Net v2 trainers that build nnU-Net's own network from its plans and give it Pool Skip.

nnU-Net finds a trainer given by ``-tr NAME`` inside its package or, since 2.8.0, in the folders named
by the ``nnUNet_extTrainer`` environment variable. :func:`trainer_dir` is the folder holding
``nnUNetTrainerPoolSkip`` (the paper's BTCV placement, ``nnunet_btcv``), ``nnUNetTrainerPoolSkipAMOS``
(``nnunet_amos``) and their ``_5epochs`` variants for smoke runs::

    export nnUNet_extTrainer=$(poolskip nnunet)
    nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainerPoolSkip

Needs ``pip install 'poolskip[nnunet]'``.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ...convert import convert

__all__ = ["build_network", "trainer_dir"]


def trainer_dir() -> Path:
    """The folder to put in ``nnUNet_extTrainer``."""
    return Path(__file__).resolve().parent / "trainers"


def build_network(
    plans_manager,
    configuration_manager,
    num_input_channels: int,
    num_output_channels: int,
    enable_deep_supervision: bool = True,
    policy: str = "nnunet_btcv",
) -> nn.Module:
    """nnU-Net's network for this configuration, built as nnU-Net builds it, then converted with ``policy``."""
    from ...optional import require

    trainer = require("nnunetv2.training.nnUNetTrainer.nnUNetTrainer", "nnunet", "the nnU-Net trainer")
    network = trainer.nnUNetTrainer.build_network_architecture(
        plans_manager, configuration_manager, num_input_channels, num_output_channels, enable_deep_supervision
    )
    report = convert(network, policy=policy)
    if not len(report):
        raise RuntimeError(f"placement {policy!r} found no encoder conv in {type(network).__name__}: {report.reason}")
    return network
