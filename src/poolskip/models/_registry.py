"""The model registry: named factories, each with the paper's Pool Skip placement for that network.

A factory is a small function ``factory(num_classes=..., **kwargs) -> nn.Module`` that builds the
plain network; :func:`register_model` records it together with the ``convert`` arguments that give
the paper's placement. :func:`create_model` builds a model and, if asked, converts it; :func:`build`
builds one to fit data described by a :class:`ModelSpec` (the one builder the engine, the controls and
``reproduce`` share).
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..convert import Policy, convert

__all__ = [
    "ModelEntry",
    "ModelSpec",
    "build",
    "get_planner",
    "create_model",
    "factory_parameters",
    "get_factory",
    "get_model_entry",
    "is_plain",
    "list_models",
    "pool_skip_spec",
    "register_model",
    "register_planner",
    "resolve_pool_skip",
]

#: Keys a ``pool_skip`` dict may hold: ``convert``'s keyword arguments and PoolSkip's options.
SPEC_KEYS = frozenset(
    {"policy", "pool_size", "include", "exclude", "where", "transposed", "example_input"}
    | {"kernel_size", "bias", "variant", "zero_init", "groups"}
)


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, the paper's Pool Skip placement and a one-line description."""

    name: str
    factory: Callable[..., nn.Module]
    pool_skip: Mapping[str, object] = field(default_factory=dict)
    description: str = ""
    spatial_dims: tuple[int, ...] = (2,)  # the input ranks it is built for (MONAI's spatial_dims)

    @property
    def group(self) -> str:
        """The family a model belongs to: its sub-package of ``poolskip.models`` (``cifar``, ``toy``, ...)."""
        return self.factory.__module__.removeprefix("poolskip.models.").split(".")[0]


@dataclass(frozen=True)
class ModelSpec:
    """What the model factory must be told to fit a task's data (MONAI's ``spatial_dims`` convention).

    ``hints`` are optional factory keywords a task can fill in, passed only to factories that take them
    (e.g. ``patch_size`` and ``spacing`` for nnU-Net's planner); keywords given to :func:`build` win.
    """

    in_channels: int
    num_classes: int
    spatial_dims: int = 2
    hints: Mapping[str, Any] = field(default_factory=dict)


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    pool_skip: Mapping[str, object], spatial_dims: tuple[int, ...] = (2,)
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a factory under its function name; ``pool_skip`` is the paper's placement.

    ``pool_skip`` holds :func:`~poolskip.convert` keyword arguments, at least ``policy``;
    ``spatial_dims`` the input ranks the model is built for (``(3,)`` for volumetric networks).
    """
    bad = set(pool_skip) - SPEC_KEYS
    if "policy" not in pool_skip or bad:
        raise ValueError(f"pool_skip must name a policy and only use {sorted(SPEC_KEYS)}; got {dict(pool_skip)}")

    def decorate(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = factory.__name__
        if name in _MODELS:
            raise ValueError(f"a model named {name!r} is already registered")
        doc = inspect.getdoc(factory) or ""
        _MODELS[name] = ModelEntry(
            name, factory, dict(pool_skip), doc.splitlines()[0] if doc else "", tuple(spatial_dims)
        )
        return factory

    return decorate


def list_models(group: str | None = None) -> list[str]:
    """Registered model names, sorted (ResNets by depth); only those of ``group`` (e.g. ``cifar``) if given."""

    def key(name: str) -> tuple[str, int, str]:
        head = name.rstrip("0123456789")
        tail = name[len(head) :]
        return (head, int(tail) if tail else -1, name)

    return sorted((n for n, e in _MODELS.items() if group is None or e.group == group), key=key)


_PLANNERS: dict[str, Callable[..., Any]] = {}


def register_planner(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a geometry planner under ``name``: ``planner(patch_size, spacing)`` returns a plan
    whose ``patch_size`` a network of that family can take (e.g. nnU-Net's 3d_fullres rule)."""

    def decorate(planner: Callable[..., Any]) -> Callable[..., Any]:
        if _PLANNERS.get(name, planner) is not planner:
            raise ValueError(f"a planner named {name!r} is already registered")
        _PLANNERS[name] = planner
        return planner

    return decorate


def get_planner(name: str) -> Callable[..., Any]:
    """The planner registered as ``name`` (a ValueError listing the known planners otherwise)."""
    try:
        return _PLANNERS[name]
    except KeyError:
        raise ValueError(f"unknown planner {name!r}; known planners: {', '.join(sorted(_PLANNERS))}") from None


def get_model_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (a ValueError listing the known names otherwise)."""
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}") from None


def is_plain(pool_skip: object) -> bool:
    """Whether ``pool_skip`` asks for the plain network: ``None``, ``False``, ``"none"`` or ``"plain"``."""
    return pool_skip is None or pool_skip is False or (isinstance(pool_skip, str) and pool_skip in ("none", "plain"))


def pool_skip_spec(pool_skip: object, default: Mapping[str, object]) -> dict[str, object] | None:
    """The :func:`~poolskip.convert` keyword arguments that ``pool_skip`` means, ``None`` for plain.

    ``default`` is the placement ``True`` stands for (a registered model's paper placement; ``{}``,
    i.e. convert's own defaults, for a model from elsewhere). A policy name or
    :class:`~poolskip.Policy`: that policy with its own pool sizes. An int: the default placement with
    that pool size everywhere. A dict: ``convert`` arguments (``policy``, ``pool_size``, ``include``,
    ``exclude``, ``where``, ...); without a ``policy`` key the default's policy (if any) is used.
    """
    if is_plain(pool_skip):
        return None
    if pool_skip is True:
        return dict(default)
    if isinstance(pool_skip, (str, Policy)):
        return {"policy": pool_skip}
    if isinstance(pool_skip, int):
        if pool_skip < 1:
            raise ValueError(f"pool_skip as a pool size must be >= 1, got {pool_skip}")
        return {**default, "pool_size": pool_skip}
    if isinstance(pool_skip, Mapping):
        bad = set(pool_skip) - SPEC_KEYS
        if bad:
            raise ValueError(f"unknown pool_skip key(s) {sorted(bad)}; allowed: {sorted(SPEC_KEYS)}")
        return {**{k: v for k, v in default.items() if k == "policy"}, **pool_skip}
    raise TypeError(
        "pool_skip must be None, a bool, a policy name or Policy, an int pool size or a dict of convert "
        f"arguments; got {type(pool_skip).__name__}"
    )


def resolve_pool_skip(name: str, pool_skip: object) -> dict[str, object] | None:
    """:func:`pool_skip_spec` for the registered model ``name``: ``True`` is the paper's placement for it."""
    return pool_skip_spec(pool_skip, get_model_entry(name).pool_skip)


def get_factory(name: str) -> tuple[Callable[..., nn.Module], Mapping[str, object]]:
    """``(factory, paper placement)`` of a registered name, or of ``package.module:factory`` (imported; its
    placement is ``{}``, i.e. ``convert``'s defaults: every conv, pool 2)."""
    if ":" not in name:
        entry = get_model_entry(name)
        return entry.factory, entry.pool_skip
    module_name, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"model {name!r}: cannot import {attr} from {module_name} ({e})") from None
    if not callable(factory):
        raise ValueError(f"model {name!r}: {attr} in {module_name} is not callable")
    return factory, {}


def factory_parameters(name: str) -> list[str] | None:
    """The keyword arguments the factory of ``name`` takes (None if it takes any, via ``**kwargs``)."""
    params = inspect.signature(get_factory(name)[0]).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return list(params)


def create_model(name: str, num_classes: int = 10, pool_skip: object = None, **kwargs) -> nn.Module:
    """Build model ``name`` for ``num_classes`` classes, with Pool Skip if asked.

    ``name`` is a registered model or ``package.module:factory`` (imported and called the same way; one
    path for both). ``kwargs`` go to the model's factory (e.g. ``width=16`` for the ResNets,
    ``in_channels=1``). ``pool_skip`` is read by :func:`pool_skip_spec` with the model's paper placement
    as ``True``; the model is then passed through :func:`~poolskip.convert`, so its plain parameter
    names do not move. Build under ``with torch.device("meta"):`` to count parameters of a large model
    without allocating it.
    """
    factory, placement = get_factory(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    accepted = factory_parameters(name)
    if accepted is not None:
        accepted = [p for p in accepted if p != "num_classes"]
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            takes = ", ".join(accepted) if accepted else "nothing besides num_classes and pool_skip"
            raise TypeError(f"model {name!r} has no option(s) {unknown}; it takes: {takes}")
    spec = pool_skip_spec(pool_skip, placement)
    model = factory(num_classes=num_classes, **kwargs)
    if not isinstance(model, nn.Module):  # e.g. a factory that forgot its return: not trained, not converted
        raise TypeError(f"model {name!r}: its factory returned {type(model).__name__}, not a torch.nn.Module")
    if spec is not None:
        with warnings.catch_warnings():  # nothing converted is this function's error, below
            warnings.simplefilter("ignore", UserWarning)
            report = convert(model, **spec)
        if not report.converted:
            raise ValueError(
                f"model {name!r} with pool_skip={pool_skip!r} got no Pool Skip: {report.reason}; "
                "choose a placement that fits it (a policy of poolskip.list_policies() or {include: [...]})"
            )
    return model


def build(name: str, spec: ModelSpec, pool_skip: object = None, **kwargs) -> nn.Module:
    """Model ``name`` (registered or ``package.module:factory``) fitted to data described by ``spec``, plain or
    with Pool Skip (``pool_skip`` as in :func:`create_model`).

    The factory gets ``num_classes=spec.num_classes``, and ``in_channels`` and each of ``spec.hints`` where
    its signature names them; ``kwargs`` (e.g. a config's ``model_kwargs``) win. A registered model built
    for other input ranks than ``spec.spatial_dims`` is a ValueError, as is an unknown name.
    """
    if ":" not in name:
        entry = get_model_entry(name)
        if spec.spatial_dims not in entry.spatial_dims:
            raise ValueError(
                f"model {name!r} is built for {'/'.join(map(str, entry.spatial_dims))}D inputs, but the data has "
                f"{spec.spatial_dims}D samples"
            )
    takes = factory_parameters(name)
    offered = {"in_channels": spec.in_channels, **spec.hints}
    fitted = {k: v for k, v in offered.items() if takes is not None and k in takes}
    return create_model(name, num_classes=spec.num_classes, pool_skip=pool_skip, **{**fitted, **kwargs})
