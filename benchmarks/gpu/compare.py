"""ResNet18 plain vs Pool Skip on real CIFAR-10, short one-cycle training on one GPU (issue 12, item 5).

The most informative comparison that fits a 10-minute GPU slot: the paper's Table 1 network (ResNet18,
Pool Skip in the official placement, pool 2) trained from scratch on the CIFAR-10 copy, airbench-style:
the images decoded once into a uint8 tensor cache, kept on the GPU, augmented there in batches (random
crop with 4-pixel padding, horizontal flip), bf16 autocast, channels_last, SGD with Nesterov momentum
and a one-cycle schedule. It measures images/s (training and evaluation, plain vs Pool Skip, timed in
the same process on the same card) and the final test error of as many seeds per variant as fit the
time budget (the seeds alternate plain / Pool Skip, so a short budget still gives both).

Not the paper's protocol (200 epochs of a step schedule, 5 seeds): a short schedule, stated as such.

    python benchmarks/gpu/compare.py --data-dir ../shared/data/cifar10-jpg --out gpu-results
    python benchmarks/gpu/compare.py --data-dir DIR --out OUT --tiny     # CPU smoke test of the logic
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from poolskip.models import create_model

MEAN = torch.tensor([125.3, 123.0, 113.9]) / 255
STD = torch.tensor([63.0, 62.1, 66.7]) / 255


# ------------------------------------------------------------------------------------------ data


def _decode(path: str) -> torch.Tensor:
    with Image.open(path) as im:
        rgb = im.convert("RGB")
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3).permute(2, 0, 1)


def load_split(root: Path, limit_per_class: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """An ImageFolder split (``root/<class>/*.jpg``) as uint8 images (N, 3, H, W) and int64 labels."""
    if not root.is_dir():
        raise SystemExit(f"{root}: not a folder (expected an ImageFolder split: {root}/<class>/<image>)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise SystemExit(f"{root}: no class folders (expected an ImageFolder split: {root}/<class>/<image>)")
    files, labels = [], []
    for i, c in enumerate(classes):
        names = sorted(os.listdir(root / c))[:limit_per_class]
        files += [str(root / c / n) for n in names]
        labels += [i] * len(names)
    with ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 2) * 2)) as pool:
        images = list(pool.map(_decode, files, chunksize=256))
    return torch.stack(images), torch.tensor(labels), classes


def tensor_cache(data_dir: Path, cache: Path, limit_per_class: int | None) -> dict[str, torch.Tensor]:
    """The decoded dataset, from ``cache`` when it exists (decoding 60k JPEGs once takes a while)."""
    if cache.is_file():
        return torch.load(cache, weights_only=True)
    t = time.time()
    train_x, train_y, classes = load_split(data_dir / "train", limit_per_class)
    test_x, test_y, test_classes = load_split(data_dir / "test", limit_per_class)
    if classes != test_classes:
        raise SystemExit(f"{data_dir}: train and test class folders differ: {classes} vs {test_classes}")
    data = {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    torch.save(data, tmp)
    tmp.replace(cache)
    print(f"decoded {len(train_x)} + {len(test_x)} images from {data_dir} in {time.time() - t:.0f} s -> {cache}")
    return data


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crops of the 4-pixel zero-padded batch back to its size, and random horizontal flips."""
    n, c, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), device=x.device, generator=generator)
    dx = torch.randint(0, 9, (n,), device=x.device, generator=generator)
    iy = (dy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 8)
    rows = padded.gather(2, iy)
    ix = (dx[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
    out = rows.gather(3, ix)
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)


def normalise(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    mean, std = MEAN.to(x.device).view(1, 3, 1, 1), STD.to(x.device).view(1, 3, 1, 1)
    out = (x.float() / 255 - mean) / std
    return out.contiguous(memory_format=torch.channels_last) if channels_last else out


# ------------------------------------------------------------------------------------------ training


def build(pool_skip: bool, width: int, device: torch.device, channels_last: bool) -> torch.nn.Module:
    net = create_model("resnet18", 10, pool_skip=True if pool_skip else None, width=width).to(device)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def train_one(
    data: dict[str, torch.Tensor], pool_skip: bool, seed: int, args: argparse.Namespace, device: torch.device
) -> dict:
    """One training run; returns its final test error, images/s (train, eval) and peak memory."""
    torch.manual_seed(seed)
    net = build(pool_skip, args.width, device, args.channels_last)
    gen = torch.Generator(device=device).manual_seed(seed)
    train_x, train_y = data["train_x"], data["train_y"]
    n = len(train_x)
    steps_per_epoch = n // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit(f"{n} training images are fewer than one batch of {args.batch_size}")
    total = steps_per_epoch * args.epochs
    decay, no_decay = [], []
    for p in net.parameters():
        (no_decay if p.dim() <= 1 else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=total, pct_start=0.25)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    seen = 0
    net.train()
    for epoch in range(args.epochs):
        order = torch.randperm(n, device=device, generator=gen)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            x = normalise(augment(train_x[idx], gen), args.channels_last)
            with amp:
                loss = F.cross_entropy(net(x), train_y[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            seen += len(idx)
        if not math.isfinite(loss.item()):
            raise RuntimeError(f"non-finite loss at epoch {epoch} (pool_skip={pool_skip}, seed={seed})")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_s = time.perf_counter() - t0
    error, eval_ips = evaluate(net, data, args, device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {
        "variant": "pool_skip" if pool_skip else "plain",
        "seed": seed,
        "test_error": error,
        "final_loss": loss.item(),
        "train_seconds": train_s,
        "train_images_per_s": seen / train_s,
        "eval_images_per_s": eval_ips,
        "peak_memory_bytes": peak,
        "params": sum(p.numel() for p in net.parameters()),
    }


@torch.no_grad()
def evaluate(net: torch.nn.Module, data: dict, args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """Top-1 test error (%) and evaluation images/s."""
    net.eval()
    x_all, y_all = data["test_x"], data["test_y"]
    wrong = 0
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for i in range(0, len(x_all), 1000):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            logits = net(normalise(x_all[i : i + 1000], args.channels_last))
        wrong += (logits.argmax(1) != y_all[i : i + 1000]).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 100.0 * wrong / len(x_all), len(x_all) / (time.perf_counter() - t)


def throughput(data: dict, pool_skip: bool, args: argparse.Namespace, device: torch.device, steps: int) -> float:
    """Training images/s over ``steps`` steps after a warm-up (no schedule; the cost of one step)."""
    net = build(pool_skip, args.width, device, args.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    gen = torch.Generator(device=device).manual_seed(0)
    idx = torch.arange(args.batch_size, device=device) % len(data["train_x"])

    def step():
        x = normalise(augment(data["train_x"][idx], gen), args.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            loss = F.cross_entropy(net(x), data["train_y"][idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3 if device.type == "cuda" else 1):  # warm-up (cuDNN autotuning, allocator)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * args.batch_size / (time.perf_counter() - t)


# ------------------------------------------------------------------------------------------ report


def table(results: list[dict], speed: dict[str, float], args: argparse.Namespace, device_name: str) -> str:
    lines = [
        f"# ResNet18 (width {args.width}) plain vs Pool Skip, CIFAR-10 copy, {args.epochs} epochs one-cycle",
        "",
        f"Device: {device_name}; torch {torch.__version__}; AMP bf16: {args.amp}; channels_last: "
        f"{args.channels_last}; batch {args.batch_size}; lr {args.lr} (one-cycle); data {args.data_dir}. "
        "A short schedule, not the paper's 200-epoch protocol.",
        "",
        "| variant | seeds | test error (%) mean ± std | per seed | params | train img/s | eval img/s | peak mem |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for variant in ("plain", "pool_skip"):
        rows = [r for r in results if r["variant"] == variant]
        if not rows:
            continue
        errs = [r["test_error"] for r in rows]
        std = f" ± {statistics.stdev(errs):.2f}" if len(errs) > 1 else ""
        peak = rows[0]["peak_memory_bytes"]
        lines.append(
            f"| {variant} | {len(rows)} | {statistics.fmean(errs):.2f}{std} | "
            f"{', '.join(f'{e:.2f}' for e in errs)} | {rows[0]['params']:,} | "
            f"{statistics.fmean(r['train_images_per_s'] for r in rows):,.0f} | "
            f"{statistics.fmean(r['eval_images_per_s'] for r in rows):,.0f} | "
            f"{'—' if peak is None else f'{peak / 2**30:.2f} GiB'} |"
        )
    if speed:
        ratio = speed["plain"] / speed["pool_skip"]
        lines += [
            "",
            f"Training throughput (steady state, same process): plain {speed['plain']:,.0f} img/s, Pool Skip "
            f"{speed['pool_skip']:,.0f} img/s: Pool Skip takes {ratio:.2f}x the time per image.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, type=Path, help="CIFAR-10 as an ImageFolder (train/, test/)")
    p.add_argument("--out", required=True, type=Path, help="output folder: table.md, results.json, log")
    p.add_argument("--cache", type=Path, help="tensor cache file (default: OUT/cifar10-uint8.pt)")
    p.add_argument("--epochs", type=int, default=18)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--width", type=int, default=64, help="ResNet18 base width (64 = the paper's network)")
    p.add_argument("--max-seeds", type=int, default=3, help="seeds per variant at most")
    p.add_argument("--budget", type=float, default=360.0, help="seconds of training for all runs together")
    p.add_argument("--no-amp", dest="amp", action="store_false")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--tiny", action="store_true", help="CPU smoke test: width 4, 32 images per class, 1 epoch")
    args = p.parse_args(argv)

    if args.tiny:  # channels_last off: on a busy CPU its conv backward can crawl, and the CPU is not what it tests
        args.width, args.epochs, args.batch_size, args.max_seeds, args.amp, args.channels_last = (
            4,
            1,
            8,
            1,
            False,
            False,
        )
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor()})"
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or args.out / ("tiny-uint8.pt" if args.tiny else "cifar10-uint8.pt")
    data = tensor_cache(args.data_dir, cache, 16 if args.tiny else None)
    data = {k: v.to(device) for k, v in data.items()}
    print(f"{device_name}: {len(data['train_x'])} training, {len(data['test_x'])} test images")

    speed = {
        v: throughput(data, v == "pool_skip", args, device, 3 if args.tiny else 20) for v in ("plain", "pool_skip")
    }
    speed = {"plain": speed["plain"], "pool_skip": speed["pool_skip"]}
    per_image = {v: 1 / s for v, s in speed.items()}
    images = len(data["train_x"]) // args.batch_size * args.batch_size * args.epochs
    pair_s = images * (per_image["plain"] + per_image["pool_skip"]) * 1.1  # + evaluation and slack
    seeds = max(1, min(args.max_seeds, int(args.budget // pair_s)))
    print(
        f"throughput plain {speed['plain']:,.0f} img/s, Pool Skip {speed['pool_skip']:,.0f} img/s; "
        f"one plain + one Pool Skip run ~{pair_s:.0f} s -> {seeds} seed(s) per variant in {args.budget:.0f} s"
    )

    results = []
    for seed in range(seeds):
        for variant in ("plain", "pool_skip"):
            r = train_one(data, variant == "pool_skip", seed, args, device)
            results.append(r)
            print(json.dumps(r))
            (args.out / "results.json").write_text(
                json.dumps(
                    {
                        "args": {k: str(v) for k, v in vars(args).items()},
                        "device": device_name,
                        "throughput": speed,
                        "runs": results,
                    },
                    indent=1,
                )
            )
    md = table(results, speed, args, device_name)
    (args.out / "table.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
