"""Pack the segmentation data a GPU run needs into one folder that fits the device tool's 64 MiB carry.

- CamVid (SegNet's layout, 182 MB of PNGs) -> ``OUT/camvid`` in the ``segfolder`` layout: the ``train`` and
  ``test`` splits, images re-encoded as JPEG (quality 90 by default: ~20 MB for the 600 images; stated in
  every result, since it is not bit-identical to the PNGs), masks copied unchanged (11 = void).
- The Decathlon's Hippocampus (``dataset.json``, ``imagesTr/``, ``labelsTr/``; 20 MB) -> ``OUT/hippocampus-msd``,
  copied unchanged.

    python benchmarks/gpu/pack_seg_data.py --camvid ../shared/data/camvid \\
        --hippocampus ../shared/data/hippocampus-msd --out .device/segdata

``.device/`` is git-ignored; name ``.device/segdata`` in the device tool's ``carry``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

LIMIT_MB = 60


def pack_camvid(src: Path, out: Path, quality: int = 90, splits=("train", "test")) -> int:
    """SegNet's ``{split}/`` + ``{split}annot/`` -> ``{split}/images/*.jpg`` + ``{split}/masks/*.png``; image count."""
    from PIL import Image

    n = 0
    for split in splits:
        images, annots = src / split, src / f"{split}annot"
        if not images.is_dir() or not annots.is_dir():
            raise SystemExit(f"camvid: expected SegNet's {images}/ and {annots}/")
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "masks").mkdir(parents=True, exist_ok=True)
        for p in sorted(images.glob("*.png")):
            mask = annots / p.name
            if not mask.is_file():
                raise SystemExit(f"camvid: {p} has no mask {mask}")
            with Image.open(p) as im:
                im.convert("RGB").save(out / split / "images" / f"{p.stem}.jpg", "JPEG", quality=quality)
            shutil.copyfile(mask, out / split / "masks" / f"{p.stem}.png")
            n += 1
    return n


def pack_decathlon(src: Path, out: Path) -> int:
    """``dataset.json``, ``imagesTr/``, ``labelsTr/`` copied; the number of training volumes."""
    if not (src / "dataset.json").is_file():
        raise SystemExit(f"decathlon: {src}/dataset.json is missing")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "dataset.json", out / "dataset.json")
    for d in ("imagesTr", "labelsTr"):
        shutil.copytree(src / d, out / d, dirs_exist_ok=True)
    return len(list((out / "labelsTr").glob("*.nii*")))


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--camvid", type=Path, help="SegNet's CamVid folder")
    p.add_argument("--hippocampus", type=Path, help="the Decathlon's Task04 Hippocampus folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--quality", type=int, default=90, help="JPEG quality of the CamVid images (default 90)")
    args = p.parse_args(argv)
    if args.camvid:
        n = pack_camvid(args.camvid, args.out / "camvid", args.quality)
        print(f"camvid: {n} images (JPEG q{args.quality}) + masks -> {args.out / 'camvid'}")
    if args.hippocampus:
        n = pack_decathlon(args.hippocampus, args.out / "hippocampus-msd")
        print(f"hippocampus: {n} volumes -> {args.out / 'hippocampus-msd'}")
    total = size_mb(args.out)
    print(f"{args.out}: {total:.1f} MiB")
    if total > LIMIT_MB:
        print(f"too large for the device tool's carry (keep under {LIMIT_MB} MiB with the code)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
