"""The GPU run: CIFAR MobileNet and ResNet18 on all of CIFAR-10, plain vs Pool Skip vs plain widened to Pool
Skip's MACs, 2 seeds, plus the CUDA tests and images/s; sized for 10 minutes on one H100/H200.

The paper's Table 1 networks at full width (MobileNet: the paper's largest CIFAR-10 effect; Pool Skip after
every conv, pool 2; ResNet18: the official placement), each against the plain network widened until its
multiply-adds match Pool Skip's (``poolskip.experiments.controls.match_width``: MobileNet 32 -> 143, ResNet18
64 -> 93), so the question is whether Pool Skip beats a plain network that costs the same. Trained from
scratch airbench-style: the images decoded once into a uint8 tensor kept on the GPU, augmented there in
batches (4-pixel padded random crop, horizontal flip), bf16 autocast, channels_last, SGD with Nesterov
momentum and a one-cycle schedule. The epochs are chosen from the measured images/s so that every run
fits the training budget (all runs get the same epochs); no run starts after ``--deadline``.

Not the paper's protocol (200 epochs of a step schedule, 5 seeds): a short schedule, stated in every output.

    # here, once: the CIFAR-10 ImageFolder copy -> one 18 MB file (its JPEG bytes, zlib-compressed, lossless)
    python benchmarks/gpu/compare.py pack --data-dir ../shared/data/cifar10-jpg --out .device/cifar10
    # on the GPU machine (benchmarks/gpu/README.md says how to send it there and what comes back)
    python benchmarks/gpu/compare.py run --data .device/cifar10/cifar10-jpeg.pt --out OUT --runs-dir /tmp/runs --tar
    # the same logic on the CPU at tiny size (what CI checks)
    python benchmarks/gpu/compare.py run --data PACKED_OR_IMAGEFOLDER --out OUT --tiny

``run`` writes into ``--out``: ``env.txt``, ``cuda-tests.txt``, ``table.md``, ``results.json`` and, with
``--tar``, ``runs.tar.gz`` holding every run's folder (``<model>-<variant>/seed<k>/`` with ``config.json``,
``metrics.jsonl`` one line per epoch, ``summary.json``); without ``--tar`` the run folders stay under
``--runs-dir`` (default ``OUT/runs``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from poolskip.experiments.controls import cost, match_width
from poolskip.models import create_model

MEAN = torch.tensor([125.3, 123.0, 113.9]) / 255
STD = torch.tensor([63.0, 62.1, 66.7]) / 255
REPO = Path(__file__).resolve().parents[2]
PACKED_NAME = "cifar10-jpeg.pt"
#: the CUDA tests: every test that skips without a GPU (the op's on its own; a run trained and resumed on CUDA)
CUDA_TESTS = ["tests/test_functional.py", "tests/test_engine_resume.py", "-k", "cuda"]


# ------------------------------------------------------------------------------------------ data


def _files(split_dir: Path, limit_per_class: int | None) -> tuple[list[Path], list[int], list[str]]:
    if not split_dir.is_dir():
        raise SystemExit(f"{split_dir}: not a folder (expected an ImageFolder split: {split_dir}/<class>/<image>)")
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    if not classes:
        raise SystemExit(f"{split_dir}: no class folders (expected an ImageFolder split: {split_dir}/<class>/<image>)")
    files, labels = [], []
    for i, c in enumerate(classes):
        names = sorted(os.listdir(split_dir / c))[:limit_per_class]
        files += [split_dir / c / n for n in names]
        labels += [i] * len(names)
    return files, labels, classes


def pack(data_dir: Path, out: Path, limit_per_class: int | None = None) -> Path:
    """An ImageFolder copy of CIFAR-10 (``train/``, ``test/``) -> ``out/cifar10-jpeg.pt``: each split's files'
    bytes as they are (no re-encoding), concatenated and zlib-compressed, with offsets and labels."""
    data: dict[str, object] = {"format": "poolskip-jpeg-zlib-1"}
    classes = None
    for split in ("train", "test"):
        files, labels, split_classes = _files(data_dir / split, limit_per_class)
        if classes is not None and split_classes != classes:
            raise SystemExit(f"{data_dir}: train and test class folders differ: {classes} vs {split_classes}")
        classes = split_classes
        blobs = [f.read_bytes() for f in files]
        sizes = torch.tensor([len(b) for b in blobs], dtype=torch.int64)
        data[f"{split}_zlib"] = torch.frombuffer(bytearray(zlib.compress(b"".join(blobs), 9)), dtype=torch.uint8)
        data[f"{split}_offsets"] = torch.cat([torch.zeros(1, dtype=torch.int64), sizes.cumsum(0)])
        data[f"{split}_y"] = torch.tensor(labels, dtype=torch.int64)
    data["classes"] = classes
    out.mkdir(parents=True, exist_ok=True)
    path = out / PACKED_NAME
    torch.save(data, path)
    return path


def _decode(blob: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(blob)) as im:
        rgb = im.convert("RGB")
    return torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8).view(rgb.height, rgb.width, 3).permute(2, 0, 1)


def load(path: Path, limit_per_class: int | None = None) -> dict[str, torch.Tensor]:
    """``train_x``/``test_x`` (uint8, N x 3 x 32 x 32) and ``train_y``/``test_y`` from a packed file (:func:`pack`)
    or an ImageFolder copy, decoded with PIL as torchvision's ImageFolder would."""
    out: dict[str, torch.Tensor] = {}
    workers = min(32, (os.cpu_count() or 2) * 2)
    if path.is_file():
        packed = torch.load(path, weights_only=True)
        if packed.get("format") != "poolskip-jpeg-zlib-1":
            raise SystemExit(f"{path}: not a file written by `compare.py pack`")
        for split in ("train", "test"):
            raw = zlib.decompress(packed[f"{split}_zlib"].numpy().tobytes())
            offsets = packed[f"{split}_offsets"].tolist()
            blobs = [raw[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            with ThreadPoolExecutor(workers) as pool:
                out[f"{split}_x"] = torch.stack(list(pool.map(_decode, blobs, chunksize=256)))
            out[f"{split}_y"] = packed[f"{split}_y"]
        return out
    for split in ("train", "test"):
        files, labels, _ = _files(path / split, limit_per_class)
        with ThreadPoolExecutor(workers) as pool:
            out[f"{split}_x"] = torch.stack(list(pool.map(lambda f: _decode(f.read_bytes()), files, chunksize=256)))
        out[f"{split}_y"] = torch.tensor(labels, dtype=torch.int64)
    return out


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


# ------------------------------------------------------------------------------------------ networks


@dataclass(frozen=True)
class Variant:
    """One network of the comparison: a model, Pool Skip or not, a width; its cost per 32x32 image."""

    model: str
    variant: str  # plain | pool_skip | wide
    width: int
    pool_skip: bool
    params: int
    macs: int

    @property
    def name(self) -> str:
        return f"{self.model}-{self.variant}"


def variants(models: list[str], widths: dict[str, int]) -> list[Variant]:
    """Plain, Pool Skip (the paper's placement) and plain widened to Pool Skip's MACs, for each model."""
    out = []
    for m in models:
        w = widths[m]
        wide, wide_cost, ps_cost = match_width(m, True, {"width": w})
        plain_cost = cost(m, None, {"width": w})
        out += [
            Variant(m, "plain", w, False, plain_cost.params, plain_cost.macs),
            Variant(m, "pool_skip", w, True, ps_cost.params, ps_cost.macs),
            Variant(m, "wide", wide, False, wide_cost.params, wide_cost.macs),
        ]
    return out


def build(v: Variant, device: torch.device, channels_last: bool) -> torch.nn.Module:
    net = create_model(v.model, 10, pool_skip=True if v.pool_skip else None, width=v.width).to(device)
    return net.to(memory_format=torch.channels_last) if channels_last else net


# ------------------------------------------------------------------------------------------ training


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(data: dict, v: Variant, args: argparse.Namespace, device: torch.device, steps: int) -> float:
    """Training images/s of ``v`` over ``steps`` steps after a warm-up (the cost of one step, no schedule)."""
    net = build(v, device, args.channels_last).train()
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
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * args.batch_size / (time.perf_counter() - t)


@torch.no_grad()
def evaluate(net: torch.nn.Module, data: dict, args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    """Top-1 test error (%) and evaluation images/s."""
    net.eval()
    x_all, y_all = data["test_x"], data["test_y"]
    wrong = 0
    _sync(device)
    t = time.perf_counter()
    for i in range(0, len(x_all), 1000):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
            logits = net(normalise(x_all[i : i + 1000], args.channels_last))
        wrong += (logits.argmax(1) != y_all[i : i + 1000]).sum().item()
    _sync(device)
    net.train()
    return 100.0 * wrong / len(x_all), len(x_all) / (time.perf_counter() - t)


def train_one(data: dict, v: Variant, seed: int, epochs: int, args: argparse.Namespace, device, run_dir: Path) -> dict:
    """One run into ``run_dir``: ``config.json``, ``metrics.jsonl`` (one line per epoch), ``summary.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        **asdict(v),
        "seed": seed,
        "epochs": epochs,
        "dataset": "CIFAR-10 (the JPEG ImageFolder copy, decoded with PIL)",
        "train_images": len(data["train_x"]),
        "test_images": len(data["test_x"]),
        "batch_size": args.batch_size,
        "optimizer": "SGD nesterov momentum 0.9, no weight decay on biases and norms",
        "lr": args.lr,
        "schedule": "one-cycle per step (torch OneCycleLR, pct_start 0.25)",
        "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing,
        "augmentation": "4-pixel zero-padded random crop, horizontal flip (on the device)",
        "amp": "bf16" if args.amp else "none",
        "channels_last": args.channels_last,
        "device": str(device),
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=1))
    torch.manual_seed(seed)
    net = build(v, device, args.channels_last)
    gen = torch.Generator(device=device).manual_seed(seed)
    train_x, train_y = data["train_x"], data["train_y"]
    n = len(train_x)
    steps_per_epoch = n // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit(f"{n} training images are fewer than one batch of {args.batch_size}")
    decay, no_decay = [], []
    for p in net.parameters():
        (no_decay if p.dim() <= 1 else decay).append(p)
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=steps_per_epoch * epochs, pct_start=0.25
    )
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    metrics = (run_dir / "metrics.jsonl").open("w")
    train_s, seen = 0.0, 0
    net.train()
    for epoch in range(1, epochs + 1):
        _sync(device)
        t = time.perf_counter()
        order = torch.randperm(n, device=device, generator=gen)
        loss_sum = torch.zeros((), device=device)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            x = normalise(augment(train_x[idx], gen), args.channels_last)
            with amp:
                loss = F.cross_entropy(net(x), train_y[idx], label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach()
        _sync(device)
        epoch_s = time.perf_counter() - t
        train_s, seen = train_s + epoch_s, seen + steps_per_epoch * args.batch_size
        train_loss = loss_sum.item() / steps_per_epoch
        if not math.isfinite(train_loss):
            raise RuntimeError(f"non-finite loss in epoch {epoch} of {v.name} seed {seed}")
        error, eval_ips = evaluate(net, data, args, device)
        record = {
            "epoch": epoch,
            "train_loss": train_loss,
            "test_error": error,
            "lr_end": sched.get_last_lr()[0],
            "epoch_seconds": epoch_s,
            "train_images_per_s": steps_per_epoch * args.batch_size / epoch_s,
            "eval_images_per_s": eval_ips,
        }
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
    metrics.close()
    summary = {
        "name": v.name,
        "model": v.model,
        "variant": v.variant,
        "width": v.width,
        "seed": seed,
        "epochs": epochs,
        "test_error": error,
        "final_train_loss": train_loss,
        "params": v.params,
        "macs": v.macs,
        "train_seconds": train_s,
        "train_images_per_s": seen / train_s,
        "eval_images_per_s": eval_ips,
        "peak_memory_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


# ------------------------------------------------------------------------------------------ report


def table(results: list[dict], speed: dict[str, float], vs: list[Variant], epochs: int, header: str) -> str:
    lines = [
        f"# CIFAR-10: plain vs Pool Skip vs plain widened to Pool Skip's MACs, {epochs} epochs one-cycle",
        "",
        header + " A short schedule, not the paper's 200-epoch protocol: compare the rows with each other.",
        "",
        "| network | variant | width | params | MACs | seeds | test error (%) mean ± std | per seed | "
        "train img/s | eval img/s | peak mem |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for v in vs:
        rows = [r for r in results if r["name"] == v.name]
        errs = [r["test_error"] for r in rows]
        mean = f"{statistics.fmean(errs):.2f}" if errs else "not run"
        std = f" ± {statistics.stdev(errs):.2f}" if len(errs) > 1 else ""
        peak = rows[0]["peak_memory_bytes"] if rows else None
        eval_ips = f"{statistics.fmean(r['eval_images_per_s'] for r in rows):,.0f}" if rows else "—"
        lines.append(
            f"| {v.model} | {v.variant} | {v.width} | {v.params / 1e6:.2f}M | {v.macs / 1e6:,.0f}M | {len(rows)} | "
            f"{mean}{std} | {', '.join(f'{e:.2f}' for e in errs)} | {speed[v.name]:,.0f} | {eval_ips} | "
            f"{'—' if peak is None else f'{peak / 2**30:.2f} GiB'} |"
        )
    lines += ["", "Differences of the means (points of test error; negative: the first has fewer errors):", ""]
    for m in dict.fromkeys(v.model for v in vs):
        means = {}
        for key in ("plain", "pool_skip", "wide"):
            errs = [r["test_error"] for r in results if r["name"] == f"{m}-{key}"]
            means[key] = statistics.fmean(errs) if errs else None
        for a, b in (("pool_skip", "plain"), ("pool_skip", "wide")):
            if means[a] is not None and means[b] is not None:
                lines.append(f"- {m}: {a} − {b} = {means[a] - means[b]:+.2f}")
    lines += [
        "",
        "Train img/s in the table: steady-state steps measured before training, one network at a time on the "
        "same device. With 2 seeds a difference smaller than the seed spread is not resolved.",
    ]
    return "\n".join(lines) + "\n"


def _cuda_tests(out: Path, timeout: int) -> str:
    """Run the CUDA tests (they skip without a GPU) into ``out/cuda-tests.txt``; one line saying how they went."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *CUDA_TESTS]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
        text, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        text, rc = f"{e.stdout or ''}{e.stderr or ''}\ntimed out after {timeout} s", "timeout"
    (out / "cuda-tests.txt").write_text(f"$ {' '.join(cmd)}\n{text}\nexit: {rc}\n")
    last = text.strip().splitlines()[-1] if text.strip() else ""
    return f"CUDA tests: exit {rc}: {last}"


def _tar(runs_dir: Path, path: Path) -> None:
    """Pack ``runs_dir`` into ``path`` atomically (written beside it, then renamed)."""
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        tar.add(runs_dir, arcname="runs")
    tmp.replace(path)


def run(args: argparse.Namespace) -> int:
    start = time.time()
    if args.tiny:  # the logic on a CPU: tiny widths, 16 images per class, 1 epoch, one thread (on a few busy
        # cores two OpenMP threads per op run much slower than one)
        args.widths, args.batch_size, args.max_epochs, args.amp, args.channels_last = ["4", "4"], 8, 1, False, False
        torch.set_num_threads(1)
    models = args.models
    if len(args.widths) != len(models):
        raise SystemExit(f"--widths needs one width per model ({len(models)}), got {args.widths}")
    widths = {m: int(w) for m, w in zip(models, args.widths)}
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor()})"
    out, runs_dir = args.out, args.runs_dir or args.out / "runs"
    out.mkdir(parents=True, exist_ok=True)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        commit += f" ({len(changed.splitlines())} file(s) changed in the working tree)" if commit and changed else ""
    except OSError:
        commit = ""
    env = [
        f"date: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        f"commit: {commit or 'unknown'}",
        f"device: {device_name}",
        f"torch {torch.__version__}, cuda {torch.version.cuda}, python {platform.python_version()}",
        f"args: {' '.join(sys.argv[1:])}",
    ]
    if not args.skip_tests:
        env.append(_cuda_tests(out, args.tests_timeout))
    (out / "env.txt").write_text("\n".join(env) + "\n")
    print("\n".join(env), flush=True)

    t = time.time()
    data = load(args.data, 16 if args.tiny else None)
    data = {k: v.to(device) for k, v in data.items()}
    print(f"{len(data['train_x'])} training, {len(data['test_x'])} test images decoded in {time.time() - t:.0f} s")

    vs = variants(models, widths)
    speed = {v.name: throughput(data, v, args, device, 2 if args.tiny else args.speed_steps) for v in vs}
    for v in vs:
        print(f"{v.name} (width {v.width}, {v.params / 1e6:.2f}M params, {v.macs / 1e6:,.0f}M MACs): "
              f"{speed[v.name]:,.0f} train img/s", flush=True)  # fmt: skip
    images = len(data["train_x"]) // args.batch_size * args.batch_size
    per_epoch = sum(images / speed[v.name] for v in vs) * args.seeds * 1.1  # + evaluation every epoch
    epochs = max(1, min(args.max_epochs, int(args.budget // per_epoch)))
    print(f"{len(vs) * args.seeds} runs: ~{per_epoch:.0f} s an epoch for all -> {epochs} epochs in {args.budget:.0f} s")

    results, failed = [], []
    for seed in range(args.seeds):  # seed-major, variants interleaved: a short budget still leaves whole seeds
        for v in vs:
            if time.time() - start > args.deadline:
                print(f"{v.name} seed {seed}: not started (--deadline {args.deadline:.0f} s reached)")
                continue
            try:
                r = train_one(data, v, seed, epochs, args, device, runs_dir / v.name / f"seed{seed}")
            except (RuntimeError, torch.cuda.OutOfMemoryError) as e:  # one failed run does not lose the others
                failed.append({"name": v.name, "seed": seed, "error": f"{type(e).__name__}: {e}"[:2000]})
                print(f"{v.name} seed {seed}: failed: {failed[-1]['error']}", flush=True)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            results.append(r)
            print(json.dumps(r), flush=True)
            report = {"device": device_name, "epochs": epochs, "throughput": speed, "runs": results, "failed": failed}
            (out / "results.json").write_text(json.dumps(report, indent=1))
            if args.tar:  # after every run, so a command stopped at its time limit still returns the finished runs
                _tar(runs_dir, out / "runs.tar.gz")
    header = (
        f"Device: {device_name}; torch {torch.__version__}; bf16 autocast: {args.amp}; channels_last: "
        f"{args.channels_last}; batch {args.batch_size}; lr {args.lr} one-cycle; weight decay {args.weight_decay}; "
        f"{len(data['train_x'])} training / {len(data['test_x'])} test images of {args.data}."
    )
    md = table(results, speed, vs, epochs, header)
    for f in failed:
        md += f"\n- {f['name']} seed {f['seed']} failed: {f['error'].splitlines()[0]}\n"
    (out / "table.md").write_text(md)
    print(md)
    print(f"total {time.time() - start:.0f} s")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    pk = sub.add_parser("pack", help="pack a CIFAR-10 ImageFolder copy into one file the device tool can carry")
    pk.add_argument("--data-dir", required=True, type=Path, help="CIFAR-10 as an ImageFolder (train/, test/)")
    pk.add_argument("--out", required=True, type=Path, help=f"folder for {PACKED_NAME} (git-ignored, e.g. .device/)")
    pk.add_argument("--limit-per-class", type=int, help="only the first N images of each class (tests)")
    r = sub.add_parser("run", help="the comparison (and the CUDA tests)")
    r.add_argument("--data", required=True, type=Path, help=f"{PACKED_NAME} from `pack`, or an ImageFolder copy")
    r.add_argument("--out", required=True, type=Path, help="env.txt, cuda-tests.txt, table.md, results.json")
    r.add_argument("--runs-dir", type=Path, help="the run folders (default OUT/runs)")
    r.add_argument("--tar", action="store_true", help="also pack the run folders into OUT/runs.tar.gz")
    r.add_argument("--models", nargs="+", default=["mobilenet", "resnet18"])
    r.add_argument("--widths", nargs="+", default=["32", "64"], help="each model's width (the paper's: 32, 64)")
    r.add_argument("--seeds", type=int, default=2)
    r.add_argument("--max-epochs", type=int, default=30)
    r.add_argument("--budget", type=float, default=330.0, help="seconds of training for all runs together")
    r.add_argument("--deadline", type=float, default=450.0, help="no run starts this many seconds after the start")
    r.add_argument("--batch-size", type=int, default=512)
    r.add_argument("--lr", type=float, default=0.2)
    r.add_argument("--weight-decay", type=float, default=5e-4)
    r.add_argument("--label-smoothing", type=float, default=0.0)
    r.add_argument("--speed-steps", type=int, default=15, help="timed steps per network for images/s")
    r.add_argument("--no-amp", dest="amp", action="store_false")
    r.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    r.add_argument("--skip-tests", action="store_true", help="do not run the CUDA tests")
    r.add_argument("--tests-timeout", type=int, default=120)
    r.add_argument("--tiny", action="store_true", help="CPU smoke test: width 4, 16 images per class, 1 epoch")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        t = time.time()
        path = pack(args.data_dir, args.out, args.limit_per_class)
        print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB in {time.time() - t:.0f} s")
        return 0
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
