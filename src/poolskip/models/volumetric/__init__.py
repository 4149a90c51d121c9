"""3D segmentation networks of the paper's Table 3, from the field's own libraries, with their placements.

- ``vnet``: MONAI's ``VNet``; placements ``vnet`` (the paper's: the first two encoder stages) and
  ``vnet_full`` (every encoder stage, which the official module could not run on odd sizes).
- ``nnunet``: nnU-Net's ``PlainConvUNet`` (``dynamic-network-architectures``) configured as nnU-Net's
  default 3d_fullres planner would for a patch size and spacing; placements ``nnunet_btcv`` (every conv
  of every encoder stage) and ``nnunet_amos`` (every encoder stage but the last).

:mod:`.planning` is nnU-Net's planner on its own (:func:`plan_3d_fullres`), which the 3D task uses to plan
its patch without building a network.

Importing this package needs neither MONAI nor nnU-Net's package: the factories import them when called
and say which extra to install (``pip install 'poolskip[med]'``).
"""

from . import nnunet, vnet  # noqa: F401  (importing registers the models and their placement policies)
from .planning import Plan, plan_3d_fullres

__all__ = ["Plan", "plan_3d_fullres"]
