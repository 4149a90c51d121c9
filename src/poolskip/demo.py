"""``poolskip demo``: a small CNN with and without Pool Skip on scikit-learn's bundled digits.

1,797 8x8 grey images of digits, a fixed stratified 75/25 split, a few epochs, a few seeds: it shows
the whole path (plain model -> ``convert`` -> train -> compare) in about a minute on two CPU cores.
It is a smoke demo on a toy dataset, not the paper's protocol; the ``train`` engine runs that.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from .convert import convert


def small_cnn(num_classes: int = 10, width: int = 32) -> nn.Module:
    """Three conv-BN-ReLU layers and a linear classifier, for 8x8 single-channel images."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(1, width),
        *block(width, width),
        nn.MaxPool2d(2),
        *block(width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )


def load_digits_tensors(test_fraction: float = 0.25, split_seed: int = 0):
    """(x_train, y_train, x_test, y_test): digits as float (N, 1, 8, 8) in [0, 1], a stratified split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError("the digits dataset needs scikit-learn: pip install 'poolskip[train]'") from e
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    g = torch.Generator().manual_seed(split_seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = (y == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = round(len(idx) * test_fraction)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    return x[tr], y[tr], x[te], y[te]


def train_once(model: nn.Module, data, epochs: int, seed: int, batch_size: int = 64, lr: float = 0.05) -> float:
    """Train with SGD + cosine schedule and light shift augmentation; returns the test top-1 error (%)."""
    x_tr, y_tr, x_te, y_te = data
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = epochs * ((len(x_tr) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x_tr), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            xb = _random_shift(x_tr[idx], g)
            loss = loss_fn(model(xb), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        wrong = (model(x_te).argmax(1) != y_te).sum().item()
    return 100.0 * wrong / len(y_te)


def _random_shift(x: torch.Tensor, g: torch.Generator, pad: int = 1) -> torch.Tensor:
    """Shift each image by up to ``pad`` pixels (pad + random crop), batched."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h))[:, :, None].expand(n, h, w)
    cols = (dx[:, None] + torch.arange(w))[:, None, :].expand(n, h, w)
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def run_demo(seeds: list[int], epochs: int, width: int = 32, log=print) -> list[dict]:
    """Train plain and Pool Skip (every conv, pool 2) for each seed; one result row per variant."""
    data = load_digits_tensors()
    rows = []
    for variant in ("plain", "pool_skip"):
        errors, seconds, params = [], [], 0
        for seed in seeds:
            torch.manual_seed(seed)
            model = small_cnn(width=width)
            if variant == "pool_skip":
                convert(model, "every_conv", pool_size=2)
            params = sum(p.numel() for p in model.parameters())
            t0 = time.perf_counter()
            errors.append(train_once(model, data, epochs, seed))
            seconds.append(time.perf_counter() - t0)
            log(f"  {variant:9s} seed {seed}: test error {errors[-1]:.2f}%  ({seconds[-1]:.1f}s)")
        rows.append(
            {
                "variant": variant,
                "params": params,
                "error_mean": statistics.fmean(errors),
                "error_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
                "seconds": statistics.fmean(seconds),
                "errors": errors,
            }
        )
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| model | params | test error % (mean ± std) | train s / run |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {r['params']:,} | {r['error_mean']:.2f} ± {r['error_std']:.2f} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="one run per seed (default: 0 1 2 3 4)"
    )
    p.add_argument("--epochs", type=int, default=12, help="epochs per run (default: 12)")
    p.add_argument("--width", type=int, default=32, help="channels of the first conv (default: 32)")


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise SystemExit(f"--epochs must be >= 1, got {args.epochs}")
    print(
        f"poolskip demo: small CNN on scikit-learn digits (8x8, 1347 train / 450 test), "
        f"{args.epochs} epochs, seeds {args.seeds}, CPU threads {torch.get_num_threads()}"
    )
    rows = run_demo(args.seeds, args.epochs, args.width)
    print()
    print(format_table(rows))
    print("\nA toy-scale smoke demo, not the paper's protocol (that is `poolskip train`).")
    return 0
