"""Cost-matched controls for Pool Skip: does it beat a plain network that costs the same?

Pool Skip is not free: after every conv it multiplies the CIFAR MobileNet's multiply-adds by 19 and
ResNet18's by 2. Three controls, each a ``(pool_skip, model_kwargs)`` change of a run's config:

- ``conv_skip``: the paper's {Conv, Skip} ablation (``O = Y + Conv(Y)``) at the paper's placement: the
  same parameters and MACs as Pool Skip, without the pooling;
- ``wide``: the plain network widened (its ``width`` knob) until its MACs best match Pool Skip's;
- ``depthwise``: a cheap Pool Skip whose inner conv is depthwise (``groups="depthwise"``), which none of
  the paper's variants tries: C * 9 instead of C^2 * 9 weights per site.

Costs are counted on the meta device (no memory, no arithmetic) with the counter of
:mod:`poolskip.models.table`: convolutions and matrix products, as multiply-adds per image.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..convert import get_policy
from ..models import (
    ModelSpec,
    factory_parameters,
    get_factory,
    get_model_entry,
    list_models,
    pool_skip_spec,
    resolve_pool_skip,
)
from ..models import build as build_network
from ..models.table import params_and_macs

__all__ = [
    "CONTROLS",
    "Cost",
    "control_spec",
    "cost",
    "match_width",
    "models_with_width",
]

#: The controls, with what each one asks.
CONTROLS = {
    "conv_skip": "{Conv, Skip} ablation (O = Y + Conv(Y)): Pool Skip's cost, no pooling",
    "wide": "plain network widened to Pool Skip's multiply-adds",
    "depthwise": "Pool Skip with a depthwise inner conv (cheap; not in the paper)",
}

#: The ``pool_skip`` keys of the depthwise control (PoolSkip's ``groups``).
_DEPTHWISE = {"groups": "depthwise"}


@dataclass(frozen=True)
class Cost:
    """A network's parameters and forward multiply-adds per input of the counted shape."""

    params: int
    macs: int


def build(
    model: str,
    pool_skip: object,
    model_kwargs: Mapping[str, object],
    num_classes: int,
    in_channels: int | None = None,
    device: str = "meta",
    input_shape: Sequence[int] | None = None,
) -> nn.Module:
    """:func:`poolskip.models.build` on ``device`` (the meta device: shapes only) in eval mode, for
    ``num_classes`` classes and inputs of ``in_channels`` channels (None: the factory's default). With
    ``input_shape`` (channels first), a 3D factory that plans for its input (nnU-Net's ``patch_size``) is
    planned for that shape; the spatial dims are the shape's, else the first the model is registered for."""
    if input_shape is not None:
        in_channels = input_shape[0] if in_channels is None else in_channels
        dims = len(input_shape) - 1
        hints = {"patch_size": tuple(input_shape[1:])} if dims == 3 else {}
    else:
        dims, hints = (2 if ":" in model else get_model_entry(model).spatial_dims[0]), {}
    if in_channels is None:
        default = inspect.signature(get_factory(model)[0]).parameters.get("in_channels")
        in_channels = default.default if default is not None and default.default is not inspect.Parameter.empty else 3
    with torch.device(device):
        return build_network(model, ModelSpec(in_channels, num_classes, dims, hints), pool_skip, **model_kwargs).eval()


def cost(
    model: str,
    pool_skip: object = None,
    model_kwargs: Mapping[str, object] | None = None,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
) -> Cost:
    """Parameters and multiply-adds per ``input_shape`` input of a registered model (meta device); a model that
    plans for its input (nnU-Net) is planned for ``input_shape`` unless ``model_kwargs`` name its patch.

    Counted once per process for each set of arguments (a count of a deep network on the meta device takes
    seconds, and a plan or a width search asks for the same one many times); the model's factory and the
    placement policy it resolves to are part of the key, so a model or policy registered again is counted
    again."""
    registered = _registered(model, pool_skip)
    args = [model, pool_skip, dict(model_kwargs or {}), num_classes, list(input_shape)]
    key = (json.dumps(args, sort_keys=True, default=repr), *map(id, registered))
    if key not in _COSTS:
        if len(_COSTS) >= _MOST_COSTS:
            _COSTS.clear()
        net = build(model, pool_skip, model_kwargs or {}, num_classes, input_shape=input_shape)
        _COSTS[key] = (Cost(*params_and_macs(net, tuple(input_shape))), registered)  # held: their ids stay theirs
    return _COSTS[key][0]


#: :func:`cost`'s counts in this process, by arguments and the identities of the factory and policy (held beside
#: the count); emptied past :data:`_MOST_COSTS`.
_COSTS: dict[tuple, tuple[Cost, tuple[object, object]]] = {}
_MOST_COSTS = 1024


def _registered(model: str, pool_skip: object) -> tuple[object, object]:
    """The factory ``model`` names and the placement policy ``pool_skip`` resolves to for it (None: none)."""
    factory, paper = get_factory(model)
    policy = (pool_skip_spec(pool_skip, paper) or {}).get("policy")
    return factory, get_policy(policy) if isinstance(policy, str) else policy


def models_with_width() -> list[str]:
    """Registered models whose factory has a ``width`` knob (the ones :func:`match_width` can widen)."""
    return [n for n in list_models() if has_width(n)]


def has_width(model: str) -> bool:
    """Whether ``model`` (registered or ``package.module:factory``) has a ``width`` knob."""
    try:
        takes = factory_parameters(model)
    except ValueError:
        return False
    return takes is not None and "width" in takes


def _default_width(model: str) -> int:
    return inspect.signature(get_factory(model)[0]).parameters["width"].default


def match_width(
    model: str,
    pool_skip: object = True,
    model_kwargs: Mapping[str, object] | None = None,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
) -> tuple[int, Cost, Cost]:
    """The ``width`` whose plain ``model`` has the multiply-adds closest to ``model`` with ``pool_skip``.

    ``model_kwargs`` (e.g. ``{"width": 16}``) build the Pool Skip network whose cost is matched.
    Returns ``(width, plain cost at that width, Pool Skip cost)``. MACs grow with the width, so a
    bisection over integer widths finds it in a few meta-device counts.
    """
    if not has_width(model):
        raise ValueError(
            f"model {model!r} has no width knob, so no plain network can be widened to Pool Skip's cost; "
            f"models with one: {', '.join(models_with_width())}"
        )
    kwargs = dict(model_kwargs or {})
    base = int(kwargs.pop("width", _default_width(model)))
    target = cost(model, pool_skip, {**kwargs, "width": base}, num_classes, input_shape)

    def plain(w: int) -> Cost:
        return cost(model, None, {**kwargs, "width": w}, num_classes, input_shape)

    lo, hi = base, 2 * base
    while plain(hi).macs < target.macs:  # grow until the upper end costs more than Pool Skip
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if plain(mid).macs < target.macs:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda w: abs(plain(w).macs - target.macs))
    return best, plain(best), target


def control_spec(
    control: str,
    model: str,
    pool_skip: object = True,
    model_kwargs: Mapping | None = None,
    num_classes: int = 10,
    input_shape: Sequence[int] = (3, 32, 32),
) -> tuple[object, dict]:
    """The ``(pool_skip, model_kwargs)`` of ``control`` (one of :data:`CONTROLS`) for a run of ``model``.

    ``pool_skip`` is the Pool Skip the control is matched to (``True``: the paper's placement; a dict
    or an int pool size keeps its placement and pool size); ``model_kwargs`` the run's factory options.
    """
    kwargs = dict(model_kwargs or {})
    spec = resolve_pool_skip(model, pool_skip)
    if spec is None:
        raise ValueError(f"a control is matched to a Pool Skip network; got pool_skip={pool_skip!r} (plain)")
    paper_policy = resolve_pool_skip(model, True).get("policy")
    own = {k: v for k, v in spec.items() if not (k == "policy" and v == paper_policy)}  # the registry adds it
    if control == "conv_skip":
        return {**own, "variant": "conv_skip"}, kwargs
    if control == "depthwise":
        return {**own, **_DEPTHWISE}, kwargs
    if control == "wide":
        width, _, _ = match_width(model, pool_skip, kwargs, num_classes, input_shape)
        return None, {**kwargs, "width": width}
    raise ValueError(f"unknown control {control!r}; known: {', '.join(CONTROLS)}")
