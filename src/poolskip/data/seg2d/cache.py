"""The 2D segmentation cache: each split decoded once into one flat ``.bin`` file of raw bytes (uint8
``(3, H, W)`` images and ``(H, W)`` raw masks, written as decoding goes) and a ``.json`` index, read back
memory-mapped (see :mod:`poolskip.data.seg2d.readers`)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ...files import atomic_write, atomic_write_text
from ..errors import DatasetError

CACHE_VERSION = 2  # 2: memory-mapped .bin + .json index (1: one torch.save file)

# the (image path, mask path) pairs of a split, in order
Pairs = list[tuple[Path, Path]]


class CachedTensors(Sequence):
    """Tensors viewed, on access, from a memory-mapped uint8 file: ``shapes[i]`` at byte ``offsets[i]``."""

    def __init__(self, data: np.ndarray, offsets: Sequence[int], shapes: Sequence[tuple[int, ...]]) -> None:
        self.data, self.offsets, self.shapes = data, list(offsets), [tuple(s) for s in shapes]

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.subset(range(len(self))[i])
        o, shape = self.offsets[i], self.shapes[i]
        return torch.from_numpy(self.data[o : o + math.prod(shape)].reshape(shape))

    def subset(self, keep: Sequence[int]) -> CachedTensors:
        return CachedTensors(self.data, [self.offsets[i] for i in keep], [self.shapes[i] for i in keep])


def _decode_pair(pair: tuple[Path, Path]) -> tuple[torch.Tensor, torch.Tensor]:
    from PIL import Image

    img_path, mask_path = pair
    for p in pair:
        if not p.is_file():
            raise DatasetError(f"{p} does not exist (needed for the image/mask pair of {img_path.name})")
    try:
        with Image.open(img_path) as im:
            img = np.array(im.convert("RGB"))
        with Image.open(mask_path) as m:
            if m.mode not in ("P", "L", "I", "I;16"):
                raise DatasetError(
                    f"mask {mask_path} has mode {m.mode}; expected a palette or greyscale index PNG "
                    "(one class per pixel)"
                )
            mask = np.array(m)
    except OSError as e:
        raise DatasetError(f"cannot decode {img_path} / {mask_path}: {e}") from None
    if mask.shape != img.shape[:2]:
        raise DatasetError(f"mask {mask_path} is {mask.shape[1]}x{mask.shape[0]} but its image {img_path} is "
                           f"{img.shape[1]}x{img.shape[0]} (width x height)")  # fmt: skip
    if mask.max(initial=0) > 255 or mask.min(initial=0) < 0:
        raise DatasetError(f"mask {mask_path} holds values outside 0..255")
    return torch.from_numpy(img).permute(2, 0, 1).contiguous(), torch.from_numpy(mask.astype(np.uint8))


def read_index(stem: Path, count: int) -> dict | None:
    """The cache's index if it is complete and matches its data file; else None (decode again)."""
    try:
        index = json.loads(stem.with_suffix(".json").read_text())
        ok = len(index["items"]) == count and stem.with_suffix(".bin").stat().st_size == index["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return index if ok else None


def write_cache(stem: Path, pairs: Pairs, chunk: int = 64) -> dict:
    """Decode ``pairs`` a chunk at a time (threads), appending raw bytes to ``stem.bin``; then the index
    ``stem.json`` (each item: image offset, mask offset, H, W, the mask's distinct values). Both atomic."""
    items: list[list] = []

    def write(fh) -> None:
        offset = 0
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for k in range(0, len(pairs), chunk):
                for img, mask in pool.map(_decode_pair, pairs[k : k + chunk]):
                    h, w = mask.shape
                    values = np.flatnonzero(np.bincount(mask.numpy().ravel(), minlength=256)).tolist()
                    items.append([offset, offset + img.numel(), h, w, values])
                    fh.write(img.numpy().tobytes())
                    fh.write(mask.numpy().tobytes())
                    offset += img.numel() + mask.numel()

    atomic_write(stem.with_suffix(".bin"), write)
    index = {"version": CACHE_VERSION, "bytes": sum(3 * h * w + h * w for _, _, h, w, _ in items), "items": items}
    atomic_write_text(stem.with_suffix(".json"), json.dumps(index))
    return index
