"""The trainer modules nnU-Net imports from ``nnUNet_extTrainer`` (every module here must import cleanly)."""
