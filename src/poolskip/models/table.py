"""``poolskip models``: the registered networks with parameters and FLOPs, plain and with Pool Skip.

Models are built on the meta device (shapes only, no memory, no arithmetic), so even the billion-
parameter Pool Skip ResNet420 costs nothing. FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode``
over one forward pass of a 3x32x32 image in eval mode and reported as multiply-adds (its FLOP count / 2).
It counts convolutions and matrix products (conv, mm, addmm, bmm, attention); not BN, activations,
pooling, Pool Skip's max-pool/unpool scatter or additions. Pool Skip's inner conv is counted as the
dense conv it runs as, although its input is zero outside the block maxima.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..convert import is_converted
from ._registry import create_model, factory_parameters, resolve_pool_skip


@dataclass(frozen=True)
class ModelStats:
    """One row of the table: a model's parameters and multiply-adds, plain and with Pool Skip."""

    name: str
    params: int
    macs: int
    pool_skip_params: int
    pool_skip_macs: int
    placement: str


def _meta_model(name: str, num_classes: int, pool_skip: object) -> nn.Module:
    rgb = {"in_channels": 3} if "in_channels" in (factory_parameters(name) or []) else {}  # small_cnn: 1 by default
    with torch.device("meta"):
        return create_model(name, num_classes, pool_skip=pool_skip, **rgb).eval()


def params_and_macs(model: nn.Module, input_shape: tuple[int, ...] = (3, 32, 32)) -> tuple[int, int]:
    """Parameters and forward multiply-adds of a (meta-device) model on one ``input_shape`` sample."""
    params = sum(p.numel() for p in model.parameters())
    x = torch.empty(1, *input_shape, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return params, counter.get_total_flops() // 2


def count(name: str, num_classes: int = 10, pool_skip: object = None, image_size: int = 32) -> tuple[int, int]:
    """Parameters and forward multiply-adds per ``image_size`` RGB image of ``create_model(name, ...)``."""
    return params_and_macs(_meta_model(name, num_classes, pool_skip), (3, image_size, image_size))


def _placement(name: str, model: nn.Module) -> str:
    """The paper's placement in words: policy, number of convs with Pool Skip, pool sizes."""
    policy = resolve_pool_skip(name, True)["policy"]
    sizes = sorted({m.pool_skip.pool_size for m in model.modules() if is_converted(m)})
    pools = "/".join("x".join(map(str, s)) if len(set(s)) > 1 else str(s[0]) for s in sizes)
    n = sum(is_converted(m) for m in model.modules())
    return f"{policy if isinstance(policy, str) else policy.name}: {n} conv{'' if n == 1 else 's'}, pool {pools}"


def stats(names: list[str], num_classes: int = 10) -> list[ModelStats]:
    """:class:`ModelStats` of each model, Pool Skip as the paper placed it (``pool_skip=True``)."""
    rows = []
    for name in names:
        plain = count(name, num_classes)
        model = _meta_model(name, num_classes, True)
        ps = params_and_macs(model)
        rows.append(ModelStats(name, plain[0], plain[1], ps[0], ps[1], _placement(name, model)))
    return rows


HEADER = ("model", "params", "MACs", "Pool Skip params", "Pool Skip MACs", "paper's placement (pool_skip=True)")


def _cells(row: ModelStats) -> tuple[str, ...]:
    return (
        row.name,
        f"{row.params:,}",
        f"{row.macs / 1e9:.3f} G",
        f"{row.pool_skip_params:,}",
        f"{row.pool_skip_macs / 1e9:.3f} G",
        row.placement,
    )


def format_table(rows: list[ModelStats], markdown: bool = False) -> str:
    """The rows as an aligned text table, or a Markdown table (numbers right-aligned)."""
    cells = [HEADER] + [_cells(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    right = [False, True, True, True, True, False]

    def line(c: tuple[str, ...]) -> str:
        parts = [s.rjust(w) if r else s.ljust(w) for s, w, r in zip(c, widths, right)]
        return ("| " + " | ".join(parts) + " |") if markdown else "  ".join(parts).rstrip()

    out = [line(HEADER)]
    if markdown:
        out.append("|" + "|".join(("-" * (w + 1) + ":") if r else ("-" * (w + 2)) for w, r in zip(widths, right)) + "|")
    else:
        out.append("  ".join("-" * w for w in widths))
    out += [line(c) for c in cells[1:]]
    return "\n".join(out)
