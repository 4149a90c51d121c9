"""Tasks: what a problem brings to the one training loop (data, loss, evaluation, a diagnostics probe).

:mod:`.base` is the contract (:class:`Task` built from a :class:`TaskContext`, :class:`Monitor`,
:class:`ModelSpec`), the optional capabilities (:class:`CrossValidated`, :class:`PicturesPredictions`,
:class:`HasNominalGeometry`, :class:`HasScoringCost`) and the registry; each module beside it registers one
task. ``list_tasks()`` names them.
"""

from . import base, classification, segmentation, segmentation3d  # noqa: F401  (importing registers the tasks)
from .base import *  # noqa: F403  (the contract is the package's API)

__all__ = base.__all__
