import pickle

import pytest
import torch

import poolskip
from poolskip import VARIANTS, PoolSkip, PoolSkip1d, PoolSkip2d, PoolSkip3d
from poolskip.functional import max_pool_unpool
from reference import block_max_mask, reference_pool_skip

torch.set_default_dtype(torch.float32)


def _module(channels, pool, dim, variant="full", kernel=3, seed=0, groups=1):
    torch.manual_seed(seed)
    return PoolSkip(channels, pool, dim=dim, kernel_size=kernel, variant=variant, groups=groups).double()


# spatial sizes chosen to hit divisible, ragged and smaller-than-pool cases
CASES = [
    (1, (7,), 2),
    (1, (5,), 3),
    (1, (1,), 2),
    (2, (4, 4), 2),
    (2, (5, 7), 2),
    (2, (3, 5), (2, 3)),
    (2, (1, 1), 2),
    (2, (6, 9), 4),
    (3, (3, 4, 5), 2),
    (3, (2, 3, 1), (2, 2, 1)),
]


@pytest.mark.parametrize("dim,spatial,pool", CASES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_matches_loop_reference_values_and_grads(dim, spatial, pool, variant):
    m = _module(3, pool, dim, variant)
    y = torch.randn(2, 3, *spatial, dtype=torch.float64, requires_grad=True)
    out = m(y)
    assert out.shape == y.shape
    w = m.conv.weight if m.conv is not None else None
    b = m.conv.bias if m.conv is not None else None
    expected = reference_pool_skip(y, w, b, m.pool_size, variant)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)

    g = torch.randn_like(out)
    params = [y] + list(m.parameters())
    got = torch.autograd.grad(out, params, g)
    want = torch.autograd.grad(expected, params, g)
    for a, e in zip(got, want):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim,spatial,pool", [(2, (5, 7), 2), (2, (6, 9), (2, 3)), (3, (3, 4, 5), 2)])
def test_permuted_input_and_output_gradient_match_loop_reference(dim, spatial, pool):
    # Y and the gradient arriving with their spatial dims swapped in memory (a transpose before or after
    # Pool Skip), with autograd on: the output and every gradient are the reference's
    m = _module(3, pool, dim)
    order = [0, 1, *range(dim + 1, 1, -1)]
    y = torch.randn(2, 3, *spatial, dtype=torch.float64).permute(order).contiguous().permute(order)
    y.requires_grad_()
    assert not y.is_contiguous()
    out = m(y)
    expected = reference_pool_skip(y, m.conv.weight, m.conv.bias, m.pool_size, "full")
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    g = torch.randn(out.permute(order).shape, dtype=torch.float64)
    params = [y, *m.parameters()]
    got = torch.autograd.grad((out.permute(order) * g).sum(), params)  # the gradient reaches m permuted
    want = torch.autograd.grad((expected.permute(order) * g).sum(), params)
    for a, e in zip(got, want):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


def test_train_and_eval_agree_in_float64_under_autocast():
    m = _module(4, 2, 2)  # float64 weights
    y = torch.randn(2, 4, 6, 7, dtype=torch.float64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        trained = m(y)
        with torch.no_grad():
            evaluated = m(y)
    assert trained.dtype == evaluated.dtype == torch.float64
    torch.testing.assert_close(trained, evaluated, rtol=1e-12, atol=1e-12)


def test_pool_unpool_keeps_one_max_per_block_even_with_ties():
    y = torch.zeros(1, 1, 4, 4, dtype=torch.float64)  # every entry ties
    out = max_pool_unpool(y + 1, 2)
    assert (out != 0).sum() == 4  # one per 2x2 block, like MaxUnpool(MaxPool)
    torch.testing.assert_close(block_max_mask(y + 1, (2, 2)), (out != 0).double())


@pytest.mark.parametrize("dim,spatial,pool", [(1, (5,), 2), (2, (3, 5), 2), (3, (3, 2, 3), 2)])
def test_gradcheck(dim, spatial, pool):
    m = _module(2, pool, dim)
    y = torch.randn(1, 2, *spatial, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t), (y,))


@pytest.mark.parametrize("cls,dim", [(PoolSkip1d, 1), (PoolSkip2d, 2), (PoolSkip3d, 3)])
def test_dim_classes_and_conv_attribute(cls, dim):
    m = cls(4, 2)
    assert m.dim == dim and isinstance(m.conv, getattr(torch.nn, f"Conv{dim}d"))
    assert m.conv.in_channels == m.conv.out_channels == 4 and m.conv.bias is not None
    assert m.conv.kernel_size == (3,) * dim and m.conv.padding == (1,) * dim
    y = torch.randn(2, 4, *([5] * dim))
    assert m(y).shape == y.shape


def test_every_small_size_keeps_shape():
    m = PoolSkip(2, 4)
    for h in range(1, 10):
        for w in (1, 3, 8):
            y = torch.randn(1, 2, h, w)
            assert m(y).shape == y.shape


def test_pool_size_one_is_conv_plus_skip():
    m = PoolSkip(3, 1).double()
    y = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    torch.testing.assert_close(m(y), y + m.conv(y))


def test_zero_init_is_identity():
    m = PoolSkip(3, 2, zero_init=True)
    y = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(m(y), y)
    assert all(p.requires_grad for p in m.parameters())


def test_default_init_matches_pytorch_conv_default():
    m = PoolSkip(8, 2)
    assert m.conv.bias is not None and m.conv.weight.abs().sum() > 0
    assert m.conv.weight.abs().max() <= 1 / (8 * 9) ** 0.5 + 1e-6  # kaiming_uniform(a=sqrt 5) bound


def test_variant_structure():
    assert PoolSkip(3, variant="pool_skip").conv is None
    assert PoolSkip(3, variant="conv_skip").pools is False
    assert PoolSkip(3, variant="pool_conv").skip is False
    y = torch.randn(1, 3, 4, 4)
    m = PoolSkip(3, variant="pool_skip")
    torch.testing.assert_close(m(y), y + max_pool_unpool(y, 2))


def test_no_bias_option():
    assert PoolSkip(3, bias=False).conv.bias is None


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(channels=4, pool_size=0), "pool_size must be >= 1"),
        (dict(channels=4, pool_size=(2, 0)), "pool_size must be >= 1"),
        (dict(channels=4, pool_size=(2, 2, 2)), "pool_size must be an int or a tuple of 2 ints"),
        (dict(channels=4, kernel_size=2), "kernel_size must be odd"),
        (dict(channels=4, kernel_size=(3, 4)), "kernel_size must be odd"),
        (dict(channels=0), "channels must be a positive int"),
        (dict(channels=4, dim=4), "dim must be 1, 2 or 3"),
        (dict(channels=4, variant="bogus"), "variant must be one of"),
        (dict(channels=4, variant="pool_conv", zero_init=True), "would output zeros"),
        (dict(channels=4, variant="pool_skip", zero_init=True), "cannot start as the identity"),
        (dict(channels=6, groups=4), r"got groups=4 for channels=6 \(expected one of 1, 2, 3, 6, or 'depthwise'"),
        (dict(channels=6, groups=0), "groups must be a positive int dividing channels=6"),
        (dict(channels=6, groups="dw"), "groups must be a positive int dividing channels=6 or 'depthwise', got 'dw'"),
        (dict(channels=6, groups=True), "groups must be a positive int"),
        (dict(channels=6, groups=3, variant="pool_skip"), "no effect with variant='pool_skip'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PoolSkip(**kwargs)


def test_wrong_rank_and_channels_messages():
    m = PoolSkip(4, 2)
    with pytest.raises(ValueError, match=r"expects a 4-D input \(N, C, H, W\), got shape \(4, 5, 5\)"):
        m(torch.randn(4, 5, 5))
    with pytest.raises(ValueError, match=r"expects 4 channels, got shape \(1, 3, 5, 5\)"):
        m(torch.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match=r"expects a 5-D input \(N, C, D, H, W\)"):
        PoolSkip3d(4)(torch.randn(1, 4, 5, 5))


def test_module_pickles_and_traces():
    m = PoolSkip(3, 2).eval()
    y = torch.randn(1, 3, 5, 7)
    m2 = pickle.loads(pickle.dumps(m))
    torch.testing.assert_close(m2(y), m(y))
    traced = torch.jit.trace(m, y)
    torch.testing.assert_close(traced(y), m(y))


def test_public_api():
    for name in poolskip.__all__:
        assert hasattr(poolskip, name)


# ---------------------------------------------------------------------------------- grouped inner conv

GROUPED_CASES = [
    (1, (7,), 2, 2),
    (1, (6,), 3, "depthwise"),
    (2, (5, 7), 2, 2),
    (2, (4, 4), 2, "depthwise"),
    (2, (6, 9), (2, 3), 4),
    (3, (3, 4, 5), 2, "depthwise"),
    (3, (2, 3, 1), (2, 2, 1), 2),
]


@pytest.mark.parametrize("dim,spatial,pool,groups", GROUPED_CASES)
@pytest.mark.parametrize("variant", ["full", "conv_skip", "pool_conv"])
def test_grouped_matches_loop_reference_values_and_grads(dim, spatial, pool, groups, variant):
    m = _module(4, pool, dim, variant, groups=groups)
    g_int = 4 if groups == "depthwise" else groups
    assert m.groups == g_int and m.conv.groups == g_int
    assert m.conv.weight.shape == (4, 4 // g_int, *([3] * dim))
    y = torch.randn(2, 4, *spatial, dtype=torch.float64, requires_grad=True)
    out = m(y)
    expected = reference_pool_skip(y, m.conv.weight, m.conv.bias, m.pool_size, variant, groups=g_int)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(out)
    params = [y] + list(m.parameters())
    for a, e in zip(torch.autograd.grad(out, params, g), torch.autograd.grad(expected, params, g)):
        torch.testing.assert_close(a, e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dim,spatial", [(1, (5,)), (2, (3, 5)), (3, (3, 2, 3))])
def test_grouped_gradcheck(dim, spatial):
    m = _module(4, 2, dim, groups="depthwise")
    y = torch.randn(1, 4, *spatial, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: m(t), (y,))


def test_depthwise_is_cheap_and_says_so():
    dense, dw = PoolSkip(64, 2), PoolSkip(64, 2, groups="depthwise")
    assert sum(p.numel() for p in dense.parameters()) == 64 * 64 * 9 + 64
    assert sum(p.numel() for p in dw.parameters()) == 64 * 9 + 64
    assert "groups=64" in repr(dw) and "groups" not in repr(dense)
    assert PoolSkip(64, 2, groups=1).groups == 1
