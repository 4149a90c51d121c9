"""Segmentation datasets in their real layouts (VOC, Cityscapes, CamVid, segfolder) and the joint augmentation."""

import numpy as np
import pytest
import torch
from PIL import Image

from poolskip.data import DatasetError
from poolskip.data.seg2d import IGNORE, Seg2dAugment, SegLoader, SegSplit, load_segmentation
from poolskip.data.seg2d import cache as seg_cache
from poolskip.dist import Dist
from seg_layouts import make_camvid, make_cityscapes, make_segfolder, make_voc

pytestmark = pytest.mark.usefixtures("one_thread")


def _raw(path):
    return np.array(Image.open(path))


def test_voc_palette_masks_become_indices_with_255_kept(tmp_path):
    root = make_voc(tmp_path / "voc")
    d = load_segmentation("voc", root, cache_dir=tmp_path / "cache")
    assert (len(d.train), len(d.eval), d.num_classes) == (4, 2, 21)
    assert d.classes[15] == "person"
    voc = root / "VOCdevkit/VOC2012"
    assert d.train.names[0] == "2007_000002.jpg"
    mask = torch.from_numpy(_raw(voc / "SegmentationClass/2007_000002.png"))
    assert torch.equal(d.train.masks[0], mask)
    assert set(d.train.masks[0].unique().tolist()) <= {0, 1, 5, 15, 20, IGNORE}
    assert d.train.images[0].shape == (3, 33, 50) and d.train.images[0].dtype == torch.uint8
    assert {tuple(m.shape) for m in d.train.masks} == {(33, 50), (45, 37), (41, 43), (36, 48)}  # sizes differ
    # data_dir may also be the VOC2012 folder itself
    assert len(load_segmentation("voc", voc, cache_dir=tmp_path / "cache").train) == 4


def test_voc_trainaug_when_segmentation_class_aug_exists(tmp_path):
    root = make_voc(tmp_path / "voc", aug=True)
    d = load_segmentation("voc", root, cache_dir=tmp_path / "cache")
    assert len(d.train) == 6 and "trainaug" in d.notes[0]  # 4 VOC train + 2 SBD, never the val ids
    assert not set(d.train.names) & {"2007_000000.jpg", "2007_000001.jpg"}
    assert set(torch.cat([m.flatten() for m in d.train.masks]).unique().tolist()) <= {0, 2, 3}
    voc = root / "VOCdevkit/VOC2012"
    (voc / "ImageSets/Segmentation/train_aug.txt").write_text("2008_000001\n2007_000003\n")
    assert load_segmentation("voc", root, cache_dir=tmp_path / "cache").train.names == [
        "2008_000001.jpg",
        "2007_000003.jpg",
    ]
    assert len(load_segmentation("voc", root, voc_trainaug=False, cache_dir=tmp_path / "cache").train) == 4
    # a list holding a val id would train on an evaluation image: refused, naming it
    (voc / "ImageSets/Segmentation/train_aug.txt").write_text("2008_000001\n2007_000001\n")
    with pytest.raises(DatasetError, match=r"train_aug.txt lists 1 image\(s\) of .*val.txt \(e.g. 2007_000001\)"):
        load_segmentation("voc", root, cache_dir=tmp_path / "cache")


def test_cityscapes_label_ids_map_to_19_train_ids(tmp_path):
    root = make_cityscapes(tmp_path / "cs")
    d = load_segmentation("cityscapes", root, cache_dir=tmp_path / "cache")
    assert (len(d.train), len(d.eval), d.num_classes) == (4, 2, 19)
    raw = torch.from_numpy(_raw(root / "gtFine/train/aachen/aachen_000000_000019_gtFine_labelIds.png"))
    mapped = d.train.masks[0]
    for label_id, train_id in ((7, 0), (8, 1), (26, 13), (33, 18), (0, IGNORE), (1, IGNORE), (4, IGNORE)):
        assert (mapped[raw == label_id] == train_id).all()
    assert d.classes[13] == "car"


def test_camvid_list_files_are_resolved_by_file_name_and_void_is_ignored(tmp_path):
    root = make_camvid(tmp_path / "camvid")
    d = load_segmentation("camvid", root, eval_split="test", cache_dir=tmp_path / "cache")
    assert (len(d.train), len(d.eval), d.num_classes) == (6, 3, 11)
    raw = torch.from_numpy(_raw(root / "trainannot/0001TP_train0000.png"))
    assert torch.equal(d.train.masks[0], torch.where(raw == 11, IGNORE, raw))
    both = load_segmentation("camvid", root, train_split="train+val", eval_split="test", cache_dir=tmp_path / "cache")
    assert len(both.train) == 8
    # a list file naming a missing image: the line and the resolved path
    (root / "train" / "0001TP_train0003.png").unlink()
    with pytest.raises(DatasetError, match=r"train.txt line 4 names /SegNet/CamVid/train/0001TP_train0003.png"):
        load_segmentation("camvid", root, cache_dir=tmp_path / "cache")


def test_segfolder_infers_classes_and_ignores_its_ignore_value(tmp_path):
    root = make_segfolder(tmp_path / "sf")
    d = load_segmentation("segfolder", root, cache_dir=tmp_path / "cache")
    assert d.num_classes == 3 and len(d.train) == 4 and len(d.eval) == 2
    assert set(d.train.masks[0].unique().tolist()) <= {0, 1, 2, IGNORE}


def test_bad_inputs_name_the_file(tmp_path):
    root = make_camvid(tmp_path / "camvid")
    mask = root / "trainannot/0001TP_train0001.png"
    Image.fromarray(np.full((24, 32), 12, np.uint8), mode="L").save(mask)  # 12: neither a class nor void
    with pytest.raises(DatasetError, match=r"0001TP_train0001.png holds label value\(s\) \[12\], outside 0-10"):
        load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    Image.fromarray(np.zeros((20, 32), np.uint8), mode="L").save(mask)  # wrong size
    with pytest.raises(DatasetError, match=r"mask .*0001TP_train0001.png is 32x20 but its image .* is 32x24"):
        load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(mask)  # a colour mask
    with pytest.raises(DatasetError, match="mode RGB; expected a palette or greyscale index PNG"):
        load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match=r"expected .*VOCdevkit/VOC2012/"):
        load_segmentation("voc", tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match=r"leftImg8bit/train/<city>"):
        load_segmentation("cityscapes", tmp_path, cache_dir=tmp_path / "cache")
    with pytest.raises(DatasetError, match="set data_dir"):
        load_segmentation("camvid", None)


def test_decoded_once_then_read_from_the_cache(tmp_path, monkeypatch):
    root = make_camvid(tmp_path / "camvid")
    first = load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("seg-camvid-*.bin"))) == 2
    assert len(list((tmp_path / "cache").glob("seg-camvid-*.json"))) == 2

    def boom(pair):
        raise AssertionError("decoded again")

    monkeypatch.setattr(seg_cache, "_decode_pair", boom)
    again = load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    assert all(torch.equal(a, b) for a, b in zip(first.train.images, again.train.images))
    monkeypatch.undo()
    Image.fromarray(np.zeros((24, 32), np.uint8), mode="L").save(root / "valannot/0001TP_val0000.png")  # changed
    fresh = load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    assert (fresh.eval.masks[0] == 0).all()


def test_cache_is_memory_mapped_and_a_truncated_one_is_rebuilt(tmp_path):
    root = make_camvid(tmp_path / "camvid")
    first = load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    # the images are views of one memory-mapped file (nothing of the split is held in process memory)
    assert isinstance(first.train.images.data, np.memmap) and first.train.images[0].dtype == torch.uint8
    sizes = [(im.shape, m.shape) for im, m in zip(first.train.images, first.train.masks)]
    assert all(i[1:] == m and i[0] == 3 for i, m in sizes)
    (bin_file,) = (tmp_path / "cache").glob("seg-camvid-train-*.bin")
    size = bin_file.stat().st_size
    assert size == sum(4 * m.numel() for m in first.train.masks)
    images, masks = [im.clone() for im in first.train.images], [m.clone() for m in first.train.masks]
    del first
    with open(bin_file, "r+b") as fh:  # a run killed mid-write cannot leave this (atomic), but a full disk can
        fh.truncate(size // 2)
    again = load_segmentation("camvid", root, cache_dir=tmp_path / "cache")
    assert bin_file.stat().st_size == size
    assert all(torch.equal(a, b) for a, b in zip(images, again.train.images))
    assert all(torch.equal(a, b) for a, b in zip(masks, again.train.masks))
    # a training subset stays a lazy view of the same file
    sub = load_segmentation("camvid", root, cache_dir=tmp_path / "cache", train_subset=2)
    assert len(sub.train) == 2 and isinstance(sub.train.images.data, np.memmap)


# ------------------------------------------------------------------------------------------ augmentation


def _split(n=5, h=30, w=40, seed=0, sizes=None):
    g = torch.Generator().manual_seed(seed)
    sizes = sizes or [(h, w)] * n
    images = [torch.randint(0, 256, (3, a, b), generator=g, dtype=torch.uint8) for a, b in sizes]
    masks = [torch.randint(0, 4, (a, b), generator=g, dtype=torch.uint8) for a, b in sizes]
    return SegSplit(images, masks, [f"{i}" for i in range(len(sizes))])


def test_identity_parameters_reproduce_image_and_mask_exactly():
    s = _split()
    aug = Seg2dAugment((30, 40), (1.0, 1.0), flip=False)
    p = aug.sample(torch.tensor([[30, 40]] * 5), torch.Generator().manual_seed(0))
    x, y = aug.apply(s.images, s.masks, p)
    close = dict(atol=1e-3, rtol=0)  # bilinear weights at exact pixel centres, up to float32 rounding of the grid
    torch.testing.assert_close(x, torch.stack(s.images).float(), **close)
    assert torch.equal(y, torch.stack(s.masks).long())
    p["flip"][:] = True
    x, y = aug.apply(s.images, s.masks, p)
    torch.testing.assert_close(x, torch.stack(s.images).float().flip(-1), **close)
    assert torch.equal(y, torch.stack(s.masks).long().flip(-1))


def test_crop_inside_a_larger_image_is_a_slice_and_padding_is_image_0_mask_ignore():
    s = _split(n=1, h=30, w=40)
    aug = Seg2dAugment((10, 12), (1.0, 1.0), flip=False)
    p = {"scaled": torch.tensor([[30.0, 40.0]]), "offset": torch.tensor([[7.0, 20.0]]), "flip": torch.tensor([False])}
    x, y = aug.apply(s.images, s.masks, p)
    torch.testing.assert_close(x[0], s.images[0][:, 7:17, 20:32].float(), atol=1e-3, rtol=0)
    assert torch.equal(y[0], s.masks[0][7:17, 20:32].long())
    big = Seg2dAugment((34, 46), (1.0, 1.0), flip=False)  # larger than the image: placed at offset (-2, -3)
    p = {"scaled": torch.tensor([[30.0, 40.0]]), "offset": torch.tensor([[-2.0, -3.0]]), "flip": torch.tensor([False])}
    x, y = big.apply(s.images, s.masks, p)
    torch.testing.assert_close(x[0, :, 2:32, 3:43], s.images[0].float(), atol=1e-3, rtol=0)
    assert torch.equal(y[0, 2:32, 3:43], s.masks[0].long())
    assert (x[0, :, :2] == 0).all() and (x[0, :, :, 43:] == 0).all()
    assert (y[0, :2] == IGNORE).all() and (y[0, :, 43:] == IGNORE).all()


def test_scaling_by_two_repeats_mask_pixels():
    s = _split(n=1, h=6, w=8)
    aug = Seg2dAugment((12, 16), (2.0, 2.0), flip=False)
    p = aug.sample(torch.tensor([[6, 8]]), torch.Generator().manual_seed(0))
    _, y = aug.apply(s.images, s.masks, p)
    assert torch.equal(y[0], s.masks[0].long().repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_sampled_offsets_stay_in_range_and_jitter_keeps_padding_black():
    aug = Seg2dAugment((20, 20), (0.5, 2.0), flip=True, color_jitter=0.5)
    sizes = torch.tensor([[30, 40]] * 200)
    p = aug.sample(sizes, torch.Generator().manual_seed(3))
    scaled, off = p["scaled"], p["offset"]
    lo = torch.minimum(scaled - 20, torch.zeros(2))
    hi = torch.maximum(scaled - 20, torch.zeros(2))
    assert ((off >= lo) & (off <= hi)).all() and ((scaled >= 15) & (scaled <= 80)).all()
    assert 0.3 < p["flip"].float().mean() < 0.7 and ((p["jitter"] >= 0.5) & (p["jitter"] <= 1.5)).all()
    s = _split(n=4, h=8, w=8)
    x, y = aug.apply(s.images, s.masks, {k: v[:4] for k, v in p.items()})
    assert ((x == 0).all(1) | (y != IGNORE)).all() and x.min() >= 0 and x.max() <= 255


def _loader(split, **kw):
    aug = Seg2dAugment((16, 16), (0.5, 1.5), flip=True, color_jitter=0.2)
    return SegLoader(split, 4, mean=[0.5] * 3, std=[0.25] * 3, augment=aug, seed=7, **kw)


def test_batches_depend_on_seed_epoch_step_only_and_shares_add_up():
    s = _split(n=10, sizes=[(20 + i, 30 - i) for i in range(10)])  # every image a different size
    one = _loader(s)
    assert len(one) == 2  # 10 // 4: the incomplete batch is dropped
    full = list(one.batches(3))
    resumed = list(one.batches(3, start=1))
    assert torch.equal(full[1].inputs, resumed[0].inputs) and torch.equal(full[1].targets, resumed[0].targets)
    assert not torch.equal(full[0].inputs, list(one.batches(4))[0].inputs)
    shares = [list(_loader(s, dist=Dist(r, 2)).batches(3)) for r in range(2)]
    for b, batch in enumerate(full):
        assert batch.global_size == 4 and shares[0][b].global_size == 4
        torch.testing.assert_close(torch.cat([shares[0][b].inputs, shares[1][b].inputs]), batch.inputs)
        assert torch.equal(torch.cat([shares[0][b].targets, shares[1][b].targets]), batch.targets)


def test_eval_batches_are_whole_images_grouped_by_size_and_split_by_rank():
    sizes = [(10, 12), (11, 12), (10, 12), (10, 12), (11, 12)]
    s = _split(sizes=sizes)
    ev = SegLoader(s, 2, mean=[0.5] * 3, std=[0.25] * 3)
    assert ev.eval_groups() == [[0, 2], [3], [1, 4]]
    batches = list(ev.eval_batches())
    assert [tuple(b.inputs.shape) for b in batches] == [(2, 3, 10, 12), (1, 3, 10, 12), (2, 3, 11, 12)]
    torch.testing.assert_close(batches[0].inputs[1], (s.images[2].float() - 127.5) / 63.75)
    ranks = [[b.targets for b in SegLoader(s, 2, mean=[0.5] * 3, std=[0.25] * 3, dist=Dist(r, 2)).eval_batches()]
             for r in range(2)]  # fmt: skip
    assert len(ranks[0]) == 2 and len(ranks[1]) == 1


def test_voc_list_ids_cannot_lead_out_of_the_dataset(tmp_path):
    """A split list's id such as ``../../../secret`` (or a linked image pointing elsewhere) is refused, naming
    the list and the id; a linked JPEGImages folder (data kept elsewhere) is fine."""
    root = make_voc(tmp_path / "voc")
    voc = root / "VOCdevkit" / "VOC2012"
    (tmp_path / "secret.jpg").write_bytes((voc / "JPEGImages" / "2007_000000.jpg").read_bytes())
    listing = voc / "ImageSets/Segmentation/val.txt"
    listing.write_text("2007_000000\n../../../../secret\n")
    with pytest.raises(DatasetError) as e:
        load_segmentation("voc", root, cache_dir=tmp_path / "cache")
    assert f"voc: {listing} names '../../../../secret', which points outside the dataset folder" in str(e.value)
    listing.write_text("2007_000000\n2007_000001\n")
    image = voc / "JPEGImages" / "2007_000001.jpg"
    image.rename(tmp_path / "outside.jpg")
    image.symlink_to(tmp_path / "outside.jpg")
    with pytest.raises(DatasetError, match=f"names '2007_000001', which points outside .* \\(to {tmp_path}/outside"):
        load_segmentation("voc", root, cache_dir=tmp_path / "cache")
    image.unlink()
    (tmp_path / "outside.jpg").rename(image)
    (voc / "JPEGImages").rename(tmp_path / "elsewhere")
    (voc / "JPEGImages").symlink_to(tmp_path / "elsewhere")
    assert len(load_segmentation("voc", root, cache_dir=tmp_path / "cache").eval) == 2
