"""Datasets from tiny fixtures in their real on-disk layouts; batched augmentation; the tensor loader."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from poolskip.data import ClassificationAugment, DatasetError, TensorLoader, load_dataset
from poolskip.data.classification import readers as ds
from poolskip.data.classification.augment import cutout, random_crop, rotate
from poolskip.dist import Dist


def make_cifar(root, name="cifar10", per_batch=4, seed=0):
    """torchvision's pickled CIFAR layout with ``per_batch`` random images per file; returns (x, y) per split."""
    rng = np.random.default_rng(seed)
    folder, train_files, test_files, label_key = ds._CIFAR[name]
    d = root / folder
    d.mkdir(parents=True)
    n_classes = 10 if name == "cifar10" else 100
    out = {}
    for split, files in (("train", train_files), ("test", test_files)):
        xs, ys = [], []
        for f in files:
            x = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
            y = rng.integers(0, n_classes, per_batch).tolist()
            with open(d / f, "wb") as fh:
                pickle.dump({b"data": x, label_key: y, b"batch_label": b"x"}, fh)
            xs.append(x)
            ys += y
        out[split] = (torch.from_numpy(np.concatenate(xs)).reshape(-1, 3, 32, 32), torch.tensor(ys))
    meta, key = ("batches.meta", b"label_names") if name == "cifar10" else ("meta", b"fine_label_names")
    with open(d / meta, "wb") as fh:
        pickle.dump({key: [f"c{i}".encode() for i in range(n_classes)]}, fh)
    return out


def make_imagefolder(root, size=(6, 5), classes=("cat", "dog"), per_class=2, fmt="PNG", seed=0):
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        for c in classes:
            (root / split / c).mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                Image.fromarray(arr).save(root / split / c / f"{i}.{fmt.lower()}", fmt)


def test_a_data_dir_digits_does_not_read_is_said(recwarn):
    """digits ships with scikit-learn: a data_dir given with it is not read, and loading says so."""
    with pytest.warns(UserWarning, match="data_dir somewhere is not read: digits is scikit-learn's bundled copy"):
        load_dataset("digits", "somewhere")
    load_dataset("digits")
    assert not [w for w in recwarn if "is not read" in str(w.message)]


def test_digits_is_uint8_with_a_fixed_split():
    d = load_dataset("digits")
    assert d.train_x.dtype == torch.uint8 and d.train_x.shape[1:] == (1, 8, 8)
    assert len(d.train_x) + len(d.test_x) == 1797 and d.num_classes == 10
    assert int(d.train_x.max()) == 255
    assert torch.equal(load_dataset("digits").test_y, d.test_y)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_batches_load_exactly_and_are_cached(tmp_path, monkeypatch, name):
    truth = make_cifar(tmp_path / "data", name)
    cache = tmp_path / "cache"
    d = load_dataset(name, tmp_path / "data", cache_dir=cache)
    assert torch.equal(d.train_x, truth["train"][0]) and torch.equal(d.train_y, truth["train"][1])
    assert torch.equal(d.test_x, truth["test"][0]) and d.classes[:2] == ["c0", "c1"]
    assert len(list(cache.glob(f"{name}-*.pt"))) == 1 and not list(cache.glob(".*tmp"))

    def no_decoding(*a):
        raise AssertionError("decoded again despite a fresh cache")

    monkeypatch.setattr(ds, "_read_cifar", no_decoding)
    again = load_dataset(name, tmp_path / "data" / ds._CIFAR[name][0], cache_dir=cache)  # the folder itself works
    assert torch.equal(again.test_x, d.test_x)


def test_cache_key_follows_the_source(tmp_path):
    make_cifar(tmp_path / "a", seed=0)
    make_cifar(tmp_path / "b", seed=1)
    a = load_dataset("cifar10", tmp_path / "a", cache_dir=tmp_path / "c")
    b = load_dataset("cifar10", tmp_path / "b", cache_dir=tmp_path / "c")
    assert not torch.equal(a.train_x, b.train_x) and len(list((tmp_path / "c").glob("*.pt"))) == 2


def test_missing_cifar_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DatasetError, match=r"cifar-10-batches-py.*--download"):
        load_dataset("cifar10", tmp_path)
    with pytest.raises(DatasetError, match="--data-dir"):
        load_dataset("cifar100", None)


def test_malformed_cifar_batch_names_the_file(tmp_path):
    make_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_dataset("cifar10", tmp_path, cache_dir=tmp_path / "c")


def test_imagefolder_png_is_exact_and_jpeg_decodes(tmp_path):
    make_imagefolder(tmp_path / "png", fmt="PNG")
    d = load_dataset("imagefolder", tmp_path / "png", cache_dir=tmp_path / "c")
    assert d.classes == ["cat", "dog"] and d.train_x.shape == (4, 3, 5, 6) and d.train_y.tolist() == [0, 0, 1, 1]
    first = np.asarray(Image.open(tmp_path / "png" / "train" / "cat" / "0.png"))
    assert torch.equal(d.train_x[0], torch.tensor(first).permute(2, 0, 1))
    make_imagefolder(tmp_path / "jpg", fmt="JPEG")
    j = load_dataset("imagefolder", tmp_path / "jpg", cache_dir=tmp_path / "c")
    assert j.test_x.shape == (4, 3, 5, 6) and j.test_x.dtype == torch.uint8


def test_imagefolder_of_linked_class_folders_is_cached_by_what_the_links_hold(tmp_path):
    """A tree whose class folders are symbolic links (as torchvision's ImageFolder follows them) listed no
    file, so every such tree shared one cache entry: a second dataset was read as the first's images and
    classes, and re-pointed links kept the old images."""
    make_imagefolder(tmp_path / "pool_a", classes=("cat", "dog"), seed=1)
    make_imagefolder(tmp_path / "pool_b", classes=("ant", "bee", "cow"), seed=2)
    for tree, pool, classes in (("a", "pool_a", ("cat", "dog")), ("b", "pool_b", ("ant", "bee", "cow"))):
        for split in ("train", "test"):
            (tmp_path / tree / split).mkdir(parents=True)
            for c in classes:
                (tmp_path / tree / split / c).symlink_to(tmp_path / pool / split / c, target_is_directory=True)
    a = load_dataset("imagefolder", tmp_path / "a", cache_dir=tmp_path / "c")
    b = load_dataset("imagefolder", tmp_path / "b", cache_dir=tmp_path / "c")
    assert a.classes == ["cat", "dog"] and b.classes == ["ant", "bee", "cow"] and len(b.train_x) == 6
    (tmp_path / "a" / "train" / "cat").unlink()
    (tmp_path / "a" / "train" / "cat").symlink_to(tmp_path / "pool_b" / "train" / "ant", target_is_directory=True)
    again = load_dataset("imagefolder", tmp_path / "a", cache_dir=tmp_path / "c")
    assert torch.equal(again.train_x[:2], b.train_x[:2]) and not torch.equal(again.train_x[:2], a.train_x[:2])


def test_imagefolder_sizes_must_agree_unless_resized(tmp_path):
    make_imagefolder(tmp_path, size=(6, 6))
    Image.fromarray(np.zeros((9, 7, 3), np.uint8)).save(tmp_path / "train" / "dog" / "odd.png")
    with pytest.raises(DatasetError, match=r"odd.png is \(3, 9, 7\), .*\.png \(3, 6, 6\).*image_size"):
        load_dataset("imagefolder", tmp_path, cache_dir=tmp_path / "c")
    d = load_dataset("imagefolder", tmp_path, cache_dir=tmp_path / "c", image_size=4)
    assert d.train_x.shape == (5, 3, 4, 4)


def test_imagefolder_missing_split_names_the_path(tmp_path):
    (tmp_path / "train" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match=r"test/ with one sub-directory"):
        load_dataset("imagefolder", tmp_path)


def test_random_crop_matches_padding_and_slicing():
    x = torch.rand(5, 2, 6, 7)
    dy, dx = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([4, 0, 2, 1, 3])
    out = random_crop(x, dy, dx, 2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(5):
        assert torch.equal(out[i], padded[i, :, dy[i] : dy[i] + 6, dx[i] : dx[i] + 7])


def test_rotation_by_zero_and_ninety_degrees():
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(rotate(x, torch.zeros(2)), x)
    r = rotate(x, torch.full((2,), 90.0))
    assert torch.equal(r, torch.rot90(x, 1, (2, 3))) or torch.equal(r, torch.rot90(x, -1, (2, 3)))


def test_cutout_square_is_clipped_at_the_border():
    x = torch.ones(2, 1, 10, 10)
    out = cutout(x, torch.tensor([5, 0]), torch.tensor([5, 9]), 4)
    assert (out[0] == 0).sum() == 16 and (out[0, 0, 3:7, 3:7] == 0).all()
    assert (out[1] == 0).sum() == 2 * 3 and (out[1, 0, :2, 7:] == 0).all()  # rows -2..1, cols 7..10 clipped


def test_loader_shares_add_up_to_the_single_process_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (37, 3, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.arange(37)
    kw = dict(mean=[0.5] * 3, std=[0.25] * 3, augment=ClassificationAugment(2, True, 10.0, 3), shuffle=True, seed=7)
    single = list(TensorLoader(x, y, 10, **kw).batches(epoch=3))
    ranks = [list(TensorLoader(x, y, 10, dist=Dist(r, 2), **kw).batches(epoch=3)) for r in (0, 1)]
    assert len(single) == 4 and [b.global_size for b in single] == [10, 10, 10, 7]
    for b, r0, r1 in zip(single, *ranks):
        assert torch.equal(torch.cat([r0.inputs, r1.inputs]), b.inputs)
        assert torch.equal(torch.cat([r0.targets, r1.targets]), b.targets)
    # any batch can be rebuilt without the ones before it (what exact mid-epoch resume needs)
    tail = list(TensorLoader(x, y, 10, **kw).batches(epoch=3, start=2))
    assert torch.equal(tail[0].inputs, single[2].inputs)
    other_epoch = next(TensorLoader(x, y, 10, **kw).batches(epoch=4))
    assert not torch.equal(other_epoch.targets, single[0].targets)
    assert sorted(torch.cat([b.targets for b in single]).tolist()) == list(range(37))


def test_loader_rejects_stats_of_the_wrong_length():
    with pytest.raises(ValueError, match="mean=null"):
        TensorLoader(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2), 2, mean=[0.1] * 3, std=[0.2] * 3)


def _python2_batch(x: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR batch pickled as the real files are (Python 2, protocol 2: str as SHORT_BINSTRING/BINSTRING,
    the array through ``numpy.core.multiarray._reconstruct``), assembled opcode by opcode."""
    import struct

    def s(b: bytes) -> bytes:
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    n, width = x.shape
    out = b"\x80\x02}(" + s(b"data")
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + s(b"b") + b"\x87R"
    out += b"(K\x01K" + bytes([n]) + b"M" + struct.pack("<H", width) + b"\x86"
    out += b"cnumpy\ndtype\n" + s(b"u1") + b"K\x00K\x01\x87R(K\x03" + s(b"|")
    out += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    out += b"\x89" + s(x.tobytes()) + b"tb"
    out += s(b"labels") + b"(" + b"".join(b"K" + bytes([v]) for v in labels) + b"l"
    return out + b"u."


@pytest.mark.parametrize("writer", ["python2", "protocol2", "protocol4", "protocol5"])
def test_cifar_batches_of_every_pickle_protocol_load(tmp_path, writer):
    """The restricted unpickler reads the real files' Python 2 pickles and what numpy writes today."""
    truth = make_cifar(tmp_path)
    x = truth["train"][0][:4].reshape(4, -1).numpy()
    y = truth["train"][1][:4].tolist()
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    if writer == "python2":
        batch.write_bytes(_python2_batch(x, y))
    else:
        batch.write_bytes(pickle.dumps({b"data": x, b"labels": y}, protocol=int(writer[-1])))
    d = load_dataset("cifar10", tmp_path, cache_dir=tmp_path / "c")
    assert torch.equal(d.train_x[:4], truth["train"][0][:4]) and d.train_y[:4].tolist() == y


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("file", ["data_batch_2", "batches.meta"])
def test_hostile_cifar_pickles_are_refused_not_run(tmp_path, file):
    make_cifar(tmp_path)
    marker = tmp_path / "ran"
    target = tmp_path / "cifar-10-batches-py" / file
    target.write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"label_names": [_RunsCode(marker)]}))
    with pytest.raises(DatasetError, match=rf"{file}.*(posix|os)\.system") as e:
        load_dataset("cifar10", tmp_path, cache_dir=tmp_path / "c")
    assert not marker.exists() and len(str(e.value).splitlines()) == 1
    # an object array would unpickle its items with arbitrary globals: refused at its dtype
    target.write_bytes(pickle.dumps({b"data": np.array([1, "x"], dtype=object), b"label_names": [b"a"]}))
    with pytest.raises(DatasetError, match=rf"{file}.*object"):
        load_dataset("cifar10", tmp_path, cache_dir=tmp_path / "c")
