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

import os
from pathlib import Path

import torch
from torch import nn

from ...convert import convert
from ...errors import PoolskipError, torch_load_failure

__all__ = ["build_network", "read_nnunet_checkpoint", "trainer_dir"]


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


def _numpy_plain_types() -> list:
    """The numpy objects nnU-Net's checkpoints hold besides tensors: float scalars its logger and
    ``_best_ema`` keep (``numpy.float32/64``), pickled as ``scalar(dtype, bytes)``."""
    import numpy as np

    scalar = (np._core if hasattr(np, "_core") else np.core).multiarray.scalar
    numeric = ("Float16DType", "Float32DType", "Float64DType", "Int32DType", "Int64DType")
    dtypes = [getattr(np.dtypes, n) for n in numeric]
    return [scalar, (scalar, "numpy.core.multiarray.scalar"), np.dtype, *dtypes]  # numpy 1.x files name numpy.core


def read_nnunet_checkpoint(file: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """An nnU-Net v2 trainer checkpoint (``checkpoint_final.pth`` ...) read as data: ``torch.load`` with
    ``weights_only=True``, allowing only the plain numpy float scalars nnU-Net stores besides tensors, dicts,
    lists, numbers, strings and ``torch.device``. A file holding anything else is refused, never run."""
    import warnings

    if not Path(file).is_file():
        raise PoolskipError(f"{file} not found: expected an nnU-Net trainer checkpoint")
    try:
        with torch.serialization.safe_globals(_numpy_plain_types()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            ck = torch.load(file, map_location=device, weights_only=True)
    except Exception as e:  # truncated, not a torch file, or holding objects that are not plain data
        raise PoolskipError(
            f"{file}: refused to load this nnU-Net checkpoint ({torch_load_failure(e)}); a checkpoint is loaded "
            "as data, never code"
        ) from None
    if not isinstance(ck, dict) or "network_weights" not in ck:
        raise PoolskipError(f"{file} is not an nnU-Net trainer checkpoint (no 'network_weights')")
    return ck
