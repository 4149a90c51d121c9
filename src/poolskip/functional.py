"""The operations inside Pool Skip, as functions of tensors.

``max_pool_unpool(y, e)`` is ``MaxUnpool_e(MaxPool_e(y))``: the maximum of every e-sized block kept in
place, zeros elsewhere, output the size of the input. Blocks at a ragged edge (a size not divisible
by e) are real, smaller pooling windows (ceil-mode pooling), so every spatial size >= 1 works.
Ties keep the first maximum in row-major order within the block, as PyTorch's max-pool does.

``pool_unpool_conv(y, weight, bias, e, groups)`` is ``Conv(MaxUnpool_e(MaxPool_e(y)))`` with "same" padding
(a grouped convolution when ``groups > 1``; ``groups = C`` is depthwise),
computed by a memory-lean autograd function: for backward it keeps only the block maxima and a
one-byte offset of each maximum inside its block (not the input, the int64 indices and the dense
unpooled map that the plain formulation keeps), and rebuilds the sparse map when it needs it.
``pool_unpool_conv_reference`` is the plain formulation (MaxPool -> MaxUnpool -> Conv), kept for
tests, benchmarks and tracing/export.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = [
    "block_argmax",
    "block_indices",
    "max_pool_unpool",
    "pool_unpool_conv",
    "pool_unpool_conv_reference",
    "same_padding",
    "to_tuple",
]

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


def _spatial_dim(y: Tensor) -> int:
    dim = y.dim() - 2
    if dim not in _MAX_POOL:
        raise ValueError(f"expected an input of shape (N, C, *spatial) with 1-3 spatial dims, got {tuple(y.shape)}")
    return dim


def _offset_dtype(pool: Sequence[int]) -> torch.dtype:
    """The smallest integer dtype that holds every offset inside a pooling window."""
    volume = math.prod(pool)
    return torch.uint8 if volume <= 256 else torch.int16 if volume <= 32768 else torch.int32


def _window_tables(spatial: Sequence[int], pool: Sequence[int], device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """Index arithmetic between flat per-plane indices and offsets inside a block's window.

    Returns ``(start, to_offset, to_relative)``: ``start`` (shape ceil(spatial / pool)) is the flat index
    of every block's first element; ``to_offset[i - start]`` is the row-major offset inside the window of
    flat index ``i``; ``to_relative[offset]`` is ``i - start`` again. Lookups, not divisions: cheap.

    Built once per (spatial size, pool size, device) and kept: building them takes some 30 small ops,
    whose launches made a training step of Pool Skip on a GPU wait on the CPU (on an H200, twice as long as
    the plain formulation's step). Tables of at most a plane's size each (a few MB for a 160^3 volume), for
    the few sizes a network has. Not kept while torch.compile traces (it records the ops instead) nor while a
    CUDA graph is captured (their memory would belong to the graph's pool).
    """
    if torch.compiler.is_compiling() or (device.type == "cuda" and torch.cuda.is_current_stream_capturing()):
        return _build_window_tables(tuple(spatial), tuple(pool), device)
    return _kept_window_tables(tuple(spatial), tuple(pool), device)


@functools.lru_cache(maxsize=64)
def _kept_window_tables(spatial: tuple[int, ...], pool: tuple[int, ...], device: torch.device):
    # ordinary tensors even when first asked for under inference_mode, so that training can use them later
    with torch.inference_mode(False), torch.no_grad():
        return _build_window_tables(spatial, pool, device)


def _build_window_tables(
    spatial: tuple[int, ...], pool: tuple[int, ...], device: torch.device
) -> tuple[Tensor, Tensor, Tensor]:
    strides = [math.prod(spatial[d + 1 :]) for d in range(len(spatial))]
    start = torch.zeros((), dtype=torch.int64, device=device)
    for d, (size, e, stride) in enumerate(zip(spatial, pool, strides)):
        shape = [1] * len(spatial)
        shape[d] = -1
        start = start + (torch.arange(-(-size // e), device=device) * (e * stride)).view(shape)
    # every position a window can hold (a window never reaches past the plane), as relative flat index
    # and as row-major offset in the full window; built on the device, without host-to-device copies
    relative = torch.zeros((), dtype=torch.int64, device=device)
    offset = torch.zeros((), dtype=torch.int64, device=device)
    window_strides = [math.prod(pool[d + 1 :]) for d in range(len(pool))]
    for size, e, stride, window_stride in zip(spatial, pool, strides, window_strides):
        steps = torch.arange(min(e, size), device=device)
        relative = relative.unsqueeze(-1) + steps * stride
        offset = offset.unsqueeze(-1) + steps * window_stride
    relative, offset = relative.flatten(), offset.flatten()
    largest = sum((min(e, size) - 1) * stride for size, e, stride in zip(spatial, pool, strides))
    dtype = _offset_dtype(pool)
    # distinct positions in a plane have distinct indices: these scatters never collide
    to_offset = torch.zeros(largest + 1, dtype=dtype, device=device).scatter_(0, relative, offset.to(dtype))
    to_relative = torch.zeros(math.prod(pool), dtype=torch.int64, device=device).scatter_(0, offset, relative)
    return start, to_offset, to_relative


def block_argmax(y: Tensor, pool: int | Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Block maxima of ``y`` (ceil-mode windows of size ``pool``), their flat indices and window offsets.

    Returns ``(pooled, indices, offset)``, each of shape (N, C, *ceil(spatial / pool)): ``indices`` are
    int64 flat per-plane positions (as ``max_pool`` returns them); ``offset`` is the row-major position of
    the (first) maximum inside its full ``pool``-sized window, in the smallest integer dtype that holds it
    (uint8 up to 256 positions per window). Ragged edge blocks are smaller windows; their offsets are
    still measured in the full window's coordinates.
    """
    pool = to_tuple(pool, _spatial_dim(y), "pool_size")
    pooled, indices = _MAX_POOL[len(pool)](y, pool, pool, 0, 1, True, True)  # ceil_mode, return_indices
    start, to_offset, _ = _window_tables(y.shape[2:], pool, y.device)
    return pooled, indices, torch.take(to_offset, indices - start)


def block_indices(offset: Tensor, pool: int | Sequence[int], spatial: Sequence[int]) -> Tensor:
    """The int64 flat per-plane indices of the block maxima, rebuilt from their window ``offset``."""
    pool = to_tuple(pool, len(spatial), "pool_size")
    start, _, to_relative = _window_tables(spatial, pool, offset.device)
    return torch.take(to_relative, offset.long()) + start


def _unpool_layout(like: Tensor) -> torch.memory_format:
    """The layout of an unpooled map for ``like``: ``like``'s own where its spatial dims merge into one, so that
    ``flatten(2)`` of the map is a view (channels_last / channels_last_3d, or contiguous); contiguous otherwise.

    Not ``like``'s strides as they are: a dense but permuted layout (H and W swapped, say) would make
    ``flatten(2)`` a copy, and a scatter into that copy would leave the map all zeros.
    """
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if like.dim() == 5 and like.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _unpool(values: Tensor, indices: Tensor, like: Tensor, shape: Sequence[int] | None = None) -> Tensor:
    """``MaxUnpool``: ``values`` at their flat ``indices`` in a zero tensor shaped like ``like`` (or ``shape``,
    on ``like``'s device).

    Laid out as :func:`_unpool_layout` says (``like``'s channels_last layout is kept, any other becomes
    contiguous). A scatter whose indices never collide (blocks are disjoint), deterministic on every device.
    """
    shape = like.shape if shape is None else shape
    out = torch.empty(shape, dtype=values.dtype, device=like.device, memory_format=_unpool_layout(like)).zero_()
    out.flatten(2).scatter_(2, indices.flatten(2), values.flatten(2))  # a view of out, in either layout
    return out


def _kept_at(t: Tensor, indices: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """``t`` (N, C, *spatial) at the flat per-plane ``indices`` only, zeros elsewhere (in ``dtype``, cast before
    the zero map is made): the gradient a max-pool passes back to its input. A gather, then a scatter whose indices
    never collide (every input belongs to exactly one block), deterministic on every device."""
    kept = t.flatten(2).gather(2, indices.flatten(2))
    return _unpool(kept if dtype is None else kept.to(dtype), indices, t)


class _MaxPoolUnpool(torch.autograd.Function):
    """``MaxUnpool(MaxPool(y))`` that saves only the uint8 offsets of the block maxima for backward (the stock
    max-pool keeps int64 indices), with a gather-and-scatter backward whose indices never collide: deterministic
    on every device (the stock ``max_pool3d`` backward has no deterministic CUDA implementation). Its backward is
    made of differentiable ops, so it can be differentiated again."""

    @staticmethod
    def forward(ctx, y, pool):
        pooled, indices, offset = block_argmax(y, pool)
        ctx.save_for_backward(offset)
        ctx.meta = (pool, y.shape)
        return _unpool(pooled, indices, y)

    @staticmethod
    def backward(ctx, grad_out):
        (offset,) = ctx.saved_tensors
        pool, shape = ctx.meta
        return _kept_at(grad_out, block_indices(offset, pool, shape[2:])), None


def max_pool_unpool(y: Tensor, pool_size: int | Sequence[int]) -> Tensor:
    """``MaxUnpool(MaxPool(y))`` over the trailing spatial dims of ``y`` (N, C, *spatial).

    With autograd, a function that keeps only the maxima's one-byte offsets for backward and whose backward is
    deterministic on every device; without (no_grad, inference) and while tracing or exporting, the plain
    formulation (max-pool with indices, then a scatter of the maxima to their indices), written with
    shape-generic ops so that ``torch.jit.trace`` and ONNX export keep sizes symbolic. The same values either way.
    """
    dim = _spatial_dim(y)
    e = to_tuple(pool_size, dim, "pool_size")
    if all(k == 1 for k in e):
        return y
    if torch.is_grad_enabled() and y.requires_grad and not _exporting():
        return _MaxPoolUnpool.apply(y, e)
    return _max_pool_unpool_stock(y, e)


def _max_pool_unpool_stock(y: Tensor, e: tuple[int, ...]) -> Tensor:
    """The plain formulation of :func:`max_pool_unpool`, with stock autograd (the paper's ops)."""
    dim = len(e)
    if all(k == 1 for k in e):
        return y
    pooled, indices = _MAX_POOL[dim](y, e, e, 0, 1, True, True)  # ceil_mode=True, return_indices=True
    # MaxUnpool as a scatter of the maxima to their flat per-plane indices (unique: blocks are disjoint)
    flat = torch.zeros_like(y, memory_format=torch.contiguous_format).flatten(2)
    return flat.scatter(2, indices.flatten(2), pooled.flatten(2)).view_as(y)


def _check_kernel(weight: Tensor) -> None:
    """A ValueError for a kernel of even size: "same" padding (the output the size of the input) needs odd."""
    if not _exporting() and any(k % 2 == 0 for k in weight.shape[2:]):
        raise ValueError(f"Pool Skip's convolution needs an odd kernel size to keep the input's size, got weight of "
                         f"shape {tuple(weight.shape)}")  # fmt: skip


def _check_groups(y: Tensor, weight: Tensor, groups: int) -> None:
    """A ValueError naming the given and the expected ``groups`` if ``weight`` cannot convolve ``y`` in groups.

    Skipped while a graph is recorded for export: the shapes are then traced values, not ints to check.
    """
    if _exporting():
        return
    channels = y.shape[1]
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or channels % groups:
        raise ValueError(f"groups must be a positive int dividing the {channels} input channels, got {groups!r}")
    if weight.shape[1] * groups != channels:
        raise ValueError(
            f"weight of shape {tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups} input "
            f"channels, got {channels} (expected groups={channels // weight.shape[1]} for this weight)"
        )


def pool_unpool_conv_reference(
    y: Tensor, weight: Tensor, bias: Tensor | None, pool_size: int | Sequence[int], groups: int = 1
) -> Tensor:
    """The plain formulation, ``Conv(MaxUnpool(MaxPool(y)))`` with stock ops and stock autograd.

    Same values as :func:`pool_unpool_conv`; autograd keeps ``y``, int64 indices and the dense unpooled
    map for backward. Used for tracing/ONNX export, and as the baseline in tests and benchmarks.
    """
    dim = _spatial_dim(y)
    _check_groups(y, weight, groups)
    _check_kernel(weight)
    unpooled = _max_pool_unpool_stock(y, to_tuple(pool_size, dim, "pool_size"))
    return _CONV[dim](unpooled, weight, bias, 1, same_padding(weight.shape[2:]), 1, groups)


def _autocast_dtype(y: Tensor) -> torch.dtype | None:
    """The dtype autocast lowers a convolution's inputs to on ``y``'s device, or None if autocast is off."""
    kind = y.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        return torch.get_autocast_dtype(kind)
    return None


def _conv_dtype(y: Tensor, weight: Tensor, bias: Tensor | None, low: torch.dtype | None) -> torch.dtype:
    """The dtype the stock convolution of (the pooled) ``y`` with ``weight`` and ``bias`` runs in, ``low``
    being :func:`_autocast_dtype` of ``y``.

    Stock autocast's rule: with autocast on for ``y``'s device, every floating input but a float64 one is
    cast to the autocast dtype; float64 inputs stay float64, and so does everything without autocast. A
    RuntimeError naming the dtypes where they then differ, as the stock convolution raises one: the same
    error with and without autograd (training and evaluation), not a silent cast in one of them.
    """
    named = [("input", y), ("weight", weight)] + ([] if bias is None else [("bias", bias)])
    runs = {
        what: low if low is not None and t.is_floating_point() and t.dtype != torch.float64 else t.dtype
        for what, t in named
    }
    if len(set(runs.values())) > 1:
        given = ", ".join(f"{what} {t.dtype}" for what, t in named)
        under = f" under autocast to {low} (which leaves float64 as it is)" if low is not None else ""
        raise RuntimeError(
            f"Pool Skip's convolution needs one dtype, got {given}{under}: cast the module and its input "
            "to one dtype (module.to(dtype)), or run under torch.autocast with float32 weights and input"
        )
    return runs["input"]


def _exporting() -> bool:
    """True while ``torch.jit.trace``/``script``, ``torch.export`` or ONNX export records the graph."""
    return (
        torch.jit.is_tracing()
        or torch.jit.is_scripting()
        or torch.onnx.is_in_onnx_export()
        or torch.compiler.is_exporting()
    )


class _PoolUnpoolConv(torch.autograd.Function):
    """``Conv(MaxUnpool(MaxPool(y)))`` that saves only block maxima + uint8 offsets for backward.

    Backward rebuilds the flat indices from the offsets, and the unpooled map from the maxima for the
    weight gradient. The gradient wrt ``y`` is the convolution's input gradient kept at each block's
    maximum (:func:`_kept_at`), deterministic everywhere. Not twice differentiable.
    """

    @staticmethod
    def forward(ctx, y, weight, bias, pool, dtype, groups):
        pooled, indices, offset = block_argmax(y, pool)
        pooled = pooled.to(dtype)
        unpooled = _unpool(pooled, indices, y)
        b = None if bias is None else bias.to(dtype)
        out = _CONV[len(pool)](unpooled, weight.to(dtype), b, 1, same_padding(weight.shape[2:]), 1, groups)
        ctx.save_for_backward(pooled, offset, weight)
        ctx.meta = (pool, y.shape, y.dtype, bias is not None, groups)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        pooled, offset, weight = ctx.saved_tensors
        pool, y_shape, y_dtype, has_bias, groups = ctx.meta  # y's channels: the weight's input side, not grad_out's
        need_y, need_w, need_b = ctx.needs_input_grad[:3]
        dim = len(pool)
        indices = block_indices(offset, pool, y_shape[2:])
        if need_w:
            unpooled = _unpool(pooled, indices, grad_out, y_shape)
        else:  # convolution_backward reads only the input's shape when no weight gradient is asked for
            unpooled = grad_out.new_empty(1).expand(*y_shape)
        grad_unpooled, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out,
            unpooled,
            weight.to(grad_out.dtype),
            [weight.shape[0]] if has_bias else None,
            [1] * dim,
            list(same_padding(weight.shape[2:])),
            [1] * dim,
            False,
            [0] * dim,
            groups,
            [need_y, need_w, need_b and has_bias],
        )
        grad_y = None
        if need_y:
            grad_y = _kept_at(grad_unpooled, indices, y_dtype)
        grad_w = grad_w.to(weight.dtype) if grad_w is not None else None
        grad_b = grad_b.to(weight.dtype) if grad_b is not None else None
        return grad_y, grad_w, grad_b, None, None, None


def pool_unpool_conv(
    y: Tensor, weight: Tensor, bias: Tensor | None, pool_size: int | Sequence[int], groups: int = 1
) -> Tensor:
    """``Conv(MaxUnpool(MaxPool(y)))``: a stride-1 convolution with "same" padding of the block maxima.

    ``weight`` is (C_out, C / groups, *kernel), as for ``F.conv{1,2,3}d(..., groups=groups)``; ``groups = C``
    is a depthwise convolution (the cheap control: C * k^d weights instead of C^2 * k^d).

    With autograd: the memory-lean autograd function (block maxima + uint8 offsets saved, nothing of
    the input's size). Without (no_grad, inference, tracing, ONNX export): the plain formulation, which
    keeps nothing either and which every exporter understands. Under autocast the convolution runs in
    the autocast dtype and the pooling in ``y``'s dtype, as with the stock ops (which leave a float64
    input in float64). Inputs of dtypes that the stock convolution would refuse to mix (e.g. a bfloat16
    ``y`` with a float32 ``weight`` without autocast) raise a RuntimeError, with and without autograd.
    """
    dim = _spatial_dim(y)
    pool = to_tuple(pool_size, dim, "pool_size")
    _check_groups(y, weight, groups)
    _check_kernel(weight)
    low = _autocast_dtype(y)
    dtype = _conv_dtype(y, weight, bias, low)
    if all(e == 1 for e in pool):
        return _CONV[dim](y, weight, bias, 1, same_padding(weight.shape[2:]), 1, groups)
    needs_grad = torch.is_grad_enabled() and (
        y.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    if not needs_grad or _exporting():
        return pool_unpool_conv_reference(y, weight, bias, pool, groups)
    # the function casts to ``dtype`` itself: autocast off inside it, so that its ops keep the dtypes given
    with torch.autocast(y.device.type, enabled=False) if low else nullcontext():
        return _PoolUnpoolConv.apply(y, weight, bias, pool, dtype, groups)
