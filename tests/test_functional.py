"""The memory-lean pool -> unpool -> conv op against the plain formulation (MaxPool -> MaxUnpool -> Conv)."""

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from poolskip.functional import (
    block_argmax,
    block_indices,
    max_pool_unpool,
    pool_unpool_conv,
    pool_unpool_conv_reference,
)
from reference import block_max_mask, conv_same

_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _inputs(spatial, channels=3, batch=2, dtype=torch.float32, seed=0, kernel=3):
    g = torch.Generator().manual_seed(seed)
    dim = len(spatial)
    y = torch.randn(batch, channels, *spatial, generator=g, dtype=dtype)
    w = torch.randn(channels, channels, *([kernel] * dim), generator=g, dtype=dtype) * 0.3
    b = torch.randn(channels, generator=g, dtype=dtype)
    return y, w, b


def _reversed_spatial_layout(t):
    """``t``'s values, laid out with the spatial dims in reverse order (W before H): dense, but neither
    contiguous nor channels_last, so ``flatten(2)`` of it is a copy, not a view."""
    order = [0, 1, *range(t.dim() - 1, 1, -1)]  # its own inverse
    return t.permute(order).contiguous().permute(order)


def _values_and_grads(fn, y, w, b, pool, grad_seed=1, grad_layout=lambda g: g):
    y, w = y.detach().requires_grad_(), w.detach().requires_grad_()
    b = None if b is None else b.detach().requires_grad_()
    out = fn(y, w, b, pool)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=out.dtype)
    g = grad_layout(g.to(out.device))  # the same gradient on every device (drawn on the CPU)
    leaves = [t for t in (y, w, b) if t is not None]
    return out, torch.autograd.grad(out, leaves, g)


def _assert_same_as_plain(y, w, b, pool, atol=1e-5, rtol=1e-5):
    out, grads = _values_and_grads(pool_unpool_conv, y, w, b, pool)
    ref, ref_grads = _values_and_grads(pool_unpool_conv_reference, y, w, b, pool)
    torch.testing.assert_close(out, ref, atol=atol, rtol=rtol)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol)


# every pool size 1..4, per-dim tuples, odd and smaller-than-pool sizes, in 1D/2D/3D
SHAPES = [
    ((9,), 1),
    ((9,), 2),
    ((11,), 3),
    ((10,), 4),
    ((3,), 4),
    ((7, 9), 2),
    ((8, 8), 2),
    ((7, 5), 3),
    ((9, 6), 4),
    ((5, 7), (2, 3)),
    ((6, 3), (4, 1)),
    ((2, 2), 3),
    ((5, 4, 3), 2),
    ((3, 5, 7), (1, 2, 3)),
    ((4, 5, 6), 4),
]


@pytest.mark.parametrize("spatial,pool", SHAPES)
def test_values_and_gradients_match_plain_formulation(spatial, pool):
    _assert_same_as_plain(*_inputs(spatial), pool)


@pytest.mark.parametrize("spatial,pool", [((7,), 3), ((5, 6), (2, 3)), ((3, 4, 5), 2)])
def test_matches_loop_reference_in_double(spatial, pool):
    y, w, b = _inputs(spatial, dtype=torch.float64)
    pool_t = (pool,) * len(spatial) if isinstance(pool, int) else pool
    out, grads = _values_and_grads(pool_unpool_conv, y, w, b, pool)
    want = lambda y, w, b, e: conv_same(y * block_max_mask(y.detach(), pool_t), w, b)
    ref, ref_grads = _values_and_grads(want, y, w, b, pool)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for got, exp in zip(grads, ref_grads):
        torch.testing.assert_close(got, exp, rtol=1e-10, atol=1e-10)


def test_gradcheck():
    y, w, b = _inputs((3, 5), channels=2, batch=1, dtype=torch.float64)
    args = (y.requires_grad_(), w.requires_grad_(), b.requires_grad_())
    assert torch.autograd.gradcheck(lambda y, w, b: pool_unpool_conv(y, w, b, (2, 3)), args)


@pytest.mark.parametrize("c_out", [1, 5])
def test_other_output_channels_than_input_channels_match_plain_formulation(c_out):
    """``weight`` (C_out, C, *k) with C_out != C: backward rebuilds the input's shape from the input, not from
    the output's gradient."""
    y, _, b = _inputs((5, 6), channels=3)
    w = torch.randn(c_out, 3, 3, 3, generator=torch.Generator().manual_seed(1)) * 0.3
    _assert_same_as_plain(y, w, b[:1].expand(c_out).contiguous(), (2, 3))
    y64, w64 = y.double().requires_grad_(), w.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda y, w: pool_unpool_conv(y, w, None, 2), (y64[:1, :, :3], w64))


def test_an_even_kernel_is_refused_with_and_without_autograd():
    y, w = torch.randn(1, 2, 4, 4, requires_grad=True), torch.randn(2, 2, 2, 2)
    for f in (pool_unpool_conv, pool_unpool_conv_reference):
        with pytest.raises(ValueError, match=r"odd kernel size .* weight of shape \(2, 2, 2, 2\)"):
            f(y, w, None, 2)


def test_ties_keep_the_first_maximum_like_max_pool():
    y, w, b = _inputs((6, 7))
    y = y.round()  # many ties within blocks
    y[0, 0] = 1.0  # a plane where every block is one big tie
    _assert_same_as_plain(y, w, b, 3)


def test_no_bias_other_kernel_sizes_and_partial_requires_grad():
    y, w, _ = _inputs((7, 6), kernel=5)
    _assert_same_as_plain(y, w, None, 2)
    w1 = torch.randn(3, 3, 1, 3)  # 1x3 kernel
    _assert_same_as_plain(y, w1, None, 2)
    # only the weight needs a gradient (y frozen), and only y (weights frozen)
    y, w, b = _inputs((5, 5))
    wg = w.clone().requires_grad_()
    got = torch.autograd.grad(pool_unpool_conv(y, wg, b, 2).sum(), wg)[0]
    want = torch.autograd.grad(pool_unpool_conv_reference(y, wg, b, 2).sum(), wg)[0]
    torch.testing.assert_close(got, want)
    yg = y.clone().requires_grad_()
    got = torch.autograd.grad(pool_unpool_conv(yg, w, b, 2).sum(), yg)[0]
    want = torch.autograd.grad(pool_unpool_conv_reference(yg, w, b, 2).sum(), yg)[0]
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("spatial,pool", [((7, 9), 2), ((5, 6), (3, 2)), ((3, 5, 4), 2)])
def test_channels_last_inputs(spatial, pool):
    y, w, b = _inputs(spatial, channels=4)
    fmt = torch.channels_last if len(spatial) == 2 else torch.channels_last_3d
    y_cl = y.contiguous(memory_format=fmt)
    _assert_same_as_plain(y_cl, w, b, pool)
    out, grads = _values_and_grads(pool_unpool_conv, y_cl, w, b, pool)
    ref, ref_grads = _values_and_grads(pool_unpool_conv_reference, y, w, b, pool)  # contiguous input
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(grads[0], ref_grads[0])


@pytest.mark.parametrize("spatial,pool", [((7, 9), 2), ((6, 8), (3, 2)), ((3, 5, 4), 2), ((4, 5, 6), (1, 2, 3))])
@pytest.mark.parametrize("permuted", ["input", "output gradient", "both"])
def test_permuted_layouts_match_plain_formulation(spatial, pool, permuted):
    # an input or an output gradient whose spatial dims are laid out in another order (e.g. after a
    # transpose(2, 3)) gets the same values and gradients as a contiguous one; the unpooled map once kept
    # such a layout, so the scatter went into a copy: no Pool Skip branch, a zero weight gradient
    y, w, b = _inputs(spatial, channels=4)
    y_in = _reversed_spatial_layout(y) if permuted != "output gradient" else y
    layout = _reversed_spatial_layout if permuted != "input" else (lambda g: g)
    out, grads = _values_and_grads(pool_unpool_conv, y_in, w, b, pool, grad_layout=layout)
    ref, ref_grads = _values_and_grads(pool_unpool_conv_reference, y, w, b, pool)  # contiguous everything
    torch.testing.assert_close(out, ref)
    assert len(grads) == len(ref_grads) == 3
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("input_dtype", ["low", "float32"])
def test_cpu_autocast_matches_stock_ops(dtype, input_dtype):
    y, w, b = _inputs((8, 7), channels=4)
    if input_dtype == "low":  # Y from a host conv under autocast is already in the low dtype
        y = y.to(dtype)
    with torch.autocast("cpu", dtype=dtype):
        out, grads = _values_and_grads(pool_unpool_conv, y, w, b, 2)
        ref, ref_grads = _values_and_grads(pool_unpool_conv_reference, y, w, b, 2)
    assert out.dtype == ref.dtype == dtype
    assert [g.dtype for g in grads] == [g.dtype for g in ref_grads] == [y.dtype, torch.float32, torch.float32]
    torch.testing.assert_close(out, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def test_float64_under_autocast_stays_float64_with_and_without_autograd():
    # stock autocast lowers float32 (and other floating) inputs, never float64: training (autograd) and
    # evaluation (no_grad) run the same float64 convolution, as the stock ops do
    y, w, b = _inputs((8, 7), channels=4, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grads = _values_and_grads(pool_unpool_conv, y, w, b, 2)
        ref, ref_grads = _values_and_grads(pool_unpool_conv_reference, y, w, b, 2)
        with torch.no_grad():
            evaluated = pool_unpool_conv(y, w, b, 2)
    assert out.dtype == ref.dtype == evaluated.dtype == torch.float64
    assert [g.dtype for g in grads] == [torch.float64] * 3
    torch.testing.assert_close(out, evaluated)
    torch.testing.assert_close(out, ref)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize(
    "y_dtype,w_dtype,autocast",
    [
        (torch.bfloat16, torch.float32, None),
        (torch.float32, torch.float64, None),
        (torch.float64, torch.float32, torch.bfloat16),
    ],
)
@pytest.mark.parametrize("grad", [True, False], ids=["train", "eval"])
def test_mixed_dtypes_raise_the_same_error_with_and_without_autograd(y_dtype, w_dtype, autocast, grad):
    # a conv the stock ops refuse (input and weight dtypes that stay different) is refused on both paths,
    # not cast silently on the autograd path while evaluation raises
    y, w, b = _inputs((6, 6), channels=4)
    y, w, b = y.to(y_dtype).requires_grad_(grad), w.to(w_dtype), b.to(w_dtype)
    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
        with torch.set_grad_enabled(grad), pytest.raises(RuntimeError, match="needs one dtype, got input") as err:
            pool_unpool_conv(y, w, b, 2)
        with pytest.raises(RuntimeError):  # the stock formulation refuses them too
            pool_unpool_conv_reference(y, w, b, 2)
    assert str(y_dtype) in str(err.value) and str(w_dtype) in str(err.value)


def _saved_bytes(fn, *args) -> int:
    """Bytes of distinct storages autograd keeps for backward while ``fn(*args)`` runs."""
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(*args)
    return sum(storages.values())


@pytest.mark.parametrize("spatial,pool", [((16, 16), 2), ((9, 7), 2), ((8, 8, 8), 4)])
def test_saves_only_maxima_and_byte_offsets(spatial, pool):
    y, w, b = _inputs(spatial, channels=8)
    y.requires_grad_()
    w.requires_grad_()
    b.requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        pool_unpool_conv(y, w, b, pool)
    blocks = [-(-s // e) for s, e in zip(spatial, (pool,) * len(spatial))]
    got = sorted((str(t.dtype), tuple(t.shape)) for t in saved)
    want = [("torch.float32", (2, 8, *blocks)), ("torch.uint8", (2, 8, *blocks)), ("torch.float32", tuple(w.shape))]
    assert got == sorted(want)
    ours, plain = _saved_bytes(pool_unpool_conv, y, w, b, pool), _saved_bytes(pool_unpool_conv_reference, y, w, b, pool)
    activations = (ours - w.untyped_storage().nbytes(), plain - w.untyped_storage().nbytes())
    assert activations[0] <= 0.35 * activations[1]


@pytest.mark.parametrize(
    "spatial,pool", [((13,), 4), ((7, 9), 2), ((5, 3), (3, 4)), ((3, 5, 7), (2, 1, 3)), ((20, 20), (17, 17))]
)
def test_offsets_round_trip_to_max_pool_indices(spatial, pool):
    y = torch.randn(2, 3, *spatial)
    volume = pool ** len(spatial) if isinstance(pool, int) else math.prod(pool)
    pooled, indices, offset = block_argmax(y, pool)
    want_pooled, want_indices = _MAX_POOL[len(spatial)](y, pool, pool, 0, 1, True, True)
    torch.testing.assert_close(pooled, want_pooled)
    assert torch.equal(indices, want_indices)
    assert offset.dtype == (torch.uint8 if volume <= 256 else torch.int16)
    assert int(offset.max()) < volume
    assert torch.equal(block_indices(offset, pool, spatial), want_indices)


def test_no_grad_and_eval_keep_nothing_and_match():
    y, w, b = _inputs((7, 8))
    w.requires_grad_()
    with torch.no_grad():
        out = pool_unpool_conv(y, w, b, 2)
    assert out.grad_fn is None
    torch.testing.assert_close(out, pool_unpool_conv_reference(y, w, b, 2).detach())
    assert _saved_bytes(lambda: pool_unpool_conv(y, w.detach(), b, 2)) == 0  # nothing requires grad


def test_double_backward_is_not_supported_and_says_so():
    y, w, b = _inputs((4, 4))
    y.requires_grad_()
    (g,) = torch.autograd.grad(pool_unpool_conv(y, w, b, 2).square().sum(), y, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|double backward|twice"):
        g.sum().backward()


def test_max_pool_unpool_unchanged_semantics():
    y = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(max_pool_unpool(y, 2), y * block_max_mask(y, (2, 2)))
    assert max_pool_unpool(y, 1) is y


@pytest.mark.parametrize(
    "spatial,pool", [((9, 7), 2), ((8, 8), 4), ((5, 6, 7), 2), ((5, 6, 7), (2, 3, 1)), ((11,), 3), ((3, 3), 4)]
)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "permuted"])
def test_max_pool_unpool_with_autograd_matches_the_stock_ops_and_keeps_only_offsets(spatial, pool, layout):
    """The {Pool,Skip} ablation's op: the same values and gradients as stock max-pool + scatter, ties included,
    whatever the input's and the output gradient's layout; one byte per block kept for backward."""
    from poolskip.functional import _max_pool_unpool_stock

    y, _, _ = _inputs(spatial, channels=3)
    y = y.round()  # ties within blocks
    arrange = {"contiguous": lambda t: t, "permuted": _reversed_spatial_layout}.get(
        layout, lambda t: t.to(memory_format=torch.channels_last if t.dim() == 4 else torch.contiguous_format)
    )
    e = pool if isinstance(pool, tuple) else (pool,) * len(spatial)
    got, want = y.clone().requires_grad_(), y.clone().requires_grad_()
    out, ref = max_pool_unpool(arrange(got), pool), _max_pool_unpool_stock(arrange(want), e)
    assert out.grad_fn is not None and type(out.grad_fn).__name__ == "_MaxPoolUnpoolBackward"
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    g = arrange(torch.randn(out.shape, generator=torch.Generator().manual_seed(3)))
    (gy,), (ry,) = torch.autograd.grad(out, got, g), torch.autograd.grad(ref, want, g)
    torch.testing.assert_close(gy, ry, rtol=0, atol=0)
    blocks = math.prod(-(-n // k) for n, k in zip(spatial, e)) * 2 * 3
    assert _saved_bytes(lambda: max_pool_unpool(y.clone().requires_grad_(), pool)) == blocks  # uint8 offsets


def test_max_pool_unpool_twice_differentiable_and_stock_without_autograd():
    y = torch.randn(2, 2, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: max_pool_unpool(t, 2), (y,))
    assert torch.autograd.gradgradcheck(lambda t: max_pool_unpool(t, 2), (y,))
    with torch.no_grad():
        assert max_pool_unpool(y, 2).grad_fn is None
    assert max_pool_unpool(y.detach(), 2).grad_fn is None


def test_bad_input_rank():
    with pytest.raises(ValueError, match="1-3 spatial dims"):
        pool_unpool_conv(torch.randn(2, 3), torch.randn(3, 3, 3), None, 2)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@contextlib.contextmanager
def _deterministic():
    """torch.use_deterministic_algorithms(True) for the block, then as it was."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@pytest.fixture
def no_tf32():
    """Full fp32 convolutions on the GPU, so that it can be held to the CPU's values at 1e-4: cuDNN may run
    fp32 convolutions in TF32 (10-bit mantissa) by default, whose rounding alone differs by ~3e-3 (an H200
    did so for the 3D case, 2026-12-04)."""
    kept = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = kept


@cuda
@pytest.mark.parametrize("spatial,pool", [((9, 7), 2), ((8, 8), 4), ((5, 6, 7), 2), ((11,), 3)])
def test_cuda_matches_cpu_plain_formulation(spatial, pool, no_tf32):
    y, w, b = _inputs(spatial, channels=4)
    out, grads = _values_and_grads(pool_unpool_conv, y.cuda(), w.cuda(), b.cuda(), pool)
    ref, ref_grads = _values_and_grads(pool_unpool_conv_reference, y, w, b, pool)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-4)  # cuDNN's algorithms sum in other orders
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4)


@cuda
def test_cuda_channels_last_and_other_output_channels(no_tf32):
    """A channels_last input on the GPU and a weight of 6 output channels for 4 inputs, against the CPU."""
    y, _, _ = _inputs((9, 7), channels=4)
    g = torch.Generator().manual_seed(2)
    w, b = torch.randn(6, 4, 3, 3, generator=g) * 0.3, torch.randn(6, generator=g)
    y_cl = y.cuda().to(memory_format=torch.channels_last)
    out, grads = _values_and_grads(pool_unpool_conv, y_cl, w.cuda(), b.cuda(), 2)
    ref, ref_grads = _values_and_grads(pool_unpool_conv_reference, y, w, b, 2)
    torch.testing.assert_close(out.cpu(), ref, atol=1e-4, rtol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.cpu(), want, atol=1e-4, rtol=1e-4)


@cuda
def test_cuda_deterministic_mode_and_autocast():
    y, w, b = _inputs((16, 16), channels=8)
    y, w, b = y.cuda(), w.cuda(), b.cuda()
    with _deterministic():
        first = _values_and_grads(pool_unpool_conv, y, w, b, 2)
        second = _values_and_grads(pool_unpool_conv, y, w, b, 2)
    for a, c in zip([first[0], *first[1]], [second[0], *second[1]]):
        assert torch.equal(a, c)
    with torch.autocast("cuda", dtype=torch.float16):
        ours = _values_and_grads(pool_unpool_conv, y, w, b, 2)
        plain = _values_and_grads(pool_unpool_conv_reference, y, w, b, 2)
    assert ours[0].dtype == plain[0].dtype == torch.float16
    half_gradient = torch.randn(ours[0].shape, generator=torch.Generator().manual_seed(1), dtype=torch.float16)
    exact = _values_and_grads(  # the same output gradient as above (drawn in fp16), in float64
        pool_unpool_conv_reference,
        y.double(),
        w.double(),
        b.double(),
        2,
        grad_layout=lambda _: half_gradient.double().cuda(),
    )
    # Both formulations round at fp16's precision, at different steps (their bias gradients, ~35, differed by
    # 1.3e-2 on an H200, under fp16's spacing of 3.1e-2 there): each is held to the float64 values within
    # eight times fp16's relative precision (2^-11) of the largest value, the rounding of the result itself
    # plus what its rounded fp16 inputs add to a sum of a few hundred terms.
    for got, want, truth in zip([ours[0], *ours[1]], [plain[0], *plain[1]], [exact[0], *exact[1]]):
        tolerance = 2.0**-11 * 8 * truth.abs().max().item()
        assert (got.double() - truth).abs().max().item() <= tolerance
        assert (want.double() - truth).abs().max().item() <= tolerance


def test_window_tables_are_built_once_per_size_and_outlive_inference_mode():
    """The index tables are kept per (size, pool, device): a training step does not rebuild them (their ~30
    small ops made a GPU step wait on the CPU). Kept from an inference_mode call, they still serve training."""
    from poolskip.functional import _kept_window_tables, _window_tables

    _kept_window_tables.cache_clear()
    y, w, b = _inputs((13, 11), channels=3)
    with torch.inference_mode():
        block_argmax(y, 2)
    first = _window_tables((13, 11), (2, 2), y.device)
    assert not any(t.is_inference() for t in first)
    _assert_same_as_plain(y, w, b, 2)  # training (forward and backward) reads the kept tables
    assert all(a is c for a, c in zip(first, _window_tables(torch.Size([13, 11]), [2, 2], y.device)))
    assert _kept_window_tables.cache_info().currsize == 1
    _window_tables((13, 12), (2, 2), y.device)
    assert _kept_window_tables.cache_info().currsize == 2


@cuda
def test_cuda_graph_capture_keeps_no_window_tables():
    """Tables first needed while a CUDA graph is captured are built for it, not kept: their memory is the graph's."""
    from poolskip.functional import _kept_window_tables

    _kept_window_tables.cache_clear()
    y = torch.randn(2, 3, 12, 10, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        pooled, indices, offset = block_argmax(y, 2)
    graph.replay()
    torch.cuda.synchronize()
    assert _kept_window_tables.cache_info().currsize == 0
    torch.testing.assert_close(block_argmax(y, 2)[2], offset)  # the same offsets, now from kept tables
    assert _kept_window_tables.cache_info().currsize == 1


@cuda
def test_cuda_max_pool_unpool_3d_trains_in_deterministic_mode():
    """The stock max_pool3d backward raises in deterministic mode on CUDA; the {Pool,Skip} ablation's op does not."""
    y, _, _ = _inputs((6, 5, 7), channels=4)
    y = y.cuda().requires_grad_()
    with _deterministic():
        out = max_pool_unpool(y, 2)
        (first,) = torch.autograd.grad(out, y, torch.ones_like(out))
        (second,) = torch.autograd.grad(max_pool_unpool(y, 2), y, torch.ones_like(out))
    assert torch.equal(first, second)
    torch.testing.assert_close(first.cpu(), block_max_mask(y.detach().cpu(), (2, 2, 2)))


def test_meta_device_shapes_only():
    with torch.device("meta"):
        y, w, b = (torch.empty(2, 4, 9, 7), torch.empty(4, 4, 3, 3), torch.empty(4))
        y.requires_grad_(), w.requires_grad_(), b.requires_grad_()
        pool_unpool_conv(y, w, b, (2, 3)).sum().backward()
    assert y.grad.shape == y.shape and w.grad.shape == w.shape and b.grad.shape == b.shape


# ---------------------------------------------------------------------------------- grouped inner conv

GROUPED = [((9,), 2, 2), ((7, 5), 2, 4), ((6, 9), (2, 3), 2), ((3, 4, 5), 2, 4), ((5, 5), 1, 4)]


@pytest.mark.parametrize("spatial,pool,groups", GROUPED)
def test_grouped_matches_loop_reference_in_double(spatial, pool, groups):
    g = torch.Generator().manual_seed(3)
    dim = len(spatial)
    y = torch.randn(2, 4, *spatial, generator=g, dtype=torch.float64)
    w = torch.randn(4, 4 // groups, *([3] * dim), generator=g, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    pool_t = (pool,) * dim if isinstance(pool, int) else pool
    fn = lambda y, w, b, e: pool_unpool_conv(y, w, b, e, groups)  # noqa: E731
    want = lambda y, w, b, e: conv_same(y * block_max_mask(y.detach(), pool_t), w, b, groups)  # noqa: E731
    out, grads = _values_and_grads(fn, y, w, b, pool)
    ref, ref_grads = _values_and_grads(want, y, w, b, pool)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    for got, exp in zip(grads, ref_grads):
        torch.testing.assert_close(got, exp, rtol=1e-10, atol=1e-10)
    # and the lean op agrees with the plain formulation, weight-only and input-only gradients included
    plain = lambda y, w, b, e: pool_unpool_conv_reference(y, w, b, e, groups)  # noqa: E731
    torch.testing.assert_close(_values_and_grads(plain, y, w, b, pool)[0], out)
    wg = w.clone().requires_grad_()
    got = torch.autograd.grad(pool_unpool_conv(y, wg, b, pool, groups).sum(), wg)[0]
    torch.testing.assert_close(got, torch.autograd.grad(plain(y, wg, b, pool).sum(), wg)[0])


def test_grouped_gradcheck_depthwise():
    g = torch.Generator().manual_seed(4)
    y = torch.randn(1, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda y, w, b: pool_unpool_conv(y, w, b, 2, 3), (y, w, b))


def test_grouped_bad_groups_name_given_and_expected():
    y, w = torch.randn(1, 4, 5, 5), torch.randn(4, 2, 3, 3)  # a weight for groups=2
    with pytest.raises(ValueError, match="dividing the 4 input channels, got 3"):
        pool_unpool_conv(y, w, None, 2, 3)
    with pytest.raises(ValueError, match=r"with groups=4 expects 8 input channels, got 4 \(expected groups=2"):
        pool_unpool_conv(y, w, None, 2, 4)
    with pytest.raises(ValueError, match="got 0"):
        pool_unpool_conv_reference(y, w, None, 2, 0)
