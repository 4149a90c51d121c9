"""nnU-Net v2 trainers with Pool Skip in nnU-Net's own network (see :mod:`poolskip.integrations.nnunet`).

nnU-Net imports this module from the ``nnUNet_extTrainer`` folder and uses the class named by ``-tr``.
``build_network_architecture`` is also what nnU-Net's inference calls, so predictions load the converted
network with its Pool Skip weights. ``load_checkpoint`` (``--c``, ``--val``) reads the file as data
(``weights_only=True``) where nnU-Net's own passes ``weights_only=False``.
"""

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch._dynamo import OptimizedModule

from poolskip.integrations.nnunet import build_network, read_nnunet_checkpoint

_CUDA = torch.device("cuda")  # nnU-Net's own default; nnUNetv2_train passes the device it runs on


class nnUNetTrainerPoolSkip(nnUNetTrainer):
    """nnU-Net's trainer; Pool Skip after every conv of every encoder stage (the paper's BTCV placement)."""

    poolskip_policy = "nnunet_btcv"  # the placement given to poolskip.convert

    @classmethod
    def build_network_architecture(
        cls,
        plans_manager,
        configuration_manager,
        num_input_channels,
        num_output_channels,
        enable_deep_supervision=True,
    ):
        return build_network(
            plans_manager, configuration_manager, num_input_channels, num_output_channels, enable_deep_supervision,
            policy=cls.poolskip_policy,
        )  # fmt: skip

    def load_checkpoint(self, filename_or_checkpoint):
        """nnU-Net 2.8's ``nnUNetTrainer.load_checkpoint``, reading the file with ``weights_only=True``
        (:func:`~poolskip.integrations.nnunet.read_nnunet_checkpoint`) instead of unpickling whatever it holds."""
        if not self.was_initialized:
            self.initialize()
        checkpoint = filename_or_checkpoint
        if not isinstance(checkpoint, dict):
            checkpoint = read_nnunet_checkpoint(checkpoint, self.device)
        network = self.network.module if self.is_ddp else self.network
        if isinstance(network, OptimizedModule):
            network = network._orig_mod
        own = network.state_dict().keys()
        weights = {}
        for key, value in checkpoint["network_weights"].items():  # nn.DataParallel prefixes, as nnU-Net strips them
            weights[key[7:] if key not in own and key.startswith("module.") else key] = value
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        self.inference_allowed_mirroring_axes = checkpoint.get(
            "inference_allowed_mirroring_axes", self.inference_allowed_mirroring_axes
        )
        network.load_state_dict(weights)
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.grad_scaler is not None and checkpoint["grad_scaler_state"] is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])


class nnUNetTrainerPoolSkipAMOS(nnUNetTrainerPoolSkip):
    """nnU-Net's trainer; Pool Skip in every encoder stage but the last (the paper's AMOS placement)."""

    poolskip_policy = "nnunet_amos"


class nnUNetTrainerPoolSkip_5epochs(nnUNetTrainerPoolSkip):
    """Five epochs, for smoke runs (as nnU-Net's own ``nnUNetTrainer_5epochs``)."""

    def __init__(self, plans, configuration, fold, dataset_json, device=_CUDA):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 5


class nnUNetTrainerPoolSkipAMOS_5epochs(nnUNetTrainerPoolSkipAMOS):
    """Five epochs, for smoke runs."""

    def __init__(self, plans, configuration, fold, dataset_json, device=_CUDA):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 5


class nnUNetTrainerPoolSkip_cpu_smoke(nnUNetTrainerPoolSkip):
    """Two epochs of 4 training and 2 validation iterations at batch 2: proves the pipeline on a CPU, trains nothing."""

    def __init__(self, plans, configuration, fold, dataset_json, device=_CUDA):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 2
        self.num_iterations_per_epoch = 4
        self.num_val_iterations_per_epoch = 2
        self.configuration_manager.configuration["batch_size"] = 2
