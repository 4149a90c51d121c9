"""Probe a model for elimination singularities: weight sparsity, dead units and gradient flow per layer.

One probe pass (forward + backward over a fixed probe set, in ``eval()`` mode) records, in forward
(output-direction) order as the hooks see the calls, not in registration order:

- every conv / linear layer: weight l2/l1, Hoyer sparsity, near-zero fraction (whole layer and per
  output channel, see :mod:`.measures`) and the norm of the loss gradient w.r.t. its weight;
- every call of a ReLU-like module, and every Pool Skip output (what feeds the host conv's BN/ReLU):
  dead units (output <= 0 for every sample of the probe set) and the fraction of outputs <= 0. Where a
  BN follows, a Pool Skip output's sign is the sign before normalisation; the ReLU sites after it give
  the dying-ReLU picture, and only they enter :meth:`Diagnosis.summary` and the dead-unit plot.

Pool Skip's inner conv is its own row (kind ``"pool_skip_conv"``, ``host`` = the converted conv), so the
other rows of a converted model line up one to one with those of its plain model
(:meth:`Diagnosis.plain_layers`).
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..convert import CHILD
from ..module import PoolSkip
from .measures import NEAR_ZERO_TOL, channel_measures, hoyer, l2_l1, near_zero, output_channel_view

__all__ = [
    "ACTIVATION_TYPES",
    "WEIGHT_TYPES",
    "ActivationStats",
    "Diagnosis",
    "LayerStats",
    "ProbeMonitor",
    "diagnose",
    "probe_measures",
    "unwrap",
]

#: Layers whose weights are measured.
WEIGHT_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    nn.Linear,
)

#: ReLU-like modules whose outputs are watched for dead units: rectifiers whose output is <= 0 exactly
#: when their input is (so "output <= 0" reads as "the unit is off").
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.RReLU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
)


@dataclass
class LayerStats:
    """Weight and gradient measures of one conv/linear layer.

    ``index`` is the layer's position among the layers a plain model has too (Pool Skip's inner convs
    excluded; for those it is their host's index); ``grad_norm`` is ``||dL/dW||_2`` for the mean probe
    loss (None without targets, for a frozen weight, or where no target counts: loss weight 0).
    """

    name: str
    kind: str  # "conv", "linear" or "pool_skip_conv"
    type: str
    order: int  # forward event number (the sort key shared with activation sites)
    index: int
    host: str | None
    params: int
    shape: tuple[int, ...]
    l2_l1: float
    hoyer: float
    near_zero: float
    grad_norm: float | None
    called: bool
    channel_l2_l1: list[float] = field(repr=False)
    channel_hoyer: list[float] = field(repr=False)
    channel_near_zero: list[float] = field(repr=False)


@dataclass
class ActivationStats:
    """Dead units of one activation site (a module call; a module called twice is two sites).

    A unit is one element of a sample's output (e.g. one ``(c, h, w)``); it is dead if it is <= 0 for
    every probe sample. A channel (dim 1) is dead if all its units are. ``zero_fraction`` is the mean
    fraction of outputs <= 0 (exactly zero after a ReLU): the dying-ReLU measure.
    """

    name: str  # module name, with ":k" for its k-th call (k >= 2) within one forward pass
    kind: str  # "activation" or "pool_skip_output"
    type: str
    order: int  # forward event number (the sort key shared with layers)
    index: int  # forward index of the last plain layer entered before this site (-1: none)
    module: str
    call: int
    units: int
    channels: int
    dead_units: float
    dead_channels: float
    zero_fraction: float
    channel_zero_fraction: list[float] = field(repr=False)
    channel_dead: list[bool] = field(repr=False)


@dataclass
class Diagnosis:
    """Everything one probe pass measured; rows in forward (output-direction) order."""

    layers: list[LayerStats]
    activations: list[ActivationStats]
    probe_size: int
    loss: float | None
    near_zero_tol: float

    def plain_layers(self) -> list[LayerStats]:
        """The conv/linear layers a plain model has too (Pool Skip's inner convs left out), in order."""
        return [s for s in self.layers if s.kind != "pool_skip_conv"]

    def pool_skip_layers(self) -> list[LayerStats]:
        """Pool Skip's inner convs, in order."""
        return [s for s in self.layers if s.kind == "pool_skip_conv"]

    def activation_sites(self, pool_skip: bool = False) -> list[ActivationStats]:
        """ReLU-like activation sites in order (plus Pool Skip outputs if ``pool_skip``)."""
        return [a for a in self.activations if pool_skip or a.kind == "activation"]

    def summary(self) -> dict[str, float]:
        """Flat scalar measures for logs: aggregates over layers and sites.

        Weight aggregates are over :meth:`plain_layers` (``pool_skip_l2_l1_mean`` covers the inner
        convs); ``l2_l1_argmax`` is the forward index of the layer with the highest l2/l1; dead-unit
        aggregates are over ReLU-like sites. NaN-free except where nothing was measured.
        """
        out: dict[str, float] = {"probe_size": float(self.probe_size)}
        plain = [s for s in self.plain_layers() if s.called]
        if plain:
            ratios = [s.l2_l1 for s in plain]
            top = max(range(len(ratios)), key=ratios.__getitem__)
            out["l2_l1_max"] = ratios[top]
            out["l2_l1_argmax"] = float(plain[top].index)
            out["l2_l1_mean"] = statistics.fmean(ratios)
            hoyers = [s.hoyer for s in plain if not math.isnan(s.hoyer)]
            if hoyers:
                out["hoyer_mean"] = statistics.fmean(hoyers)
                out["hoyer_max"] = max(hoyers)
            out["near_zero_mean"] = statistics.fmean(s.near_zero for s in plain)
            out["near_zero_max"] = max(s.near_zero for s in plain)
        inner = self.pool_skip_layers()
        if inner:
            out["pool_skip_l2_l1_mean"] = statistics.fmean(s.l2_l1 for s in inner)
        sites = self.activation_sites()
        if sites:
            out["dead_units_mean"] = statistics.fmean(a.dead_units for a in sites)
            out["dead_units_max"] = max(a.dead_units for a in sites)
            out["dead_channels_mean"] = statistics.fmean(a.dead_channels for a in sites)
            out["zero_fraction_mean"] = statistics.fmean(a.zero_fraction for a in sites)
        grads = [s.grad_norm for s in plain if s.grad_norm is not None]
        if grads:
            out["grad_norm_min"] = min(grads)
            out["grad_norm_median"] = statistics.median(grads)
            out["grad_norm_max"] = max(grads)
        if self.loss is not None:
            out["probe_loss"] = self.loss
        return out

    def rows(self) -> list[dict[str, object]]:
        """One flat dict per layer and per activation site, in forward order (CSV rows)."""
        out: list[dict[str, object]] = []
        for s in self.layers:
            d = {k: v for k, v in asdict(s).items() if not k.startswith("channel_")}
            d["shape"] = "x".join(map(str, s.shape))
            out.append(d)
        for a in self.activations:
            out.append({k: v for k, v in asdict(a).items() if not k.startswith("channel_")})
        out.sort(key=lambda d: d["order"])
        return out

    def channel_rows(self) -> list[dict[str, object]]:
        """One dict per (layer or site, output channel): the per-channel measures (CSV rows)."""
        out: list[dict[str, object]] = []
        for s in self.layers:
            for c, (r, h, z) in enumerate(zip(s.channel_l2_l1, s.channel_hoyer, s.channel_near_zero)):
                out.append({"name": s.name, "kind": s.kind, "channel": c, "l2_l1": r, "hoyer": h, "near_zero": z})
        for a in self.activations:
            for c, (z, dead) in enumerate(zip(a.channel_zero_fraction, a.channel_dead)):
                out.append({"name": a.name, "kind": a.kind, "channel": c, "zero_fraction": z, "dead": dead})
        return out


class _SiteAccumulator:
    """Running dead-unit counts of one activation site over the probe batches."""

    def __init__(self) -> None:
        self.alive: Tensor | None = None  # per unit: > 0 for some sample
        self.nonpos_per_channel: Tensor | None = None
        self.count_per_channel = 0

    def add(self, out: Tensor, where: str) -> None:
        out = out.detach()
        nonpos = out <= 0
        alive = (~nonpos).any(0)
        if self.alive is None:
            self.alive = alive
            self.nonpos_per_channel = torch.zeros(out.shape[1] if out.dim() > 1 else 1, dtype=torch.float64)
        elif self.alive.shape != alive.shape:
            raise ValueError(
                f"the output of {where} changed shape between probe batches "
                f"({tuple(self.alive.shape)} -> {tuple(alive.shape)}); probe inputs must share one shape"
            )
        else:
            self.alive |= alive
        if out.dim() > 1:
            dims = [0] + list(range(2, out.dim()))
            self.nonpos_per_channel += nonpos.sum(dims).double().cpu()
            self.count_per_channel += out.numel() // out.shape[1]
        else:
            self.nonpos_per_channel += nonpos.sum().double().cpu()
            self.count_per_channel += out.numel()


def _default_loss(output: Tensor, targets: Tensor) -> Tensor:
    return F.cross_entropy(output, targets)


def _main_output(output):
    """The prediction tensor of a model's output: a tensor, ``output["out"]``, or the first element."""
    if isinstance(output, dict):
        return output["out"] if "out" in output else next(iter(output.values()))
    if isinstance(output, (tuple, list)):
        return output[0]
    return output


def _batches(x: Tensor, y: Tensor | None, batch_size: int | None):
    n = len(x)
    step = n if not batch_size or batch_size >= n else batch_size
    for i in range(0, n, step):
        yield x[i : i + step], (y[i : i + step] if y is not None else None)


def diagnose(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor | None = None,
    *,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
    loss_weight: Callable[[Tensor], float | Tensor] | None = None,
    batch_size: int | None = None,
    near_zero_tol: float = NEAR_ZERO_TOL,
    activation_types: Sequence[type[nn.Module]] = ACTIVATION_TYPES,
) -> Diagnosis:
    """Probe ``model`` with ``inputs`` (a tensor of N samples) and measure every layer; see the module doc.

    Wrappers (``torch.compile``, DDP) are looked through (:func:`unwrap`). The model runs in ``eval()``
    mode (BN running statistics untouched, no dropout, no random numbers drawn) and every module's
    training flag is restored afterwards; parameters' ``.grad`` are not touched (gradients are taken
    with ``torch.autograd.grad``). ``targets`` enable the gradient norms: the loss is
    ``loss_fn(output, targets)`` (default cross-entropy, which also fits (N, C, H, W) segmentation
    logits), averaged over the probe set. ``batch_size`` splits the probe set to bound memory; all
    batches count as one probe set: each batch's mean loss is weighted by ``loss_weight(targets)``, what
    that mean is over (default: the batch's number of samples; for a mean over the pixels that are not
    ignored, their count), so loss and gradients are those of the whole probe set at any ``batch_size``.
    A batch of weight 0 (only ignored pixels) adds nothing; a probe set of weight 0 has loss NaN and no
    gradient norms. A model output that is a dict uses ``["out"]``, a tuple its first item.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"diagnose expects an nn.Module, got {type(model).__name__}")
    model = unwrap(model)
    if not isinstance(inputs, Tensor) or inputs.dim() < 1 or len(inputs) == 0:
        raise ValueError("inputs must be a non-empty tensor of probe samples (N, ...)")
    if targets is not None and len(targets) != len(inputs):
        raise ValueError(f"targets has {len(targets)} samples but inputs has {len(inputs)}")
    loss_fn = loss_fn or _default_loss
    weigh = loss_weight or len  # default: a mean per sample
    act_types = tuple(activation_types)

    names = {id(m): n for n, m in model.named_modules()}
    pool_skips = {n: m for n, m in model.named_modules() if isinstance(m, PoolSkip)}
    inner = {id(c) for ps in pool_skips.values() for c in ps.modules() if c is not ps}
    weight_layers = {
        n: m for n, m in model.named_modules() if isinstance(m, WEIGHT_TYPES) and id(m) not in inner and n != ""
    }
    if isinstance(model, WEIGHT_TYPES):
        weight_layers[""] = model
    # Pool Skip's inner conv: its own row, reached when the Pool Skip module runs (its conv's own
    # forward is not called on the pooling path, which uses the weight functionally).
    inner_convs = {n: ps.conv for n, ps in pool_skips.items() if ps.conv is not None}

    order: dict[str, int] = {}  # layer row / site name -> first event number
    seq = [0]
    calls: dict[int, int] = {}
    sites: dict[str, tuple[str, str, str, int, _SiteAccumulator]] = {}

    def event(key: str) -> None:
        if key not in order:
            order[key] = seq[0]
            seq[0] += 1

    def layer_pre(module, args):
        event("L:" + names[id(module)])

    def pool_skip_pre(module, args):
        if module.conv is not None:
            event("L:" + _inner_name(names[id(module)]))

    def site_post(kind):
        def hook(module, args, output):
            if not isinstance(output, Tensor):
                return
            mname = names[id(module)]
            k = calls.get(id(module), 0) + 1
            calls[id(module)] = k
            site = mname if k == 1 else f"{mname}:{k}"
            event("A:" + site)
            if site not in sites:
                sites[site] = (kind, type(module).__name__, mname, k, _SiteAccumulator())
            sites[site][4].add(output, site)

        return hook

    handles = []
    for m in weight_layers.values():
        handles.append(m.register_forward_pre_hook(layer_pre))
    for ps in pool_skips.values():
        handles.append(ps.register_forward_pre_hook(pool_skip_pre))
        handles.append(ps.register_forward_hook(site_post("pool_skip_output")))
    for m in model.modules():
        if isinstance(m, act_types) and id(m) not in inner:
            handles.append(m.register_forward_hook(site_post("activation")))

    measured = {**weight_layers, **{_inner_name(n): c for n, c in inner_convs.items()}}
    grad_params = {n: m.weight for n, m in measured.items() if isinstance(m.weight, Tensor) and m.weight.requires_grad}
    grads: dict[str, Tensor] = {}
    total_loss = 0.0
    device = next((p.device for p in model.parameters()), inputs.device)
    modes = {m: m.training for m in model.modules()}
    n_total = len(inputs)
    # each batch's mean loss weighs what it is a mean over, so the sum is the probe set's mean loss
    weights = [float(weigh(yb)) for _, yb in _batches(inputs, targets, batch_size)] if targets is not None else []
    total_weight = sum(weights)
    try:
        model.eval()
        for b, (xb, yb) in enumerate(_batches(inputs, targets, batch_size)):
            calls.clear()
            xb = xb.to(device)
            counts = yb is not None and weights[b] > 0  # a batch of only ignored targets: no loss, no NaN
            want_grad = counts and bool(grad_params)
            with torch.set_grad_enabled(want_grad):
                out = _main_output(model(xb))
                if not counts:
                    continue
                loss = loss_fn(out, yb.to(device)) * (weights[b] / total_weight)
                total_loss += float(loss.detach())
            if want_grad and loss.requires_grad:
                keys = list(grad_params)
                gs = torch.autograd.grad(loss, [grad_params[k] for k in keys], allow_unused=True)
                for k, g in zip(keys, gs):
                    if g is not None:
                        grads[k] = grads[k] + g if k in grads else g.detach().clone()
                    elif k not in grads:
                        grads[k] = torch.zeros_like(grad_params[k])
    finally:
        for h in handles:
            h.remove()
        for m, flag in modes.items():
            m.training = flag

    plain_rank: dict[str, int] = {}
    for key in sorted((k for k in order if k.startswith("L:")), key=order.__getitem__):
        name = key[2:]
        if name in weight_layers:
            plain_rank[name] = len(plain_rank)
    for name in weight_layers:  # never called: after the called ones, in registration order
        if name not in plain_rank:
            plain_rank[name] = len(plain_rank)

    layers: list[LayerStats] = []
    for name, m in measured.items():
        host = None
        if name in weight_layers:
            kind = "linear" if isinstance(m, nn.Linear) else "conv"
            index = plain_rank[name]
        else:
            kind = "pool_skip_conv"
            ps_name = name[: -len(".conv")] if name.endswith(".conv") else ""
            parent = ps_name.rpartition(".")[0]
            host = parent if ps_name.rpartition(".")[2] == CHILD and parent in weight_layers else None
            index = plain_rank[host] if host is not None else -1
        w = m.weight.detach()
        ch = channel_measures(output_channel_view(m, w), near_zero_tol)
        g = grads.get(name)
        called = ("L:" + name) in order
        layers.append(
            LayerStats(
                name=name,
                kind=kind,
                type=type(m).__name__,
                order=order["L:" + name] if called else seq[0] + len(layers),
                index=index,
                host=host,
                params=w.numel(),
                shape=tuple(w.shape),
                l2_l1=l2_l1(w),
                hoyer=hoyer(w),
                near_zero=near_zero(w, near_zero_tol),
                grad_norm=float(g.double().norm()) if g is not None else None,
                called=called,
                channel_l2_l1=ch["l2_l1"],
                channel_hoyer=ch["hoyer"],
                channel_near_zero=ch["near_zero"],
            )
        )
    layers.sort(key=lambda s: s.order)

    # each site's index: the plain layer entered last before it
    entered = [(s.order, s.index) for s in layers if s.called and s.kind != "pool_skip_conv"]
    entered_at = [e for e, _ in entered]
    acts: list[ActivationStats] = []
    for key in sorted((k for k in order if k.startswith("A:")), key=order.__getitem__):
        site = key[2:]
        kind, typ, mname, k, acc = sites[site]
        alive = acc.alive
        per_channel_alive = alive.reshape(alive.shape[0], -1).any(1) if alive.dim() >= 1 else alive.reshape(1)
        nonpos = acc.nonpos_per_channel
        before = bisect.bisect_left(entered_at, order[key])
        acts.append(
            ActivationStats(
                name=site,
                kind=kind,
                type=typ,
                order=order[key],
                index=entered[before - 1][1] if before else -1,
                module=mname,
                call=k,
                units=alive.numel(),
                channels=per_channel_alive.numel(),
                dead_units=float((~alive).double().mean()),
                dead_channels=float((~per_channel_alive).double().mean()),
                zero_fraction=float(nonpos.sum()) / (acc.count_per_channel * len(nonpos)),
                channel_zero_fraction=(nonpos / acc.count_per_channel).tolist(),
                channel_dead=(~per_channel_alive).tolist(),
            )
        )

    return Diagnosis(
        layers=layers,
        activations=acts,
        probe_size=n_total,
        loss=None if targets is None else total_loss if total_weight > 0 else math.nan,
        near_zero_tol=near_zero_tol,
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside ``torch.compile`` (``_orig_mod``) and DDP / DataParallel (``module``) wrappers,
    so layer names are the model's own."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        else:
            return model


def _inner_name(pool_skip_name: str) -> str:
    return f"{pool_skip_name}.conv" if pool_skip_name else "conv"


def probe_measures(
    model: nn.Module,
    probe_inputs: Tensor,
    probe_targets: Tensor | None = None,
    **kwargs,
) -> dict[str, float]:
    """Flat scalar diagnostics of ``model`` on one fixed probe batch, for a training log.

    ``diagnose(model, probe_inputs, probe_targets, **kwargs).summary()``: one forward and one backward
    pass in eval mode, no side effects on the model, its gradients, BN statistics or the random state.
    """
    return diagnose(model, probe_inputs, probe_targets, **kwargs).summary()


class ProbeMonitor:
    """A training-loop callback (:class:`poolskip.engine.Callback`): every ``every`` epochs,
    :func:`probe_measures` on the task's fixed probe batch with the task's own probe loss (and its
    ``probe_loss_weight``, if it has one), logged under
    ``diagnostics`` in the epoch's metrics record (and so in TensorBoard as ``diagnostics/...``)."""

    def __init__(self, every: int, probe_size: int = 64, seed: int = 0):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every, self.probe_size, self.seed = every, probe_size, seed
        self.inputs = self.targets = self.loss_fn = self.loss_weight = None

    def start(self, task, model: nn.Module) -> None:
        self.inputs, self.targets = task.probe_batch(self.probe_size, self.seed)
        self.loss_fn = task.probe_loss
        self.loss_weight = getattr(task, "probe_loss_weight", None)

    def on_epoch_end(self, epoch: int, model: nn.Module) -> dict[str, dict[str, float]] | None:
        if epoch % self.every:
            return None
        measures = probe_measures(model, self.inputs, self.targets, loss_fn=self.loss_fn, loss_weight=self.loss_weight)
        return {"diagnostics": {k: float(v) for k, v in measures.items()}}
