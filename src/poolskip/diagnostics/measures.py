"""Sparsity measures of a weight tensor, for a whole layer and per output channel.

- ``l2_l1``: ``||w||_2 / ||w||_1``, the paper's Fig. 4 measure (after Hoyer 2004). For ``n`` weights it
  lies in ``[1/sqrt(n), 1]``: ``1/sqrt(n)`` when all magnitudes are equal, ``1`` when one weight is
  non-zero. Higher means the weight mass sits in fewer weights (more near-zero weights).
- ``hoyer``: Hoyer's normalised sparsity ``(sqrt(n) - l1/l2) / (sqrt(n) - 1)`` in ``[0, 1]``; unlike
  l2/l1 it does not depend on the layer size, so layers of different sizes compare.
- ``near_zero``: the fraction of weights with ``|w| <= tol * rms(W)``, where ``rms(W)`` is the root mean
  square of the *whole layer's* weight (the layer's scale) and ``tol`` defaults to ``0.01``. Per output
  channel the same layer threshold is used, so a channel that decayed as a whole shows up as near zero.

Conventions: an all-zero tensor has ``l2_l1 = hoyer = 1`` (as sparse as it gets, the limit of a single
non-zero weight) and ``near_zero = 1``; ``hoyer`` of a single weight (``n = 1``) is NaN (undefined).
All sums are taken in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = [
    "NEAR_ZERO_TOL",
    "channel_measures",
    "hoyer",
    "l2_l1",
    "near_zero",
    "near_zero_threshold",
    "output_channel_view",
]

#: Default relative threshold of ``near_zero``: a weight counts as near zero if ``|w| <= 0.01 * rms(W)``.
NEAR_ZERO_TOL = 1e-2

_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def _rows(w: Tensor) -> Tensor:
    """``w`` as float64 rows (one row per output channel); a 0-d or 1-d tensor is one row."""
    w = w.detach().to(torch.float64)
    return w.reshape(1, -1) if w.dim() <= 1 else w.reshape(w.shape[0], -1)


def _ratio_rows(rows: Tensor) -> Tensor:
    l1 = rows.abs().sum(1)
    l2 = rows.pow(2).sum(1).sqrt()
    return torch.where(l1 > 0, l2 / l1.clamp_min(torch.finfo(torch.float64).tiny), torch.ones_like(l1))


def _hoyer_rows(rows: Tensor) -> Tensor:
    n = rows.shape[1]
    if n == 1:
        return torch.full((rows.shape[0],), math.nan, dtype=torch.float64)
    root = math.sqrt(n)
    return (root - 1.0 / _ratio_rows(rows)) / (root - 1.0)


def l2_l1(w: Tensor) -> float:
    """``||w||_2 / ||w||_1`` over all elements of ``w`` (1.0 for an all-zero tensor)."""
    return float(_ratio_rows(w.detach().reshape(1, -1).to(torch.float64))[0])


def hoyer(w: Tensor) -> float:
    """Hoyer's normalised sparsity ``(sqrt(n) - l1/l2) / (sqrt(n) - 1)`` of all elements of ``w``."""
    return float(_hoyer_rows(w.detach().reshape(1, -1).to(torch.float64))[0])


def near_zero_threshold(w: Tensor, tol: float = NEAR_ZERO_TOL) -> float:
    """The near-zero threshold of a layer: ``tol * rms(w)``."""
    w = w.detach().to(torch.float64)
    return tol * float(w.pow(2).mean().sqrt()) if w.numel() else 0.0


def near_zero(w: Tensor, tol: float = NEAR_ZERO_TOL) -> float:
    """Fraction of elements with ``|w| <= tol * rms(w)``."""
    thr = near_zero_threshold(w, tol)
    return float((w.detach().to(torch.float64).abs() <= thr).double().mean())


def output_channel_view(module: nn.Module, weight: Tensor | None = None) -> Tensor:
    """The module's weight as ``(out_channels, -1)``: dim 0 for convs and linears; for transposed
    convs, whose weight is ``(in, out / groups, *k)``, the output channels are regrouped to dim 0."""
    w = module.weight if weight is None else weight
    if isinstance(module, _TRANSPOSED):
        g = module.groups
        cin, cout_g = w.shape[0], w.shape[1]
        w = w.reshape(g, cin // g, cout_g, -1).transpose(1, 2)  # (groups, out/groups, in/groups, k)
        return w.reshape(g * cout_g, -1)
    return w.reshape(w.shape[0], -1) if w.dim() > 1 else w.reshape(1, -1)


def channel_measures(rows: Tensor, tol: float = NEAR_ZERO_TOL) -> dict[str, list[float]]:
    """``l2_l1``, ``hoyer`` and ``near_zero`` of each row of ``rows`` (one row per output channel).

    The near-zero threshold is that of the whole tensor (the layer's scale), not of each row.
    """
    r = _rows(rows)
    thr = tol * float(r.pow(2).mean().sqrt()) if r.numel() else 0.0
    return {
        "l2_l1": _ratio_rows(r).tolist(),
        "hoyer": _hoyer_rows(r).tolist(),
        "near_zero": (r.abs() <= thr).double().mean(1).tolist(),
    }
