"""The paper's networks, defined once (plain) and given Pool Skip by :func:`poolskip.convert`.

``create_model(name, num_classes=10, pool_skip=None, **kwargs)`` builds a registered model (or
``package.module:factory``); ``build(name, spec, pool_skip=None, **kwargs)`` builds one to fit data
described by a :class:`ModelSpec` (channels, classes, spatial dims, factory hints), the way the engine does;
``pool_skip`` is ``None``/``False``/``"none"`` (plain), ``True`` (the paper's placement for that network), a
placement policy name, an int pool size (the paper's placement with that pool size) or a dict of
``convert`` arguments. ``list_models()`` names them; ``get_planner(name)`` gives a registered geometry
planner (``nnunet_3d_fullres``: nnU-Net's patch rule, which the 3D task plans its patch with). Importing
this package also registers the placement policies ``deep_resnet`` and ``tokenizer``
(see :mod:`poolskip.models.policies`).
"""

from . import cifar, policies, segmentation, toy, volumetric  # noqa: F401  (importing them registers models and policies)
from ._registry import (
    ModelEntry,
    ModelSpec,
    build,
    create_model,
    factory_parameters,
    get_factory,
    get_model_entry,
    get_planner,
    is_plain,
    list_models,
    pool_skip_spec,
    register_model,
    register_planner,
    resolve_pool_skip,
)
from .cifar.resnet import DEPTHS, ResNet, resnet

__all__ = [
    "DEPTHS",
    "ModelEntry",
    "ModelSpec",
    "ResNet",
    "build",
    "create_model",
    "factory_parameters",
    "get_factory",
    "get_model_entry",
    "get_planner",
    "is_plain",
    "list_models",
    "pool_skip_spec",
    "register_model",
    "register_planner",
    "resnet",
    "resolve_pool_skip",
]
