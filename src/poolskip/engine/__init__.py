"""One training loop for every task: config, optimiser and schedule, AMP, DDP, checkpoints/resume, logging.

A task (``task.py``) supplies data, loss, metrics and evaluation; ``trainer.py`` is the loop.
"""
