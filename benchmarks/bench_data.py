"""Input pipeline benchmark: poolskip's tensor pipeline vs torchvision's DataLoader + transforms.

On real CIFAR-10 (an ImageFolder tree, e.g. ../shared/data/cifar10-jpg), with the same augmentation
(random crop 32 pad 4, horizontal flip, normalise), in one run:

1. data only: one full training epoch of batches (decode/augment/collate), no model;
2. training: SGD steps of a small model fed by each pipeline, taking turns in rounds (median step
   time, projected to one epoch).

The tensor pipeline's one-time decode (then cached on disk) is reported separately. Example:

    python benchmarks/bench_data.py --data-dir ../shared/data/cifar10-jpg --workers 2
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F


def tensor_pipeline(args, mean, std):
    from poolskip.data import ClassificationAugment, TensorLoader, load_dataset

    t0 = time.perf_counter()
    data = load_dataset("imagefolder", args.data_dir, cache_dir=args.cache_dir)
    load_s = time.perf_counter() - t0
    loader = TensorLoader(
        data.train_x, data.train_y, args.batch, mean=mean, std=std, augment=ClassificationAugment(4, True), shuffle=True
    )
    return (lambda epoch: ((b.inputs, b.targets) for b in loader.batches(epoch))), len(loader), load_s


def torchvision_pipeline(args, mean, std):
    from torchvision import datasets, transforms

    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    ds = datasets.ImageFolder(f"{args.data_dir}/train", transform=tf)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch, shuffle=True, num_workers=args.workers, persistent_workers=args.workers > 0
    )
    return (lambda epoch: iter(loader)), len(loader), 0.0


def data_epoch_seconds(batches) -> float:
    t0 = time.perf_counter()
    n = sum(len(y) for _, y in batches(0))
    return time.perf_counter() - t0, n


def train_step_seconds(pipelines, model, steps: int, rounds: int) -> list[float]:
    """Median seconds per SGD step for each pipeline, timed in alternating rounds so load drift hits both."""
    import copy
    import statistics

    runs = []
    for batches in pipelines:
        m = copy.deepcopy(model)
        runs.append((iter(batches(1)), m, torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9), []))

    def step(it, m, opt):
        x, y = next(it)
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for it, m, opt, _ in runs:  # warm-up
        step(it, m, opt)
    for _ in range(rounds):
        for it, m, opt, times in runs:
            for _ in range(steps):
                t0 = time.perf_counter()
                step(it, m, opt)
                times.append(time.perf_counter() - t0)
    return [statistics.median(times) for *_, times in runs]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../shared/data/cifar10-jpg")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for the torchvision pipeline")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed training steps per pipeline and round")
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds (pipelines take turns)")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from poolskip.models import create_model

    mean, std = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
    print(
        f"CIFAR-10 ImageFolder at {args.data_dir}; batch {args.batch}; {platform.machine()} CPU, "
        f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
    )
    names, pipelines, epochs = [], [], []
    for name, build in (("tensor (poolskip.data)", tensor_pipeline), ("torchvision DataLoader", torchvision_pipeline)):
        batches, steps_per_epoch, load_s = build(args, mean, std)
        data_s, n = data_epoch_seconds(batches)
        extra = f" (+{load_s:.1f}s to load the decoded-tensor cache or decode once)" if load_s else ""
        print(f"{name:24s} data-only epoch {data_s:7.1f}s ({n / data_s:6.0f} img/s){extra}")
        names.append(name)
        pipelines.append(batches)
        epochs.append(data_s)
    torch.manual_seed(0)
    model = create_model(args.model, num_classes=10, width=args.width)
    step_s = train_step_seconds(pipelines, model, args.steps, args.rounds)
    for name, s in zip(names, step_s):
        print(f"{name:24s} train step {s * 1000:7.0f} ms (median) -> {s * steps_per_epoch:6.0f} s/epoch projected")
    print(
        f"ratio torchvision/tensor: data-only epoch {epochs[1] / epochs[0]:.1f}x, training epoch "
        f"{step_s[1] / step_s[0]:.2f}x ({args.model} width {args.width}, {args.rounds}x{args.steps} steps each)"
    )


if __name__ == "__main__":
    main()
