"""Tiny segmentation datasets in the real on-disk layouts (VOC 2012, Cityscapes fine, CamVid/SegNet, segfolder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from poolskip.data.seg2d import voc_palette


def _image(rng: np.random.Generator, h: int, w: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _labels(rng: np.random.Generator, h: int, w: int, values) -> np.ndarray:
    """Blocky label maps (so that scaling keeps regions) drawn from ``values``."""
    coarse = rng.choice(np.asarray(values, dtype=np.uint8), size=(-(-h // 4), -(-w // 4)))
    return np.kron(coarse, np.ones((4, 4), np.uint8))[:h, :w]


def _palette_png(labels: np.ndarray, path: Path) -> None:
    im = Image.fromarray(labels, mode="P")
    flat = [c for rgb in voc_palette(256) for c in rgb]
    im.putpalette(flat)
    im.save(path)


def make_voc(root: Path, sizes=((37, 45), (40, 40), (33, 50), (45, 37), (41, 43), (36, 48)), n_val: int = 2,
             aug: bool = False, seed: int = 0) -> Path:  # fmt: skip
    """``root/VOCdevkit/VOC2012`` with JPEG images of different sizes and palette masks (0-20, 255 borders)."""
    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True, exist_ok=True)
    ids = [f"2007_{i:06d}" for i in range(len(sizes))]
    for i, (h, w) in zip(ids, sizes):
        _image(rng, h, w).save(voc / "JPEGImages" / f"{i}.jpg", quality=95)
        lab = _labels(rng, h, w, [0, 1, 5, 15, 20])
        lab[0, :] = 255  # VOC's object borders
        _palette_png(lab, voc / "SegmentationClass" / f"{i}.png")
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids[n_val:]) + "\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("\n".join(ids[:n_val]) + "\n")
    if aug:  # SBD's extra masks: greyscale index PNGs for every id plus two more
        (voc / "SegmentationClassAug").mkdir()
        extra = ["2008_000001", "2008_000002"]
        for i in extra:
            _image(rng, 40, 44).save(voc / "JPEGImages" / f"{i}.jpg", quality=95)
        for i in ids + extra:
            with Image.open(voc / "JPEGImages" / f"{i}.jpg") as im:
                w, h = im.size
            Image.fromarray(_labels(rng, h, w, [0, 2, 3]), mode="L").save(voc / "SegmentationClassAug" / f"{i}.png")
    return root


def make_cityscapes(root: Path, n_train: int = 4, n_val: int = 2, size=(32, 64), seed: int = 0) -> Path:
    """``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` and ``gtFine/.../*_gtFine_labelIds.png`` (labelIds 0-33)."""
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n, city in (("train", n_train, "aachen"), ("val", n_val, "frankfurt")):
        (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
        (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            stem = f"{city}_{k:06d}_000019"
            _image(rng, h, w).save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            ids = _labels(rng, h, w, [0, 1, 4, 7, 8, 26, 33])  # 0/1/4 are not evaluated -> ignored
            Image.fromarray(ids, mode="L").save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
            Image.fromarray(ids, mode="L").save(root / "gtFine" / split / city / f"{stem}_gtFine_color.png")
    return root


def make_camvid(root: Path, counts=None, size=(24, 32), seed: int = 0) -> Path:
    """SegNet's CamVid: ``{split}/``, ``{split}annot/`` (index PNGs, 11 = void) and list files with the
    original machine's absolute paths."""
    counts = counts or {"train": 6, "val": 2, "test": 3}
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in counts.items():
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / f"{split}annot").mkdir(parents=True, exist_ok=True)
        lines = []
        for k in range(n):
            name = f"0001TP_{split}{k:04d}.png"
            _image(rng, h, w).save(root / split / name)
            Image.fromarray(_labels(rng, h, w, [0, 1, 3, 8, 11]), mode="L").save(root / f"{split}annot" / name)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_segfolder(root: Path, n_train: int = 4, n_val: int = 2, size=(20, 28), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "masks").mkdir(parents=True, exist_ok=True)
        for k in range(n):
            _image(rng, h, w).save(root / split / "images" / f"im{k}.jpg", quality=95)
            Image.fromarray(_labels(rng, h, w, [0, 1, 2, 255]), mode="L").save(root / split / "masks" / f"im{k}.png")
    return root
