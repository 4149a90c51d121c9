"""Image classification datasets from their standard on-disk layouts, decoded once into uint8 tensors.

- ``digits``: scikit-learn's bundled 8x8 digits (no download), a fixed stratified 75/25 split.
- ``cifar10`` / ``cifar100``: torchvision's pickled-batch layout (``cifar-10-batches-py/``,
  ``cifar-100-python/``) under ``data_dir``; ``download=True`` fetches it with torchvision.
- ``imagefolder``: ``data_dir/train/<class>/*.jpg`` and ``data_dir/test/<class>/*`` (or ``val/``),
  the layout torchvision's ``ImageFolder`` reads.

Decoded datasets are cached as one ``.pt`` file per source (path, file names, sizes and mtimes), so the
second run of a CIFAR or ImageFolder experiment starts in a second instead of decoding again.
"""

from __future__ import annotations

import os
import pickle
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import did_you_mean
from ...progress import Progress
from ..errors import DatasetError, other_task_hint
from .cache import FIELDS, cached, file_listing, tree_listing

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
_CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels"),
}


@dataclass
class ImageData:
    """A classification dataset held as tensors: uint8 images (N, C, H, W) and int64 labels."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    def channel_stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of the training images, in [0, 1]."""
        x = self.train_x.transpose(0, 1).reshape(self.channels, -1).double() / 255.0
        return x.mean(1).tolist(), x.std(1).tolist()


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
    image_size: int | None = None,
    train_subset: int | None = None,
) -> ImageData:
    """Load dataset ``name`` (one of :data:`DATASETS`) as uint8 tensors, from the cache when it is fresh.

    ``train_subset``: keep only the first N training images of a fixed shuffle (seed 0); an ImageFolder
    tree decodes only those (the other formats hold the images in a few files that are read whole).
    """
    if name == "digits":
        if data_dir is not None:  # ships with scikit-learn: a directory given here would be ignored in silence
            warnings.warn(
                f"data_dir {data_dir} is not read: digits is scikit-learn's bundled copy; to train on the data "
                f"there, name its dataset ({', '.join(DATASETS[1:])})",
                stacklevel=2,
            )
        return _subset(_load_digits(), train_subset)
    if name in _CIFAR:
        root = _cifar_root(name, data_dir, download)
        files = [root / f for f in _CIFAR[name][1] + _CIFAR[name][2]]
        return _subset(
            _cached(name, file_listing(files), cache_dir, lambda: _read_cifar(name, root), extra=None), train_subset
        )
    if name == "imagefolder":
        train_dir, test_dir = _imagefolder_dirs(data_dir)
        listing = tree_listing([train_dir, test_dir])
        read = lambda: _read_imagefolder(train_dir, test_dir, image_size, train_subset)  # noqa: E731
        return _cached(name, listing, cache_dir, read, [image_size, train_subset])
    raise DatasetError(
        f"unknown dataset {name!r}{did_you_mean(name, DATASETS)} (known: {', '.join(DATASETS)}){other_task_hint(name)}"
    )


def subset_indices(n: int, keep: int | None) -> torch.Tensor | None:
    """The training images a ``train_subset`` of ``keep`` uses: the first ``keep`` of a fixed shuffle."""
    if keep is None:
        return None
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:keep]


def _subset(data: ImageData, keep: int | None) -> ImageData:
    idx = subset_indices(len(data.train_x), keep)
    if idx is not None:
        data.train_x, data.train_y = data.train_x[idx], data.train_y[idx]
    return data


# ------------------------------------------------------------------------------------------ digits


def _load_digits(test_fraction: float = 0.25, split_seed: int = 0) -> ImageData:
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise DatasetError("the digits dataset needs scikit-learn: pip install 'poolskip[train]'") from e
    data = load_digits()
    x = (torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) * (255.0 / 16.0)).round().to(torch.uint8)
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
    return ImageData("digits", x[tr], y[tr], x[te], y[te], [str(c) for c in range(10)])


# ------------------------------------------------------------------------------------------- CIFAR


def _cifar_root(name: str, data_dir, download: bool) -> Path:
    folder, train_files, test_files, _ = _CIFAR[name]
    if data_dir is None:
        raise DatasetError(
            f"{name} needs --data-dir: the directory that holds {folder}/ (torchvision's layout); "
            f"add --download to fetch it there"
        )
    data_dir = Path(data_dir).expanduser()
    root = data_dir if data_dir.name == folder else data_dir / folder
    missing = [f for f in train_files + test_files if not (root / f).is_file()]
    if missing and download:
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(root.parent), train=True, download=True)
        missing = [f for f in train_files + test_files if not (root / f).is_file()]
    if missing:
        raise DatasetError(
            f"{name}: expected torchvision's pickled batches in {root} (missing: {', '.join(missing)}); "
            f"pass --download to fetch them, or point --data-dir at the directory that holds {folder}/"
        )
    return root


class _CifarUnpickler(pickle.Unpickler):
    """Builds only what torchvision's CIFAR batches hold: dicts, lists, bytes/str, ints and integer numpy
    arrays (numpy's own reconstruct path). Any other global the pickle names is refused before it is
    touched, so a hostile batch file cannot run code (``pickle.load`` would call whatever it names)."""

    def find_class(self, module: str, name: str):
        import numpy as np

        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _np_reconstruct
        if (module, name) in (("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")):
            return _np_frombuffer
        if (module, name) == ("numpy", "dtype"):
            return _np_integer_dtype
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes at protocol 2
            return _latin1_bytes
        raise _Refused(f"it names {module}.{name}, which a CIFAR batch never holds (refused, not run)")


class _Refused(pickle.UnpicklingError):
    """A CIFAR file asked for something the format never holds."""


def _np_integer_dtype(spec, align=False, copy=False):
    import numpy as np

    dtype = np.dtype(spec, bool(align), bool(copy))
    if dtype.kind not in "ui":
        raise _Refused(f"it holds a {dtype} array; a CIFAR batch holds integer arrays only")
    return dtype


def _np_reconstruct(subtype, shape, typecode):
    import numpy as np

    if subtype is not np.ndarray:
        raise _Refused("it reconstructs something other than a numpy array")
    return np.ndarray.__new__(np.ndarray, shape, np.uint8)  # BUILD then sets the real dtype, shape and bytes


def _np_frombuffer(buf, dtype, shape, order):
    import numpy as np

    return np.frombuffer(buf, dtype=_np_integer_dtype(dtype)).reshape(shape, order=order)


def _latin1_bytes(text, encoding="latin1"):
    if not isinstance(text, str) or encoding != "latin1":
        raise _Refused("it encodes something other than bytes")
    return text.encode("latin1")


def _unpickle_cifar(file: Path) -> dict:
    """A CIFAR batch or meta file through :class:`_CifarUnpickler`; a dict, or ``UnpicklingError``."""
    with open(file, "rb") as fh:
        out = _CifarUnpickler(fh, encoding="bytes").load()
    if not isinstance(out, dict):
        raise pickle.UnpicklingError(f"it holds a {type(out).__name__}, not a dict")
    return out


def _read_cifar(name: str, root: Path) -> ImageData:
    folder, train_files, test_files, label_key = _CIFAR[name]

    def read(files):
        xs, ys = [], []
        for f in files:
            try:
                batch = _unpickle_cifar(root / f)
                xs.append(torch.as_tensor(batch[b"data"], dtype=torch.uint8).reshape(-1, 3, 32, 32))
                ys.append(torch.as_tensor(batch[label_key], dtype=torch.long))
            except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
                raise DatasetError(
                    f"{root / f} is not a CIFAR batch in torchvision's format ({type(e).__name__}: {e}); "
                    f"delete {root} and fetch it again with --download"
                ) from None
            if len(xs[-1]) != len(ys[-1]):
                raise DatasetError(f"{root / f} holds {len(xs[-1])} images but {len(ys[-1])} labels")
        return torch.cat(xs), torch.cat(ys)

    meta_file = root / ("batches.meta" if name == "cifar10" else "meta")
    meta_key = b"label_names" if name == "cifar10" else b"fine_label_names"
    try:
        classes = [c.decode() for c in _unpickle_cifar(meta_file)[meta_key]]
    except _Refused as e:
        raise DatasetError(f"{meta_file} is not CIFAR metadata: {e}; delete {root} and fetch it again") from None
    except (OSError, pickle.UnpicklingError, KeyError, EOFError, TypeError, AttributeError, ValueError):
        classes = [str(i) for i in range(10 if name == "cifar10" else 100)]
    train_x, train_y = read(train_files)
    test_x, test_y = read(test_files)
    return ImageData(name, train_x, train_y, test_x, test_y, classes)


# ------------------------------------------------------------------------------------- ImageFolder


def _imagefolder_dirs(data_dir) -> tuple[Path, Path]:
    if data_dir is None:
        raise DatasetError("imagefolder needs --data-dir: a directory with train/<class>/* and test/<class>/* images")
    root = Path(data_dir).expanduser()
    train = root / "train"
    test = next((root / d for d in ("test", "val") if (root / d).is_dir()), root / "test")
    for d in (train, test):
        if not d.is_dir():
            raise DatasetError(
                f"imagefolder: expected {d}/ with one sub-directory of images per class "
                f"(the layout of torchvision's ImageFolder; the test split may also be called val/)"
            )
    return train, test


def imagefolder_counts(data_dir: str | os.PathLike | None) -> tuple[int, int, int] | None:
    """``(training files, test files, classes)`` of an ImageFolder tree, from its listing alone (no image is
    opened: a cost estimate's sizes); None without ``data_dir`` or its ``train/`` folder."""
    if data_dir is None:
        return None
    root = Path(data_dir).expanduser()
    train = root / "train"
    if not train.is_dir():
        return None
    test = next((root / d for d in ("test", "val") if (root / d).is_dir()), root / "test")
    files = [sum(len(names) for _, _, names in os.walk(d)) for d in (train, test)]
    return files[0], files[1], sum(1 for p in train.iterdir() if p.is_dir())


def _read_imagefolder(train_dir: Path, test_dir: Path, image_size: int | None, train_subset: int | None) -> ImageData:
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    try:
        classes, class_to_idx = find_classes(str(train_dir))
        test_classes, _ = find_classes(str(test_dir))
    except FileNotFoundError as e:
        raise DatasetError(f"imagefolder: {e}; expected one sub-directory of images per class") from None
    if test_classes != classes:
        raise DatasetError(f"imagefolder: {test_dir} has classes {test_classes}, {train_dir} has {classes}")

    def read(directory: Path, keep: int | None = None):
        try:
            samples = make_dataset(str(directory), class_to_idx, IMG_EXTENSIONS)
        except FileNotFoundError as e:  # a class folder without images
            raise DatasetError(f"imagefolder: {directory}: {' '.join(str(e).split())}") from None
        idx = subset_indices(len(samples), keep)
        if idx is not None:
            samples = [samples[i] for i in idx.tolist()]
        print(f"decoding {len(samples):,} images of {directory} (once: they are cached)", file=sys.stderr, flush=True)
        bar = Progress(len(samples), "decoding", stream=sys.stderr)
        done = [0]

        def decode(sample):
            image = _decode(sample[0], image_size)
            done[0] += 1
            bar.update(done[0])
            return image

        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            images = list(pool.map(decode, samples))
        bar.close()
        sizes = {tuple(im.shape) for im in images}
        if len(sizes) > 1:
            other, shape = next((s[0], tuple(m.shape)) for s, m in zip(samples, images) if m.shape != images[0].shape)
            raise DatasetError(
                f"imagefolder: images differ in size ({other} is {shape}, {samples[0][0]} {tuple(images[0].shape)}; "
                f"found {sorted(sizes)}); set image_size to resize them all"
            )
        return torch.stack(images), torch.tensor([s[1] for s in samples], dtype=torch.long)

    train_x, train_y = read(train_dir, train_subset)
    test_x, test_y = read(test_dir)
    return ImageData("imagefolder", train_x, train_y, test_x, test_y, classes)


def _decode(path: str, image_size: int | None) -> torch.Tensor:
    """One image file -> uint8 (3, H, W), RGB, resized (bilinear, antialiased) to ``image_size`` if given."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if image_size is not None and im.size != (image_size, image_size):
                im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return torch.from_numpy(np.array(im)).permute(2, 0, 1).contiguous()
    except OSError as e:
        raise DatasetError(f"imagefolder: cannot decode {path}: {e}") from None


def _cached(name: str, listing: list[tuple[str, int, int]], cache_dir, read, extra) -> ImageData:
    """:func:`~poolskip.data.classification.cache.cached` with ``read()`` returning an :class:`ImageData`."""
    d = cached(name, listing, cache_dir, lambda: _payload(read()), extra)
    return ImageData(name, d["train_x"], d["train_y"], d["test_x"], d["test_y"], d["classes"])


def _payload(data: ImageData) -> dict:
    return {k: getattr(data, k) for k in FIELDS}
