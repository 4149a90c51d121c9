"""Pool Skip (Sun et al., AAAI 2025): ``O = Y + Conv_k(MaxUnpool_e(MaxPool_e(Y)))``.

Placed right after a convolution and before its BN/activation, Pool Skip adds back a convolution of
the block maxima of the conv's output. ``variant`` selects the ablations of the paper's Table 4;
``groups`` makes the inner convolution grouped (``groups="depthwise"``, i.e. C groups, is a cheap Pool
Skip with C * k^d instead of C^2 * k^d weights, a cost control that none of the paper's variants tries).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .functional import max_pool_unpool, pool_unpool_conv, same_padding, to_tuple

__all__ = ["PoolSkip", "PoolSkip1d", "PoolSkip2d", "PoolSkip3d", "VARIANTS"]

#: The paper's Table 4 variants: which of {pool, conv, skip} each keeps.
VARIANTS = {
    "full": "O = Y + Conv(Unpool(Pool(Y)))",
    "pool_skip": "O = Y + Unpool(Pool(Y))",
    "conv_skip": "O = Y + Conv(Y)",
    "pool_conv": "O = Conv(Unpool(Pool(Y)))",
}

_CONV_CLASSES = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_SPATIAL_NAMES = {1: "L", 2: "H, W", 3: "D, H, W"}


class PoolSkip(nn.Module):
    """Pool Skip over ``dim`` spatial dims: ``O = Y + Conv_k(MaxUnpool_e(MaxPool_e(Y)))``.

    Args:
        channels: channels C of Y (the host convolution's ``out_channels``); the inner conv is C -> C.
        pool_size: e, an int or a per-dimension tuple; 1 means ``O = Y + Conv(Y)``. Blocks at a ragged
            edge are real (smaller) pooling windows, so the output always has the input's shape.
        dim: number of spatial dims, 1, 2 or 3.
        kernel_size: k of the inner conv, odd (int or tuple); stride 1, "same" zero padding.
        bias: whether the inner conv has a bias (the official code: True).
        variant: one of ``VARIANTS`` ("full", "pool_skip", "conv_skip", "pool_conv").
        groups: groups of the inner conv, a divisor of ``channels`` (1: the paper's dense C -> C conv);
            ``"depthwise"`` means ``channels`` (one k^d filter per channel). Not for "pool_skip" (no conv).
        zero_init: start as the identity (inner conv weights and bias zero), e.g. to fine-tune a
            pretrained model; PyTorch's default initialisation otherwise, as in the official code.

    Attributes:
        conv: the inner ``nn.Conv{dim}d`` (``None`` for the "pool_skip" variant, which has none).
    """

    def __init__(
        self,
        channels: int,
        pool_size: int | Sequence[int] = 2,
        dim: int = 2,
        kernel_size: int | Sequence[int] = 3,
        bias: bool = True,
        variant: str = "full",
        zero_init: bool = False,
        groups: int | str = 1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if dim not in _CONV_CLASSES:
            raise ValueError(f"dim must be 1, 2 or 3 (spatial dims), got {dim!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        pool = to_tuple(pool_size, dim, "pool_size")
        if any(p < 1 for p in pool):
            raise ValueError(f"pool_size must be >= 1 in every dim, got {pool_size!r}")
        kernel = to_tuple(kernel_size, dim, "kernel_size")
        if any(k < 1 or k % 2 == 0 for k in kernel):
            raise ValueError(f"kernel_size must be odd and positive (for 'same' padding), got {kernel_size!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
        if zero_init and variant == "pool_conv":
            raise ValueError("zero_init=True with variant='pool_conv' would output zeros: that variant has no skip")
        if zero_init and variant == "pool_skip":
            raise ValueError("zero_init=True with variant='pool_skip' cannot start as the identity: that variant has "
                             "no conv to zero (it outputs Y + MaxUnpool(MaxPool(Y)))")  # fmt: skip
        groups = _resolve_groups(groups, channels)
        if groups != 1 and variant == "pool_skip":
            raise ValueError(f"groups={groups} has no effect with variant='pool_skip', which has no conv; use groups=1")

        self.channels = channels
        self.pool_size = pool
        self.dim = dim
        self.kernel_size = kernel
        self.variant = variant
        self.groups = groups
        self.pools = variant != "conv_skip" and any(p > 1 for p in pool)
        self.skip = variant != "pool_conv"
        self.conv: nn.Module | None = None
        if variant != "pool_skip":
            self.conv = _CONV_CLASSES[dim](
                channels,
                channels,
                kernel,
                stride=1,
                padding=same_padding(kernel),
                groups=groups,
                bias=bias,
                device=device,
                dtype=dtype,
            )
            if zero_init:
                nn.init.zeros_(self.conv.weight)
                if self.conv.bias is not None:
                    nn.init.zeros_(self.conv.bias)

    def forward(self, y: Tensor) -> Tensor:
        if y.dim() != self.dim + 2:
            raise ValueError(
                f"{type(self).__name__} with dim={self.dim} expects a {self.dim + 2}-D input "
                f"(N, C, {_SPATIAL_NAMES[self.dim]}), got shape {tuple(y.shape)}"
            )
        if y.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__} expects {self.channels} channels, got shape {tuple(y.shape)}")
        if self.conv is None:
            z = max_pool_unpool(y, self.pool_size)
        elif self.pools:
            z = pool_unpool_conv(y, self.conv.weight, self.conv.bias, self.pool_size, self.groups)
        else:
            z = self.conv(y)
        return y + z if self.skip else z

    def extra_repr(self) -> str:
        s = f"{self.channels}, pool_size={self.pool_size}, dim={self.dim}"
        if self.variant != "full":
            s += f", variant={self.variant!r}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s


def _resolve_groups(groups: int | str, channels: int) -> int:
    """``groups`` as an int: ``"depthwise"`` is ``channels``; a ValueError naming given and expected otherwise."""
    if groups == "depthwise":
        return channels
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be a positive int dividing channels={channels} or 'depthwise', got {groups!r}")
    if channels % groups:
        divisors = [d for d in range(1, channels + 1) if channels % d == 0]
        shown = ", ".join(map(str, divisors[:8])) + (", ..." if len(divisors) > 8 else "")
        raise ValueError(
            f"groups must divide channels: got groups={groups} for channels={channels} "
            f"(expected one of {shown}, or 'depthwise' for {channels})"
        )
    return groups


class PoolSkip1d(PoolSkip):
    """:class:`PoolSkip` over one spatial dim (N, C, L)."""

    def __init__(self, channels: int, pool_size: int | Sequence[int] = 2, **kwargs) -> None:
        super().__init__(channels, pool_size, dim=1, **kwargs)


class PoolSkip2d(PoolSkip):
    """:class:`PoolSkip` over two spatial dims (N, C, H, W)."""

    def __init__(self, channels: int, pool_size: int | Sequence[int] = 2, **kwargs) -> None:
        super().__init__(channels, pool_size, dim=2, **kwargs)


class PoolSkip3d(PoolSkip):
    """:class:`PoolSkip` over three spatial dims (N, C, D, H, W)."""

    def __init__(self, channels: int, pool_size: int | Sequence[int] = 2, **kwargs) -> None:
        super().__init__(channels, pool_size, dim=3, **kwargs)
