"""Segmentation input pipeline: poolskip's cached tensors + batched augmentation vs torchvision's DataLoader.

On real CamVid (SegNet's layout, e.g. ../shared/data/camvid), with the same augmentation for both: random
scale in [0.5, 2.0] (image bilinear, mask nearest), random crop with padding (image 0, mask 255), horizontal
flip, colour jitter (brightness/contrast/saturation 0.5), normalise; CamVid's void (11) -> 255. Data only:
full training epochs of batches, no model, the two pipelines taking turns epoch by epoch. The one-time decode
of the tensor pipeline (then cached on disk) and its cached start-up are reported separately. Example:

    python benchmarks/bench_seg_data.py --data-dir ../shared/data/camvid --workers 2 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def tensor_pipeline(args):
    from poolskip.data.seg2d import Seg2dAugment, SegLoader, load_segmentation

    t0 = time.perf_counter()
    data = load_segmentation("camvid", args.data_dir, eval_split="test", cache_dir=args.cache_dir)
    load_s = time.perf_counter() - t0
    aug = Seg2dAugment(tuple(args.crop), (0.5, 2.0), flip=True, color_jitter=0.5)
    loader = SegLoader(data.train, args.batch, mean=MEAN, std=STD, augment=aug, seed=0)
    return (lambda epoch: ((b.inputs, b.targets) for b in loader.batches(epoch))), len(loader), load_s


class CamVidPairs(torch.utils.data.Dataset):
    """The usual per-sample pipeline: decode the PNG pair, then torchvision.transforms.v2 on image + mask."""

    def __init__(self, root: Path, crop):
        from torchvision.transforms import v2

        self.items = sorted((p, root / "trainannot" / p.name) for p in (root / "train").glob("*.png"))
        self.v2 = v2
        self.after = v2.Compose(
            [
                v2.RandomCrop(crop, pad_if_needed=True, fill={"others": 0, _mask_type(): 255}),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(0.5, 0.5, 0.5),
                v2.ToDtype({"others": None, _image_type(): torch.float32}, scale=True),
                v2.Normalize(MEAN, STD),
            ]
        )

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image
        from torchvision import tv_tensors
        from torchvision.transforms.v2 import functional as F

        img_path, mask_path = self.items[i]
        img = F.pil_to_tensor(Image.open(img_path).convert("RGB"))
        mask = torch.as_tensor(F.pil_to_tensor(Image.open(mask_path))[0])
        mask[mask == 11] = 255
        s = random.uniform(0.5, 2.0)
        size = [round(img.shape[-2] * s), round(img.shape[-1] * s)]
        img = tv_tensors.Image(F.resize(img, size, interpolation=self.v2.InterpolationMode.BILINEAR))
        mask = tv_tensors.Mask(F.resize(mask[None], size, interpolation=self.v2.InterpolationMode.NEAREST)[0])
        img, mask = self.after(img, mask)
        return img, mask.long()


def _mask_type():
    from torchvision import tv_tensors

    return tv_tensors.Mask


def _image_type():
    from torchvision import tv_tensors

    return tv_tensors.Image


def torchvision_pipeline(args):
    ds = CamVidPairs(Path(args.data_dir), args.crop)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=args.workers,
        persistent_workers=args.workers > 0,
    )  # fmt: skip
    return (lambda epoch: iter(loader)), len(loader)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--cache-dir", default=None, help="default: a fresh temporary directory (so the decode is timed)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, nargs=2, default=[240, 320])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: PyTorch's)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = None
    if args.cache_dir is None:
        tmp = tempfile.TemporaryDirectory()
        args.cache_dir = tmp.name

    ours, steps, first_load = tensor_pipeline(args)
    _, _, cached_load = tensor_pipeline(args)
    theirs, tv_steps = torchvision_pipeline(args)
    times = {"poolskip": [], "torchvision": []}
    for epoch in range(args.epochs):
        for name, batches in (("poolskip", ours), ("torchvision", theirs)):
            t0 = time.perf_counter()
            n = sum(1 for _ in batches(epoch))
            times[name].append(time.perf_counter() - t0)
            assert n == steps == tv_steps, (n, steps, tv_steps)
    print(f"CamVid train: {steps} batches of {args.batch}, crop {args.crop[0]}x{args.crop[1]}, "
          f"torch threads {torch.get_num_threads()}, DataLoader workers {args.workers}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"poolskip one-time decode + cache write: {first_load:.1f} s; start-up from the cache: {cached_load:.1f} s")
    for name, ts in times.items():
        print(
            f"{name:12s} epoch data time: "
            + ", ".join(f"{t:.1f}" for t in ts)
            + f" s (median {statistics.median(ts):.1f})"
        )
    ratio = statistics.median(times["torchvision"]) / statistics.median(times["poolskip"])
    print(f"torchvision / poolskip (median epoch): {ratio:.2f}x")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
