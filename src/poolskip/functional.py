"""The operations inside Pool Skip, as functions of tensors.

``max_pool_unpool(y, e)`` is ``MaxUnpool_e(MaxPool_e(y))``: the maximum of every e-sized block kept in
place, zeros elsewhere, output the size of the input. Blocks at a ragged edge (a size not divisible
by e) are real, smaller pooling windows (ceil-mode pooling), so every spatial size >= 1 works.
Ties keep the first maximum in row-major order within the block, as PyTorch's max-pool does.

``pool_unpool_conv(y, weight, bias, e)`` is ``Conv(MaxUnpool_e(MaxPool_e(y)))`` with "same" padding.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["max_pool_unpool", "pool_unpool_conv", "same_padding", "to_tuple"]

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def to_tuple(value: int | Sequence[int], dim: int, what: str) -> tuple[int, ...]:
    """``value`` as a ``dim``-tuple of ints; a ValueError naming ``what`` if it cannot be one."""
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an int or a tuple of {dim} ints, got {value!r}")
    if isinstance(value, int):
        return (value,) * dim
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise ValueError(f"{what} must be an int or a tuple of {dim} ints, got {value!r}") from None
    if len(out) != dim or any(o != v for o, v in zip(out, value)):
        raise ValueError(f"{what} must be an int or a tuple of {dim} ints, got {value!r}")
    return out


def same_padding(kernel_size: Sequence[int]) -> tuple[int, ...]:
    """Padding that keeps the spatial size of a stride-1 convolution with odd ``kernel_size``."""
    return tuple(k // 2 for k in kernel_size)


def max_pool_unpool(y: Tensor, pool_size: int | Sequence[int]) -> Tensor:
    """``MaxUnpool(MaxPool(y))`` over the trailing spatial dims of ``y`` (N, C, *spatial)."""
    dim = y.dim() - 2
    if dim not in _MAX_POOL:
        raise ValueError(f"expected an input of shape (N, C, *spatial) with 1-3 spatial dims, got {tuple(y.shape)}")
    e = to_tuple(pool_size, dim, "pool_size")
    if all(k == 1 for k in e):
        return y
    pooled, indices = _MAX_POOL[dim](y, e, e, 0, 1, True, True)  # ceil_mode=True, return_indices=True
    # MaxUnpool as a scatter of the maxima to their flat per-plane indices (unique: blocks are disjoint)
    # (written with shape-generic ops so that torch.jit.trace keeps the spatial size symbolic)
    flat = torch.zeros_like(y, memory_format=torch.contiguous_format).flatten(2)
    return flat.scatter(2, indices.flatten(2), pooled.flatten(2)).view_as(y)


def pool_unpool_conv(y: Tensor, weight: Tensor, bias: Tensor | None, pool_size: int | Sequence[int]) -> Tensor:
    """``Conv(MaxUnpool(MaxPool(y)))``: a stride-1 convolution with "same" padding of the block maxima."""
    dim = y.dim() - 2
    padding = same_padding(weight.shape[2:])
    return _CONV[dim](max_pool_unpool(y, pool_size), weight, bias, 1, padding)
