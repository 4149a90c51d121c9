"""Op-level benchmark: Pool Skip's pool -> unpool -> conv, forward + backward, at ResNet18-CIFAR stage shapes.

Three ways of computing the same thing (for the same input and gradient), timed in the same run:
``ours`` (the memory-lean autograd op, ``poolskip.functional.pool_unpool_conv``), ``plain`` (the paper's
MaxPool -> MaxUnpool -> Conv with stock autograd, ``pool_unpool_conv_reference``) and ``conv`` (the
inner 3x3 convolution alone, on the dense input: the cost Pool Skip cannot avoid). Also the bytes each
keeps for backward (activations only; the weight is kept as a parameter anyway).

    python benchmarks/bench_op.py                  # batch 32, 2D and 3D, pool 2 and 4
    python benchmarks/bench_op.py --batch 128 --dims 2
    python benchmarks/bench_op.py --profile --threads 1   # where ours spends its time, per aten op
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from common import interleaved_min_times, machine, markdown_table, saved_bytes
from poolskip.functional import pool_unpool_conv, pool_unpool_conv_reference

# ResNet18-CIFAR stages (channels, spatial size); 3D: a volumetric analogue small enough for a CPU
SHAPES = {2: [(64, 32), (128, 16), (256, 8), (512, 4)], 3: [(32, 16), (64, 8), (128, 4)]}
CONV = {2: F.conv2d, 3: F.conv3d}


def bench_shape(batch: int, channels: int, size: int, dim: int, pool: int, rounds: int, number: int) -> list:
    g = torch.Generator().manual_seed(0)
    y = torch.randn(batch, channels, *([size] * dim), generator=g).requires_grad_()
    w = (torch.randn(channels, channels, *([3] * dim), generator=g) * 0.02).requires_grad_()
    b = torch.zeros(channels).requires_grad_()
    grad = torch.randn(y.shape, generator=g)
    conv = CONV[dim]
    ops = {
        "ours": lambda: pool_unpool_conv(y, w, b, pool),
        "plain": lambda: pool_unpool_conv_reference(y, w, b, pool),
        "conv": lambda: conv(y, w, b, 1, 1),
    }

    def step(op):
        def run():
            y.grad = w.grad = b.grad = None
            op().backward(grad)

        return run

    times = interleaved_min_times({k: step(op) for k, op in ops.items()}, rounds, number)
    mem = {k: saved_bytes(op, exclude=(w, b)) for k, op in ops.items()}
    mib = lambda n: f"{n / 2**20:.2f}"
    return [
        f"{dim}D",
        f"{batch}x{channels}x{size}^{dim}",
        pool,
        f"{times['conv'] * 1e3:.1f}",
        f"{times['ours'] * 1e3:.1f}",
        f"{times['plain'] * 1e3:.1f}",
        f"**{times['ours'] / times['conv']:.2f}**",
        f"{times['plain'] / times['conv']:.2f}",
        mib(mem["ours"]),
        mib(mem["plain"]),
        f"**{mem['ours'] / mem['plain']:.3f}**",
    ]


def profile(batch: int, channels: int, size: int, pool: int, steps: int = 3) -> None:
    """Print ``torch.profiler``'s per-op table for ours (2D), forward + backward."""
    y = torch.randn(batch, channels, size, size).requires_grad_()
    w = (torch.randn(channels, channels, 3, 3) * 0.02).requires_grad_()
    b = torch.zeros(channels).requires_grad_()
    grad = torch.randn(y.shape)
    pool_unpool_conv(y, w, b, pool).backward(grad)  # warm-up
    with torch.profiler.profile() as prof:
        for _ in range(steps):
            pool_unpool_conv(y, w, b, pool).backward(grad)
    print(f"{steps} fwd+bwd steps of ours at {batch}x{channels}x{size}^2, pool {pool}; {machine()}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batch-3d", type=int, default=4)
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 3], choices=[2, 3])
    parser.add_argument("--pools", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds; the best round counts")
    parser.add_argument("--number", type=int, default=2, help="fwd+bwd steps per round")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--shape", nargs=2, type=int, action="append", metavar=("C", "SIZE"), help="instead of the stages; repeatable"
    )
    parser.add_argument("--profile", action="store_true", help="profile ours at the first 2D shape instead")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        return profile(args.batch, *SHAPES[2][0], args.pools[0])

    rows = []
    for dim in args.dims:
        for channels, size in args.shape or SHAPES[dim]:
            for pool in args.pools:
                batch = args.batch if dim == 2 else args.batch_3d
                rows.append(bench_shape(batch, channels, size, dim, pool, args.rounds, args.number))
                print(markdown_table(HEADER, rows[-1:]).splitlines()[-1], flush=True)
    print(f"\nfwd+bwd, best of {args.rounds} rounds x {args.number} steps; {machine()}\n")
    print(markdown_table(HEADER, rows))


HEADER = [
    "dim",
    "N x C x size",
    "pool",
    "conv ms",
    "ours ms",
    "plain ms",
    "ours / conv",
    "plain / conv",
    "saved MiB ours",
    "saved MiB plain",
    "saved ours / plain",
]

if __name__ == "__main__":
    main()
