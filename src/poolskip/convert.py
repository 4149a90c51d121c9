"""Retrofit Pool Skip into an existing model, in place.

Each selected convolution gets a :class:`~poolskip.PoolSkip` child named ``pool_skip`` and a forward
hook that applies it to the conv's output, so Pool Skip sits right after the conv and before whatever
follows it (BN, activation), as in the paper. The conv itself stays where it was: every original
``state_dict`` key keeps its name, and the new keys are ``<conv name>.pool_skip.*``.

Which convs: all ``nn.Conv1d/2d/3d`` by default (transposed convs only with ``transposed=True``),
narrowed by a named placement policy, name patterns and a predicate. See :func:`convert`.
"""

from __future__ import annotations

import fnmatch
import importlib
import re
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from .functional import to_tuple
from .module import PoolSkip

__all__ = [
    "ConvertReport",
    "Placement",
    "Policy",
    "convert",
    "get_policy",
    "is_converted",
    "load_plain_state_dict",
    "list_policies",
    "register_policy",
    "unconvert",
]

PoolSize = int | tuple[int, ...]
NamePattern = str | re.Pattern

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
CHILD = "pool_skip"


#: The attribute of a converted conv's ``pool_skip`` child that says whether the conv had a bias when converted.
_HOST_HAD_BIAS = "_host_had_bias"


def _apply_pool_skip(module: nn.Module, inputs, output):
    """Forward hook on a converted conv: its output goes through its ``pool_skip`` child.

    Refuses a conv that gained a bias after :func:`convert`: that is what folding a BatchNorm into a bias-free
    conv does (``torch.ao.quantization.fuse_modules``, ``torch.nn.utils.fusion.fuse_conv_bn_eval``; they copy
    the conv with its hook and child), and Pool Skip would then run after the BN it should precede.
    """
    pool_skip = module.pool_skip
    if getattr(pool_skip, _HOST_HAD_BIAS, None) is False and module.bias is not None:
        raise RuntimeError(
            f"this {type(module).__name__} carries Pool Skip (poolskip.convert) and has a bias that it did not have "
            "when converted: a BatchNorm was folded into it (e.g. torch.ao.quantization.fuse_modules or "
            "torch.nn.utils.fusion.fuse_conv_bn_eval), which moves that BN before Pool Skip instead of after it "
            "and changes the output. Keep the BatchNorms of a converted model unfused (or fold them into the plain "
            "model before convert, which is then another model: Pool Skip after the BN)"
        )
    return pool_skip(output)


# --------------------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class Policy:
    """A named placement rule: ``select(model)`` maps conv names to a pool size (or None to leave out).

    ``kwargs`` are PoolSkip constructor defaults the policy implies (e.g. kernel size); explicit
    arguments to :func:`convert` override both the pool sizes and these.
    """

    name: str
    description: str
    select: Callable[[nn.Module], Mapping[str, PoolSize | None]]
    kwargs: Mapping[str, object] = field(default_factory=dict)


_POLICIES: dict[str, Policy] = {}


def register_policy(policy: Policy, *, overwrite: bool = False) -> Policy:
    """Make ``policy`` available to ``convert(model, policy=policy.name)``."""
    if policy.name in _POLICIES and not overwrite:
        raise ValueError(f"a placement policy named {policy.name!r} is already registered")
    _POLICIES[policy.name] = policy
    return policy


def _register_paper_policies() -> None:
    """The paper's networks register their placements (``deeplab``, ``vnet``, ``nnunet_btcv``...) beside their
    definitions, when :mod:`poolskip.models` is imported. A lookup imports it first (by name: the models sit
    above this module), so the registry answers the same whether or not the caller imported the models, and
    ``import poolskip`` stays light."""
    importlib.import_module("poolskip.models")


def get_policy(name: str | Policy) -> Policy:
    """The registered policy called ``name`` (a :class:`Policy` passes through)."""
    if isinstance(name, Policy):
        return name
    if name not in _POLICIES:
        _register_paper_policies()
    try:
        return _POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown placement policy {name!r}; known: {', '.join(sorted(_POLICIES))}") from None


def list_policies() -> dict[str, str]:
    """Registered policy names and their one-line descriptions (the paper's networks' included)."""
    _register_paper_policies()
    return {name: p.description for name, p in sorted(_POLICIES.items())}


def _every_conv(model: nn.Module) -> dict[str, PoolSize | None]:
    return {name: 2 for name, m in model.named_modules() if isinstance(m, _CONVS)}


def _residual_branches(model: nn.Module) -> dict[str, PoolSize | None]:
    # A residual block, duck-typed as in torchvision and pytorch-cifar100: direct conv children
    # conv1, conv2 (BasicBlock, pool 2) and conv3 (Bottleneck, pool 4). The stem conv and the 1x1
    # shortcut convs (in `downsample` / `shortcut`) are not children named convN of a block.
    out: dict[str, PoolSize | None] = {}
    for name, block in model.named_modules():
        convs = [getattr(block, f"conv{i}", None) for i in (1, 2, 3)]
        if not (isinstance(convs[0], _CONVS) and isinstance(convs[1], _CONVS)):
            continue
        bottleneck = isinstance(convs[2], _CONVS)
        for i, conv in enumerate(convs, 1):
            if isinstance(conv, _CONVS):
                out[f"{name}.conv{i}" if name else f"conv{i}"] = 4 if bottleneck else 2
    return out


register_policy(Policy("every_conv", "after every convolution (the paper's Table 1 wording), pool 2", _every_conv))
register_policy(
    Policy(
        "official",
        "the official code's ResNet placement: residual-branch convs of every block (conv1..conv3), "
        "pool 2 in BasicBlocks, 4 in Bottlenecks; not the stem, not the shortcuts",
        _residual_branches,
    )
)


# --------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Placement:
    """One conv that got Pool Skip."""

    name: str
    conv_type: str
    channels: int
    pool_size: tuple[int, ...]
    params: int


@dataclass
class ConvertReport:
    """Where :func:`convert` put Pool Skip, what it left out and why, and the new state-dict keys;
    ``reason`` says why nothing was converted (empty when something was)."""

    converted: list[Placement] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    new_keys: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def num_params(self) -> int:
        """Parameters added by Pool Skip."""
        return sum(p.params for p in self.converted)

    def __len__(self) -> int:
        return len(self.converted)

    def __str__(self) -> str:
        if not self.converted:
            lines = [f"Pool Skip after 0 convs: {self.reason}" if self.reason else "Pool Skip after 0 convs"]
        else:
            lines = [f"Pool Skip after {len(self.converted)} conv(s), +{self.num_params:,} parameters"]
        lines += [f"  + {p.name} ({p.conv_type}, C={p.channels}, pool {p.pool_size})" for p in self.converted]
        if self.skipped:
            lines.append(f"left out {len(self.skipped)} conv(s):")
            lines += [f"  - {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------- convert


def is_converted(module: nn.Module) -> bool:
    """Whether ``module`` is a conv that :func:`convert` gave Pool Skip."""
    return isinstance(getattr(module, CHILD, None), PoolSkip) and _apply_pool_skip in module._forward_hooks.values()


def _patterns(value: NamePattern | Iterable[NamePattern] | None) -> list[NamePattern] | None:
    if value is None:
        return None
    if isinstance(value, (str, re.Pattern)):
        return [value]
    return list(value)


def _matches(name: str, patterns: list[NamePattern]) -> bool:
    for p in patterns:
        if isinstance(p, re.Pattern):
            if p.search(name):
                return True
        elif fnmatch.fnmatchcase(name, p):
            return True
    return False


#: Why :func:`convert` leaves out a conv that already has Pool Skip: not a mistake, no warning for it alone.
_ALREADY_CONVERTED = "already converted"
_FOLLOWED_BY = "already followed by PoolSkip"


def _explicit_pool_skips(model: nn.Module) -> dict[str, PoolSkip]:
    """The model's own :class:`PoolSkip` modules, by name: those that no converted conv holds as its child."""
    owned = {id(getattr(m, CHILD)) for m in model.modules() if is_converted(m)}
    return {name: m for name, m in model.named_modules() if isinstance(m, PoolSkip) and id(m) not in owned}


def _places_in_sequences(model: nn.Module, explicit: Mapping[str, PoolSkip]) -> dict[int, str]:
    """Where ``nn.Sequential`` order tells what feeds the ``explicit`` PoolSkips: ``{id(module before): its
    name}`` for every module an explicit PoolSkip follows directly (the others' input is unknown without a
    forward pass)."""
    names = {id(m): name for name, m in explicit.items()}
    followed: dict[int, str] = {}
    for seq in model.modules():
        if isinstance(seq, nn.Sequential):
            children = list(seq.children())
            for before, after in zip(children, children[1:]):
                if id(after) in names:
                    followed[id(before)] = names[id(after)]
    return followed


def _already_has_pool_skip(why: str) -> bool:
    """Whether a reason in the report's ``skipped`` says that the conv already has Pool Skip."""
    return why == _ALREADY_CONVERTED or why.startswith(_FOLLOWED_BY)


def _example_pass(
    model: nn.Module, names: Sequence[str], example_input, explicit: Mapping[str, PoolSkip]
) -> tuple[dict[str, torch.Size], dict[str, str]]:
    """One forward pass of ``example_input`` (no grad): the output shapes of the named modules, and which of
    them hand their output straight to one of the ``explicit`` PoolSkip modules (module name -> its name)."""
    shapes: dict[str, torch.Size] = {}
    outputs: dict[int, tuple[weakref.ref, str]] = {}  # id(output) -> (the output, who made it), no copy kept
    feeds: dict[str, str] = {}
    handles = []
    modules = dict(model.named_modules())
    for name in names:

        def hook(m, i, o, name=name):
            shapes[name] = o.shape
            if isinstance(o, torch.Tensor):
                outputs[id(o)] = (weakref.ref(o), name)

        handles.append(modules[name].register_forward_hook(hook))
    for ps_name, ps in explicit.items():

        def pre_hook(m, i, ps_name=ps_name):
            made = outputs.get(id(i[0])) if i and isinstance(i[0], torch.Tensor) else None
            if made is not None and made[0]() is i[0]:
                feeds.setdefault(made[1], ps_name)

        handles.append(ps.register_forward_pre_hook(pre_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            if isinstance(example_input, (tuple, list)):
                model(*example_input)
            else:
                model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes, feeds


def convert(
    model: nn.Module,
    policy: str | Policy | None = None,
    *,
    pool_size: PoolSize | Callable[[str, nn.Module], PoolSize | None] | None = None,
    include: NamePattern | Iterable[NamePattern] | None = None,
    exclude: NamePattern | Iterable[NamePattern] | None = None,
    where: Callable[[str, nn.Module], bool] | None = None,
    transposed: bool = False,
    example_input=None,
    **pool_skip_kwargs,
) -> ConvertReport:
    """Insert Pool Skip after the selected convolutions of ``model``, in place; returns a report.

    Selection, in order: every ``nn.Conv1d/2d/3d`` (plus ``ConvTranspose*`` if ``transposed``);
    the convs a named ``policy`` selects (see :func:`list_policies`; with ``transposed=True``, a policy that
    selects none of the transposed convs warns and lists them in the report: the built-in ones select
    ``Conv1d/2d/3d`` only); names matching ``include``
    (glob strings or compiled regexes, searched) and not matching ``exclude``; ``where(name, conv)``
    true. ``pool_size`` is a number/tuple for all, or a function of ``(name, conv)`` returning one
    (``None`` leaves that conv out); default: the policy's size, else 2.

    With ``example_input``, one forward pass records each conv's output size and leaves out convs whose
    output is smaller than the pool in some dim (e.g. a 1x1 map) and convs that the pass does not call;
    the report lists each with its reason. Without it such convs still work (a window never exceeds the
    map), they just pool nothing.

    A conversion that selects nothing (e.g. the ``official`` policy on a network without ResNet blocks)
    warns, and its report's ``reason`` says which step left nothing. Converting again leaves already
    converted convs alone (without a warning). So does a model that places :class:`PoolSkip` modules
    itself: a conv that one of them directly follows in an ``nn.Sequential``, or (with ``example_input``)
    whose output goes straight into one, is left out and listed ("already followed by PoolSkip");
    without ``example_input``, PoolSkip modules whose input convert cannot tell give a warning.

    Pool Skip runs in a forward hook on the conv, so nothing may fold a BatchNorm into a converted conv
    (``torch.ao.quantization.fuse_modules``, ``torch.nn.utils.fusion.fuse_conv_bn_eval``): the folded
    copy keeps the hook, and Pool Skip would run after the BN instead of before it. A bias-free conv
    that gained a bias so raises a RuntimeError when called; a conv that had a bias cannot be told
    apart and gives wrong outputs silently. Keep the BNs of a converted model unfused (fold them, if at
    all, in the plain model before ``convert``: Pool Skip then follows the folded BN, another model).

    ``pool_skip_kwargs`` go to :class:`PoolSkip` (``kernel_size``, ``bias``, ``variant``, ``zero_init``,
    ``groups``; ``groups="depthwise"`` gives every inner conv one filter per channel, whatever its width).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert expects an nn.Module, got {type(model).__name__}")
    types = _CONVS + (_TRANSPOSED if transposed else ())
    chosen = get_policy(policy) if policy is not None else None
    policy_sizes = chosen.select(model) if chosen is not None else None
    kwargs = {**(chosen.kwargs if chosen is not None else {}), **pool_skip_kwargs}
    for bad in ("channels", "dim", "pool_size"):
        if bad in kwargs:
            raise TypeError(f"convert sets PoolSkip's {bad!r} itself; got it in the keyword arguments")
    inc, exc = _patterns(include), _patterns(exclude)

    report = ConvertReport()
    todo: list[tuple[str, nn.Module, tuple[int, ...]]] = []
    inner = {id(m) for ps in model.modules() if isinstance(ps, PoolSkip) for m in ps.modules()}
    explicit = _explicit_pool_skips(model)
    followed = _places_in_sequences(model, explicit)
    counts = [0, 0, 0]  # convs of the types, of those the policy's, of those the filters'
    unselected_transposed: list[str] = []  # asked for with transposed=True, but the policy selects them not
    policy_takes_transposed = False
    for name, module in model.named_modules():
        if not isinstance(module, types) or id(module) in inner:  # never Pool Skip's own conv
            continue
        counts[0] += 1
        if policy_sizes is not None and policy_sizes.get(name) is None:
            if isinstance(module, _TRANSPOSED):
                unselected_transposed.append(name)
            continue  # not part of the policy: not a Pool Skip site, not worth a line in the report
        counts[1] += 1
        policy_takes_transposed |= isinstance(module, _TRANSPOSED)
        if inc is not None and not _matches(name, inc):
            continue
        if exc is not None and _matches(name, exc):
            continue
        if where is not None and not where(name, module):
            continue
        counts[2] += 1
        if is_converted(module):
            report.skipped.append((name, _ALREADY_CONVERTED))
            continue
        if id(module) in followed:
            report.skipped.append((name, f"{_FOLLOWED_BY} {followed[id(module)]!r}"))
            continue
        size = pool_size(name, module) if callable(pool_size) else pool_size
        if size is None and not callable(pool_size):
            size = policy_sizes[name] if policy_sizes is not None else 2
        if size is None:
            report.skipped.append((name, "pool_size function returned None"))
            continue
        dim = module.weight.dim() - 2
        todo.append((name, module, to_tuple(size, dim, f"pool_size for {name!r}")))

    if example_input is not None and todo:
        shapes, feeds = _example_pass(model, [n for n, _, _ in todo], example_input, explicit)
        kept = []
        for name, module, size in todo:
            shape = shapes.get(name)
            if name in feeds:
                report.skipped.append((name, f"{_FOLLOWED_BY} {feeds[name]!r}"))
            elif shape is None:
                report.skipped.append((name, "not called by a forward pass of example_input"))
            elif any(s < e for s, e in zip(shape[2:], size)):
                report.skipped.append((name, f"output size {tuple(shape[2:])} smaller than pool size {size}"))
            else:
                kept.append((name, module, size))
        todo = kept

    if unselected_transposed and not policy_takes_transposed:
        why = f"transposed conv not selected by policy {chosen.name!r}"
        report.skipped += [(name, why) for name in unselected_transposed]
        warnings.warn(
            f"convert: transposed=True, but placement policy {chosen.name!r} selects none of {type(model).__name__}'s "
            f"{len(unselected_transposed)} transposed conv(s) ({', '.join(map(repr, unselected_transposed[:3]))}"
            f"{', ...' if len(unselected_transposed) > 3 else ''}): they get no Pool Skip. Convert without a policy "
            "(include=/exclude=/where= then choose among all convs) or with one that selects them",
            stacklevel=2,
        )
    untied = sorted(set(explicit) - set(followed.values()))  # PoolSkips whose input no Sequential tells
    if example_input is None and todo and untied:
        warnings.warn(
            f"convert: {type(model).__name__} already holds PoolSkip module(s) {', '.join(map(repr, untied))} "
            "whose input it cannot tell without a forward pass; a conv whose output goes into one of them gets a "
            "second Pool Skip. "
            "Pass example_input= (convert then leaves such convs out) or leave them out with exclude=",
            stacklevel=2,
        )
    for name, module, size in todo:
        dim = module.weight.dim() - 2
        channels = module.out_channels
        ps = PoolSkip(channels, size, dim=dim, device=module.weight.device, dtype=module.weight.dtype, **kwargs)
        setattr(ps, _HOST_HAD_BIAS, module.bias is not None)  # see _apply_pool_skip
        module.add_module(CHILD, ps)
        module.register_forward_hook(_apply_pool_skip)
        prefix = f"{name}.{CHILD}." if name else f"{CHILD}."
        report.new_keys += [prefix + k for k in ps.state_dict()]
        report.converted.append(
            Placement(name, type(module).__name__, channels, size, sum(p.numel() for p in ps.parameters()))
        )
    if not report.converted:
        report.reason = _why_none(model, counts, chosen, transposed, report.skipped)
        if not report.skipped or not all(_already_has_pool_skip(why) for _, why in report.skipped):
            warnings.warn(f"convert: {type(model).__name__} got no Pool Skip: {report.reason}", stacklevel=2)
    return report


def _why_none(model: nn.Module, counts: list[int], policy: Policy | None, transposed: bool, skipped) -> str:
    """Which selection step of :func:`convert` left no conv, in words."""
    n_type, n_policy, n_selected = counts
    if n_type == 0:
        has_transposed = any(isinstance(m, _TRANSPOSED) for m in model.modules())
        if has_transposed and not transposed:
            return "it has transposed convs only (pass transposed=True to convert those)"
        return "it has no Conv1d/Conv2d/Conv3d"
    if n_policy == 0:
        return (
            f"placement policy {policy.name!r} selects none of its {n_type} convs ({policy.description}); "
            "try policy='every_conv' or name the convs with include="
        )
    if n_selected == 0:
        of = f"the {n_policy} conv(s) policy {policy.name!r} selects" if policy else f"its {n_policy} conv(s)"
        return f"include/exclude/where leave none of {of}"
    whys = sorted({why for _, why in skipped})
    return f"all {n_selected} selected conv(s) were left out ({'; '.join(whys)})"


def unconvert(model: nn.Module) -> int:
    """Remove every Pool Skip that :func:`convert` inserted in ``model``; returns how many."""
    count = 0
    for module in model.modules():
        if is_converted(module):
            for key in [k for k, fn in module._forward_hooks.items() if fn is _apply_pool_skip]:
                del module._forward_hooks[key]
            delattr(module, CHILD)
            count += 1
    return count


def load_plain_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Load a checkpoint of the unconverted model into a converted one.

    Strict for every original key (a missing or unexpected one raises, as ``strict=True`` does); the
    Pool Skip keys, which the plain checkpoint cannot have, keep their current values. Returns those keys.
    """
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    new = [k for k in missing if f".{CHILD}." in f".{k}"]
    really_missing = [k for k in missing if k not in new]
    if really_missing or unexpected:
        raise RuntimeError(
            "state_dict does not match the model outside Pool Skip: "
            f"missing keys {really_missing}, unexpected keys {list(unexpected)}"
        )
    return new
