"""2D semantic segmentation readers: Pascal VOC 2012, Cityscapes (fine), CamVid (SegNet's) and any image/mask folder.

Each split is decoded once into a cache (uint8 ``(3, H, W)`` images and uint8 ``(H, W)`` raw masks, keyed by
the files' paths, sizes and mtimes): one flat ``.bin`` file of raw bytes, written as decoding goes (never the
whole split in memory), and a ``.json`` index. Runs read it memory-mapped, so a split larger than memory
(Cityscapes' 2,975 training images are ~25 GB decoded) still trains: the operating system keeps the pages
that fit and rereads the rest, and the processes of a ``torchrun`` job share one copy. Raw mask values are
mapped to train ids when a mask is used (Cityscapes labelIds -> 19 train ids; CamVid's 11 -> ignore), so the
cache never goes stale when a mapping changes; every split then uses :data:`IGNORE` (255) for ignored pixels.
The values each mask holds are kept in the index, so label checks never reread the masks.

Training batches are cut and augmented on the training device by :class:`~poolskip.data.seg2d.SegLoader`
with :class:`~poolskip.data.seg2d.Seg2dAugment`
(random scale, crop with padding - image 0, mask ignore - horizontal flip, optional colour jitter) in one
``grid_sample`` per image size of the batch. Batch ``b`` of epoch ``e`` is a function of (seed, e, b) only, and
under ``torchrun`` every process draws the global batch's parameters and keeps its own contiguous share.

On-disk layouts (``data_dir``):

- ``voc``: ``VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation/{train,val}.txt}``
  (``data_dir`` may also be the ``VOC2012`` folder itself); palette PNG masks, 0-20, 255 ignored. If
  ``SegmentationClassAug`` (SBD) is present, ``train`` is the 10,582-image "trainaug" set: the ids in
  ``train_aug.txt`` (in ``ImageSets/Segmentation`` or ``VOC2012``) or else every mask there not in ``val``.
- ``cityscapes``: ``leftImg8bit/{split}/{city}/*_leftImg8bit.png`` and ``gtFine/{split}/{city}/*_gtFine_labelIds.png``.
- ``camvid``: SegNet's ``{split}/``, ``{split}annot/`` and ``{split}.txt`` (``image mask`` lines whose absolute
  paths are resolved by file name under ``data_dir``); 11 classes, value 11 ignored.
- ``segfolder``: ``{split}/images/*`` and ``{split}/masks/<same stem>.png`` (index PNGs).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ...errors import did_you_mean
from ...metrics import IGNORE_INDEX
from ..cache import cache_root
from ..errors import DatasetError
from ..paths import confined
from .cache import CACHE_VERSION, CachedTensors, Pairs, read_index, write_cache

__all__ = ["IGNORE", "SEG_DATASETS", "SegData", "SegSplit", "load_segmentation", "voc_palette"]

IGNORE = IGNORE_INDEX  # the ignored label in every mapped mask (the metrics leave it out)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
#: Cityscapes labelIds of the 19 evaluated classes, in train-id order (everything else is ignored)
CITYSCAPES_LABEL_IDS = (7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33)
CITYSCAPES_PALETTE = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
)  # fmt: skip
CAMVID_CLASSES = (
    "sky", "building", "pole", "road", "pavement", "tree", "signsymbol", "fence", "car", "pedestrian", "bicyclist",
)  # fmt: skip
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip

SEG_DATASETS = ("voc", "cityscapes", "camvid", "segfolder")


def voc_palette(n: int = 256) -> list[tuple[int, int, int]]:
    """Pascal VOC's colour map (the bit-interleaving one its palette PNGs use)."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
    return out


# ---------------------------------------------------------------------------------------------- data


@dataclass
class SegSplit:
    """One split: uint8 images ``(3, H, W)`` and masks ``(H, W)`` with train ids and :data:`IGNORE` (any
    sequences: lists, or the lazy views of a memory-mapped cache)."""

    images: Sequence[torch.Tensor]
    masks: Sequence[torch.Tensor]
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: Sequence[int]) -> SegSplit:
        return SegSplit(_pick(self.images, keep), _pick(self.masks, keep), [self.names[i] for i in keep])


def _pick(seq: Sequence[torch.Tensor], keep: Sequence[int]) -> Sequence[torch.Tensor]:
    return seq.subset(keep) if hasattr(seq, "subset") else [seq[i] for i in keep]


class _Mapped(Sequence):
    """Raw masks mapped through a lookup table (raw value -> train id) each time one is read."""

    def __init__(self, raw: Sequence[torch.Tensor], lut: np.ndarray) -> None:
        self.raw, self.lut = raw, lut

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.subset(range(len(self))[i])
        return torch.from_numpy(self.lut[self.raw[i].numpy()])

    def subset(self, keep: Sequence[int]) -> _Mapped:
        return _Mapped(_pick(self.raw, keep), self.lut)


@dataclass
class SegData:
    """A segmentation dataset: its class names, colours and the training and evaluation splits."""

    name: str
    classes: list[str]
    palette: list[tuple[int, int, int]]
    train: SegSplit
    eval: SegSplit
    notes: list[str] = field(default_factory=list)  # how the splits were chosen (e.g. VOC trainaug)
    train_classes: list[int] = field(default_factory=list)  # the class ids the training masks hold (ignore aside)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _lut(num_classes: int, ignore_raw: Sequence[int] = (IGNORE,)) -> tuple[np.ndarray, np.ndarray]:
    """Identity for 0..K-1, ``ignore_raw`` -> IGNORE; ``allowed`` marks the raw values that may occur."""
    lut = np.full(256, IGNORE, np.uint8)
    lut[:num_classes] = np.arange(num_classes)
    allowed = np.zeros(256, bool)
    allowed[:num_classes] = True
    allowed[list(ignore_raw)] = True
    return lut, allowed


def _voc_root(data_dir: Path) -> Path:
    for root in (data_dir / "VOCdevkit" / "VOC2012", data_dir / "VOC2012", data_dir):
        if (root / "JPEGImages").is_dir() and (root / "ImageSets" / "Segmentation").is_dir():
            return root
    raise DatasetError(
        f"voc: no Pascal VOC 2012 under {data_dir}; expected {data_dir}/VOCdevkit/VOC2012/ with JPEGImages/, "
        "SegmentationClass/ and ImageSets/Segmentation/{train,val}.txt"
    )


def _read_ids(path: Path) -> list[str]:
    if not path.is_file():
        raise DatasetError(f"split list {path} does not exist")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _voc_pairs(data_dir: Path, split: str, trainaug: bool, notes: list[str]) -> Pairs:
    root = _voc_root(data_dir)
    masks = root / "SegmentationClass"
    aug = root / "SegmentationClassAug"
    if split == "train" and trainaug and aug.is_dir():
        masks = aug
        lists = [root / "ImageSets" / "Segmentation" / "train_aug.txt", root / "train_aug.txt"]
        listed = next((p for p in lists if p.is_file()), None)
        val_file = root / "ImageSets" / "Segmentation" / "val.txt"
        if listed is not None:
            # SBD lists may hold "/JPEGImages/x.jpg /SegmentationClassAug/x.png"
            ids = [Path(i).stem for i in _read_ids(listed)]
            notes.append(f"voc train = trainaug ({listed.name}, SegmentationClassAug)")
            # the evaluation images must not train: the standard 10,582-id list holds none
            both = sorted(set(ids) & set(_read_ids(val_file))) if val_file.is_file() else []
            if both:
                raise DatasetError(
                    f"{listed} lists {len(both)} image(s) of {val_file} (e.g. {both[0]}): training on them would "
                    "score the model on images it trained on; use a train_aug list without the val images (the "
                    "standard 10,582-image one)"
                )
        else:
            val = set(_read_ids(val_file))
            ids = sorted(p.stem for p in aug.glob("*.png") if p.stem not in val)
            notes.append("voc train = trainaug (every SegmentationClassAug mask not in val.txt)")
        listing = listed or aug
    else:
        listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        ids = _read_ids(listing)
    images = root / "JPEGImages"
    # an id such as "../../x" (or a linked file) must not lead out of the folders (links to the folders are fine)
    return [
        (
            confined(images / f"{i}.jpg", images, f"voc: {listing} names {i!r}, which"),
            confined(masks / f"{i}.png", masks, f"voc: {listing} names {i!r}, which"),
        )
        for i in ids
    ]


def _cityscapes_pairs(data_dir: Path, split: str) -> Pairs:
    images = data_dir / "leftImg8bit" / split
    if not images.is_dir() or not (data_dir / "gtFine" / split).is_dir():
        raise DatasetError(
            f"cityscapes: no {split} split under {data_dir}; expected {data_dir}/leftImg8bit/{split}/<city>/"
            f"*_leftImg8bit.png and {data_dir}/gtFine/{split}/<city>/*_gtFine_labelIds.png"
        )
    pairs = []
    for img in sorted(images.glob("*/*_leftImg8bit.png")):
        stem = img.name[: -len("_leftImg8bit.png")]
        pairs.append((img, data_dir / "gtFine" / split / img.parent.name / f"{stem}_gtFine_labelIds.png"))
    return pairs


def _camvid_pairs(data_dir: Path, split: str) -> Pairs:
    images, annots = data_dir / split, data_dir / f"{split}annot"
    listing = data_dir / f"{split}.txt"
    if not images.is_dir() or not annots.is_dir():
        raise DatasetError(
            f"camvid: no {split} split under {data_dir}; expected SegNet's layout {data_dir}/{split}/ and "
            f"{data_dir}/{split}annot/ (and {split}.txt)"
        )
    if not listing.is_file():
        return [(p, annots / p.name) for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    pairs = []
    for n, line in enumerate(listing.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"camvid: {listing} line {n} should be 'image mask', got {line!r}")
        img, mask = images / Path(parts[0]).name, annots / Path(parts[1]).name
        for p, listed in ((img, parts[0]), (mask, parts[1])):
            if not p.is_file():
                raise DatasetError(f"camvid: {listing} line {n} names {listed}, but {p} does not exist")
        pairs.append((img, mask))
    return pairs


def _segfolder_pairs(data_dir: Path, split: str) -> Pairs:
    images, masks = data_dir / split / "images", data_dir / split / "masks"
    if not images.is_dir() or not masks.is_dir():
        raise DatasetError(
            f"segfolder: no {split} split under {data_dir}; expected {data_dir}/{split}/images/ and "
            f"{data_dir}/{split}/masks/ (index PNGs named like the images)"
        )
    return [(p, masks / f"{p.stem}.png") for p in sorted(images.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


# ------------------------------------------------------------------------------------------- decoding


def _decode_split(name: str, split: str, pairs: Pairs, cache_dir) -> tuple[SegSplit, list[list[int]]]:
    """The split's raw images and masks from the cache (decoded and written first if it is missing or stale;
    key: paths, sizes and mtimes), and the distinct raw values of each mask."""
    if not pairs:
        raise DatasetError(f"{name}: the {split} split has no images")
    listing = []
    for pair in pairs:
        for p in pair:
            try:
                st = p.stat()
            except FileNotFoundError:
                raise DatasetError(f"{name}: {p} does not exist") from None
            listing.append((str(p.resolve()), st.st_size, st.st_mtime_ns))
    key = hashlib.sha256(json.dumps([CACHE_VERSION, name, split, listing]).encode()).hexdigest()[:16]
    stem = cache_root(cache_dir) / f"seg-{name}-{split.replace('/', '_')}-{key}"
    index = read_index(stem, len(pairs))
    if index is None:
        index = write_cache(stem, pairs)
    data = np.memmap(stem.with_suffix(".bin"), dtype=np.uint8, mode="c") if index["bytes"] else np.zeros(0, np.uint8)
    images = CachedTensors(data, [e[0] for e in index["items"]], [(3, e[2], e[3]) for e in index["items"]])
    masks = CachedTensors(data, [e[1] for e in index["items"]], [(e[2], e[3]) for e in index["items"]])
    return SegSplit(images, masks, [p[0].name for p in pairs]), [e[4] for e in index["items"]]


def _check_values(name: str, values: list[list[int]], pairs: Pairs, allowed: np.ndarray, what: str) -> None:
    """A mask value that is neither a class nor ignored is an error naming the file."""
    for vals, (_, mask_path) in zip(values, pairs):
        bad = [v for v in vals if not allowed[v]]
        if bad:
            raise DatasetError(f"{name}: mask {mask_path} holds label value(s) {bad[:8]}, outside {what}")


def load_segmentation(
    name: str,
    data_dir: str | os.PathLike | None,
    *,
    train_split: str = "train",
    eval_split: str = "val",
    voc_trainaug: bool = True,
    segfolder_classes: int | None = None,
    segfolder_ignore: int = IGNORE,
    cache_dir: str | os.PathLike | None = None,
    train_subset: int | None = None,
    eval_subset: int | None = None,
) -> SegData:
    """Load dataset ``name`` (one of :data:`SEG_DATASETS`) from ``data_dir``; ``train_split`` may join
    splits with ``+`` (e.g. ``train+val``). ``train_subset`` / ``eval_subset`` keep N images of a fixed
    shuffle (seed 0, the same in every run) of the training / evaluation split, in dataset order."""
    if name not in SEG_DATASETS:
        raise DatasetError(
            f"unknown segmentation dataset {name!r}{did_you_mean(name, SEG_DATASETS)} "
            f"(known: {', '.join(SEG_DATASETS)})"
        )
    if data_dir is None:
        raise DatasetError(f"{name}: set data_dir to the dataset's folder (--set data_dir=PATH)")
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{name}: data_dir {root} is not a directory")
    notes: list[str] = []

    def pairs_of(split: str) -> Pairs:
        out: Pairs = []
        for part in split.split("+"):
            if name == "voc":
                out += _voc_pairs(root, part, voc_trainaug, notes)
            elif name == "cityscapes":
                out += _cityscapes_pairs(root, part)
            elif name == "camvid":
                out += _camvid_pairs(root, part)
            else:
                out += _segfolder_pairs(root, part)
        return out

    train_pairs, eval_pairs = pairs_of(train_split), pairs_of(eval_split)
    train, train_values = _decode_split(name, train_split, train_pairs, cache_dir)
    test, test_values = _decode_split(name, eval_split, eval_pairs, cache_dir)

    if name == "voc":
        classes, palette = list(VOC_CLASSES), voc_palette(21)
        lut, allowed = _lut(21)
        what = "0-20 and 255 (ignored)"
    elif name == "cityscapes":
        classes, palette = list(CITYSCAPES_CLASSES), list(CITYSCAPES_PALETTE)
        lut = np.full(256, IGNORE, np.uint8)
        lut[list(CITYSCAPES_LABEL_IDS)] = np.arange(len(CITYSCAPES_LABEL_IDS))
        allowed = np.zeros(256, bool)
        allowed[[*range(34), 255]] = True  # labels.py's ids 0-33; 255 where a tool wrote license plate's -1
        what = "Cityscapes labelIds 0-33 and 255 (expected *_gtFine_labelIds.png as cityscapesScripts writes them)"
    elif name == "camvid":
        classes, palette = list(CAMVID_CLASSES), list(CAMVID_PALETTE)
        lut, allowed = _lut(11, (11,))
        what = "0-10 and 11 (unlabelled, ignored)"
    else:
        k = segfolder_classes
        if k is None:  # the largest label of the training masks, the ignore value aside
            k = max((v for vals in train_values for v in vals if v != segfolder_ignore), default=0) + 1
        if not 1 <= k <= 255 or (segfolder_ignore < k):
            raise DatasetError(f"segfolder: {k} classes with ignore value {segfolder_ignore}: need 1 <= classes <= "
                               "ignore value (set segmentation.segfolder_classes / segfolder_ignore)")  # fmt: skip
        classes, palette = [str(i) for i in range(k)], voc_palette(k)
        lut, allowed = _lut(k, (segfolder_ignore,))
        what = f"0-{k - 1} and {segfolder_ignore} (ignored)"

    _check_values(name, train_values, train_pairs, allowed, what)
    _check_values(name, test_values, eval_pairs, allowed, what)
    train = SegSplit(train.images, _Mapped(train.masks, lut), train.names)
    test = SegSplit(test.images, _Mapped(test.masks, lut), test.names)
    keep = _subset_keep(len(train), train_subset)
    if keep is not None:
        train, train_values = train.subset(keep), [train_values[i] for i in keep]
    keep = _subset_keep(len(test), eval_subset)
    test = test if keep is None else test.subset(keep)
    if eval_subset is not None and eval_subset < len(test_values):
        notes.append(f"evaluating {len(test)} of {len(test_values)} {eval_split} images (eval_subset)")
    present = {int(lut[v]) for vals in train_values for v in vals} - {IGNORE}  # from the cache's index
    return SegData(name, classes, palette, train, test, notes, sorted(present))


def _subset_keep(n_items: int, n: int | None) -> list[int] | None:
    """The indices of ``n`` of ``n_items`` images picked by a shuffle with seed 0, in dataset order (None: all
    of them, ``n`` is None or not smaller)."""
    if n is None or n >= n_items:
        return None
    return torch.randperm(n_items, generator=torch.Generator().manual_seed(0))[:n].sort().values.tolist()
