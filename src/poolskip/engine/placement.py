"""Where a run's model has Pool Skip, resolved: what ``summary.json`` records and reports group by.

A config's ``pool_skip`` value (``true``, a policy name, a pool size, a dict of :func:`~poolskip.convert`
arguments) says what to build; the built model says what came of it. :func:`placement` reads both, so
two configs that build the same network (``true`` and the paper's policy named) group together, and a
{Conv,Skip} ablation, a depthwise control or another pool size never group with Pool Skip.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models import get_model_entry, is_plain, list_models, pool_skip_spec
from ..module import PoolSkip

__all__ = ["placement", "placement_name"]


def _spec(model: str, pool_skip: object) -> dict[str, Any] | None:
    default = get_model_entry(model).pool_skip if model in list_models() else {}
    return pool_skip_spec(pool_skip, default)


def placement(model_name: str, pool_skip: object, model: nn.Module) -> dict[str, Any]:
    """``{"pool_skip": False}`` for a plain network; otherwise ``pool_skip: True`` with the ``policy`` name
    (None: convert's every-conv default), the number of ``sites``, the distinct ``pool_size``\\ s, and the
    inner convs' ``variant`` (the Table 4 ablation, ``full`` = the paper's), ``groups`` (1, ``depthwise``
    or an int) and ``kernel_size``, each one value or ``mixed``; and, only where they are not the module's
    defaults (so a default placement reads the same as before they were recorded), ``bias: false`` (inner
    convs without bias) and ``zero_init: true`` (started as the identity)."""
    sites = [m for m in model.modules() if isinstance(m, PoolSkip)]
    if is_plain(pool_skip) or not sites:
        return {"pool_skip": False}
    spec = _spec(model_name, pool_skip) or {}
    policy = spec.get("policy")

    def one(values: set) -> Any:
        return values.pop() if len(values) == 1 else "mixed"

    groups = {"depthwise" if s.groups == s.channels and s.groups > 1 else s.groups for s in sites}
    convs = [s.conv for s in sites if s.conv is not None]
    extra: dict[str, Any] = {}
    if convs and any(c.bias is None for c in convs):
        extra["bias"] = one({c.bias is not None for c in convs})
    if spec.get("zero_init"):
        extra["zero_init"] = True
    return {
        "pool_skip": True,
        "policy": policy if policy is None or isinstance(policy, str) else getattr(policy, "name", str(policy)),
        "sites": len(sites),
        "pool_size": [list(p) for p in sorted({tuple(s.pool_size) for s in sites})],
        "variant": one({s.variant for s in sites}),
        "groups": one(groups),
        "kernel_size": one({s.kernel_size[0] if len(set(s.kernel_size)) == 1 else tuple(s.kernel_size) for s in sites}),
        **extra,
    }


def placement_name(model_name: str, pool_skip: object) -> str:
    """A short name of a config's placement for run-directory names and log lines, e.g. ``plain``,
    ``pool_skip``, ``pool_skip-conv_skip``, ``pool_skip-depthwise`` (from the config alone, no model built)."""
    if is_plain(pool_skip):
        return "plain"
    try:
        spec = _spec(model_name, pool_skip) or {}
    except (TypeError, ValueError):
        return "pool_skip"
    parts = ["pool_skip"]
    if spec.get("variant", "full") != "full":
        parts.append(str(spec["variant"]))
    if spec.get("groups", 1) != 1:
        parts.append("depthwise" if spec["groups"] == "depthwise" else f"groups{spec['groups']}")
    return "-".join(parts)
