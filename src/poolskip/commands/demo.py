"""``poolskip demo``: a small CNN with and without Pool Skip on scikit-learn's bundled digits.

1,797 8x8 grey images of digits, a fixed stratified 75/25 split, a few epochs, a few seeds: it shows
the whole path (plain model -> ``convert`` -> train -> compare) in 71 s of CPU time on one thread (327 s
wall-clock on a 2-core machine shared with seven other jobs, load average 14; 1 Dec 2026).
The model is the registered ``small_cnn``; each run goes through the ``poolskip train`` engine (run
directories, checkpoints, metrics). It is a smoke demo on a toy dataset, not the paper's protocol.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from ..experiments.stats import format_mean_std, mean_std
from .common import UsageError


def demo_config(seed: int, epochs: int, width: int, pool_skip: bool) -> dict:
    """The engine config of one demo run: the built-in ``digits`` recipe with this seed, length and width."""
    from ..experiments.recipes import load_recipe

    return {
        **load_recipe("digits"),
        "model_kwargs": {"width": width},
        "pool_skip": "every_conv" if pool_skip else None,
        "epochs": epochs,
        "warmup_epochs": 0.15 * epochs,
        "seed": seed,
    }


def run_demo(seeds: list[int], epochs: int, width: int = 32, out_dir: str | None = None, log=print) -> list[dict]:
    """Train plain and Pool Skip (every conv, pool 2) for each seed with ``poolskip train``'s engine.

    Run directories go under ``out_dir`` (a temporary directory when None). One result row per variant.
    """
    from ..engine.config import make_config
    from ..engine.trainer import train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(out_dir or tmp)
        for variant in ("plain", "pool_skip"):
            errors, seconds, params = [], [], 0
            for seed in seeds:
                cfg = make_config(demo_config(seed, epochs, width, variant == "pool_skip"))
                t0 = time.perf_counter()
                summary = train(cfg, root / f"demo_{variant}" / f"seed{seed}", log=lambda *a, **k: None)
                seconds.append(time.perf_counter() - t0)
                errors.append(summary["final"])  # top-1 test error, %
                params = summary["params"]
                log(f"  {variant:9s} seed {seed}: test error {errors[-1]:.2f}%  ({seconds[-1]:.1f}s)")
            mean, std = mean_std(errors)  # one seed: std None
            rows.append(
                {
                    "variant": variant,
                    "params": params,
                    "error_mean": mean,
                    "error_std": std,
                    "seconds": statistics.fmean(seconds),
                    "errors": errors,
                }
            )
    return rows


def format_table(rows: list[dict]) -> str:
    lines = ["| model | params | test error % (mean ± std) | train s / run |", "|---|---:|---:|---:|"]
    for r in rows:
        error = format_mean_std(r["error_mean"], r["error_std"])
        lines.append(f"| {r['variant']} | {r['params']:,} | {error} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="one run per seed (default: 0 1 2 3 4)"
    )
    p.add_argument("--epochs", type=int, default=12, help="epochs per run (default: 12)")
    p.add_argument("--width", type=int, default=32, help="channels of the first conv (default: 32)")
    p.add_argument("--out-dir", help="keep the run directories here (default: a temporary directory)")


def run(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {args.epochs}")
    print(
        f"poolskip demo: small CNN on scikit-learn digits (8x8, 1347 train / 450 test), "
        f"{args.epochs} epochs, seeds {args.seeds}, 1 CPU thread"
    )
    rows = run_demo(args.seeds, args.epochs, args.width, args.out_dir)
    print()
    print(format_table(rows))
    print("\nA toy-scale smoke demo, not the paper's protocol (that is `poolskip train`).")
    return 0
