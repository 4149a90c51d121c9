"""``python -m poolskip.integrations.nnunet``: print the folder to export as ``nnUNet_extTrainer``."""

from . import trainer_dir

print(trainer_dir())
