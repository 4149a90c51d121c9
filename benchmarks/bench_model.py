"""Model-level benchmark: one SGD train step of a CIFAR ResNet, plain vs Pool Skip (plain formulation) vs ours.

Variants: ``plain`` (no Pool Skip), ``paper-op`` (Pool Skip where the paper puts it, computed with the
paper's MaxPool -> MaxUnpool -> Conv and stock autograd) and ``ours`` (same model and parameters, the
memory-lean autograd op). Measured per variant:

- step time: forward + backward + SGD (momentum) step, all variants taking turns in one process, best
  of ``--rounds`` (the machine may be shared);
- saved MiB: bytes of the distinct tensors autograd keeps for backward in one step, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (parameters excluded);
- peak MiB: on CUDA ``torch.cuda.max_memory_allocated``; on CPU (Linux) the peak resident set size of a
  fresh process (``VmHWM``, reset through ``/proc/self/clear_refs`` right before the model is built) minus
  its size at that moment: parameters, gradients, optimizer state, activations and workspace over two
  train steps, plus allocator slack.

    python benchmarks/bench_model.py                                   # resnet18 (pool 2), batch 32
    python benchmarks/bench_model.py --model resnet50 --batch 8 --rounds 1   # bottleneck, pool 4
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator

import torch
import torch.nn.functional as F

import poolskip.module
from common import interleaved_min_times, machine, markdown_table, saved_bytes
from poolskip.functional import pool_unpool_conv, pool_unpool_conv_reference
from poolskip.models import create_model

VARIANTS = ("plain", "paper-op", "ours")


@contextlib.contextmanager
def formulation(variant: str) -> Iterator[None]:
    """Make PoolSkip modules compute with the paper's formulation (``paper-op``) or ours, for a while."""
    poolskip.module.pool_unpool_conv = pool_unpool_conv_reference if variant == "paper-op" else pool_unpool_conv
    try:
        yield
    finally:
        poolskip.module.pool_unpool_conv = pool_unpool_conv


def build(name: str, variant: str, device: str) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=100, pool_skip=None if variant == "plain" else True).to(device)
    return model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def train_step(model, optimizer, x, target, variant: str) -> None:
    with formulation(variant):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), target).backward()
        optimizer.step()


def batch(size: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(size, 3, 32, 32, generator=g).to(device), torch.randint(0, 100, (size,), generator=g).to(device)


def peak_worker(name: str, variant: str, size: int, device: str) -> None:
    """Run in a fresh process: two train steps, then print the peak memory growth as JSON."""
    x, target = batch(size, device)
    before = _reset_peak_rss()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    model, optimizer = build(name, variant, device)
    for _ in range(2):  # the second step has the optimizer state allocated
        train_step(model, optimizer, x, target, variant)
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = _proc_status("VmHWM") - before
    print(json.dumps({"peak": peak}))


def _proc_status(field: str) -> int:
    """A size field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _reset_peak_rss() -> int:
    """Reset the process's peak RSS to its current RSS (Linux: write 5 to clear_refs); return that RSS."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _proc_status("VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; the best round counts")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--peak-worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_worker:
        return peak_worker(args.model, args.peak_worker, args.batch, args.device)

    x, target = batch(args.batch, args.device)
    built = {v: build(args.model, v, args.device) for v in VARIANTS}
    params = {v: sum(p.numel() for p in m.parameters()) for v, (m, _) in built.items()}
    saved = {
        v: saved_bytes(lambda m=m, v=v: F.cross_entropy(_forward(m, x, v), target), exclude=list(m.parameters()))
        for v, (m, _) in built.items()
    }
    steps = {v: (lambda m=m, o=o, v=v: train_step(m, o, x, target, v)) for v, (m, o) in built.items()}
    times = interleaved_min_times(steps, args.rounds, 1)
    del built, steps
    peaks = {}
    for v in VARIANTS:
        cmd = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch)]
        out = subprocess.run(cmd + ["--device", args.device, "--peak-worker", v], capture_output=True, text=True)
        if out.returncode:
            raise RuntimeError(f"peak-memory worker for {v} failed:\n{out.stderr}")
        peaks[v] = json.loads(out.stdout.strip().splitlines()[-1])["peak"]

    mib = lambda n: f"{n / 2**20:.0f}"
    rows = [
        [
            f"{args.model} {v}",
            f"{params[v] / 1e6:.1f}M",
            f"{times[v] * 1e3:.0f}",
            f"{times[v] / times['plain']:.2f}",
            mib(saved[v]),
            f"{saved[v] / saved['plain']:.2f}",
            mib(peaks[v]),
            f"{peaks[v] / peaks['plain']:.2f}",
        ]
        for v in VARIANTS
    ]
    header = ["model", "params", "step ms", "time / plain", "saved MiB", "saved / plain", "peak MiB", "peak / plain"]
    print(f"batch {args.batch}, {args.device}, best of {args.rounds} rounds; {machine()}\n")
    print(markdown_table(header, rows))


def _forward(model, x, variant):
    with formulation(variant):
        return model(x)


if __name__ == "__main__":
    main()
