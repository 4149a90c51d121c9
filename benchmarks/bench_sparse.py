"""Stretch experiment: does exploiting the sparsity of the unpooled map beat the dense inner conv?

At pool size e only one input in e^d is non-zero, and which one differs per channel, so the sparsity
is unstructured across channels: a dense GEMM cannot skip it. This script times the one sparse route
stock PyTorch offers on CPU, the convolution as ``im2col(unpooled) @ W^T`` with the im2col matrix built
directly in CSR-friendly COO form from the block maxima (nnz = N * C * blocks * k^2, i.e. e^d times
fewer multiply-adds than the dense conv), against the dense forward conv of the same unpooled map.
Forward only: if the forward does not pay, the two backward products will not either.

    python benchmarks/bench_sparse.py
"""

from __future__ import annotations

import argparse
import itertools
from functools import partial

import torch
import torch.nn.functional as F

from common import interleaved_min_times, machine, markdown_table
from poolskip.functional import block_argmax, max_pool_unpool


def sparse_im2col(pooled: torch.Tensor, indices: torch.Tensor, k: int, spatial) -> torch.Tensor:
    """The (N*H*W, C*k*k) im2col matrix of the unpooled map, in CSR, built from its block maxima."""
    n, c = pooled.shape[:2]
    h, w = spatial
    taps = list(itertools.product(range(-(k // 2), k // 2 + 1), repeat=2))
    rows_in, cols_in = indices // w, indices % w
    batch = torch.arange(n).view(n, 1, 1, 1)
    channel = torch.arange(c).view(1, c, 1, 1)
    row_idx, col_idx, values = [], [], []
    for t, (dy, dx) in enumerate(taps):  # out[q] += W[:, c, tap] * x[q + tap]  =>  q = p - tap
        r, s = rows_in - dy, cols_in - dx
        ok = (r >= 0) & (r < h) & (s >= 0) & (s < w)
        row_idx.append(((batch * h + r) * w + s)[ok])
        col_idx.append((channel * len(taps) + t).expand_as(r)[ok])
        values.append(pooled[ok])
    return torch.sparse_coo_tensor(
        torch.stack([torch.cat(row_idx), torch.cat(col_idx)]), torch.cat(values), (n * h * w, c * len(taps))
    ).to_sparse_csr()


def sparse_mm(im2col: torch.Tensor, weight: torch.Tensor, shape) -> torch.Tensor:
    """The conv as CSR @ dense: (N*H*W, C*k*k) @ (C*k*k, C_out), back to (N, C_out, H, W)."""
    n, h, w = shape
    out = torch.sparse.mm(im2col, weight.reshape(weight.shape[0], -1).t())
    return out.view(n, h, w, -1).permute(0, 3, 1, 2)


def sparse_conv2d(pooled: torch.Tensor, indices: torch.Tensor, weight: torch.Tensor, spatial) -> torch.Tensor:
    """3x3 'same' conv of the unpooled map from its block maxima, as sparse(im2col) @ dense(weight)."""
    im2col = sparse_im2col(pooled, indices, weight.shape[-1], spatial)
    return sparse_mm(im2col, weight, (pooled.shape[0], *spatial))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.sparse.check_sparse_tensor_invariants.disable()  # built by us, valid by construction
    rows = []
    for channels, size in [(64, 32), (128, 16), (256, 8), (512, 4)]:
        g = torch.Generator().manual_seed(0)
        y = torch.randn(args.batch, channels, size, size, generator=g)
        weight = torch.randn(channels, channels, 3, 3, generator=g) * 0.02
        pooled, indices, _ = block_argmax(y, args.pool)
        unpooled = max_pool_unpool(y, args.pool)
        dense = F.conv2d(unpooled, weight, None, 1, 1)
        sparse = sparse_conv2d(pooled, indices, weight, (size, size))
        torch.testing.assert_close(sparse, dense, atol=1e-4, rtol=1e-4)
        times = interleaved_min_times(
            {
                "dense": partial(F.conv2d, unpooled, weight, None, 1, 1),
                "sparse": partial(sparse_conv2d, pooled, indices, weight, (size, size)),
                "mm": partial(
                    sparse_mm, sparse_im2col(pooled, indices, 3, (size, size)), weight, (y.shape[0], size, size)
                ),
            },
            args.rounds,
            1,
        )
        rows.append(
            [
                f"{args.batch}x{channels}x{size}^2",
                args.pool,
                f"{times['dense'] * 1e3:.1f}",
                f"{times['sparse'] * 1e3:.1f}",
                f"**{times['sparse'] / times['dense']:.2f}**",
                f"{times['mm'] / times['dense']:.2f}",
            ]
        )
    print(f"forward only, best of {args.rounds} rounds; {machine()}\n")
    print(
        markdown_table(
            ["N x C x size", "pool", "dense conv ms", "sparse ms", "sparse / dense", "CSR product alone / dense"], rows
        )
    )


if __name__ == "__main__":
    main()
