"""3D datasets in their layouts, splits, preprocessing and its cache, deterministic patch sampling."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pytest
import torch

pytest.importorskip("monai")
pytest.importorskip("nibabel")

import volumetric_data as vd  # noqa: E402
from poolskip.data import DatasetError  # noqa: E402
from poolskip.data import seg3d as V  # noqa: E402
from poolskip.dist import Dist  # noqa: E402


@pytest.fixture(scope="module")
def msd(tmp_path_factory):
    return vd.decathlon(tmp_path_factory.mktemp("Task99_Tiny"), n=6)


def test_decathlon_layout(msd):
    ds = V.load_volumes("decathlon", msd)
    assert ds.classes == ["background", "class1", "class2"] and ds.channels == ["MRI"]
    assert sorted(ds.cases) == [f"task_{i:03d}" for i in range(6)] and ds.test_ids == []
    image, label, affine = V.read_case(ds.cases["task_000"], 3)
    assert image.shape == (1, *vd.SHAPE) and label.shape == vd.SHAPE and set(np.unique(label)) <= {0, 1, 2}


def test_nnunet_raw_layout_two_channels(tmp_path):
    root = vd.nnunet_raw(tmp_path / "Dataset999_Tiny", n=3, channels=("CT", "T2"))
    ds = V.load_volumes("nnunet", root)
    assert ds.channels == ["CT", "T2"] and ds.classes == ["background", "organ1", "organ2"]
    image, _, _ = V.read_case(ds.cases["case_001"], 3)
    assert image.shape == (2, *vd.SHAPE)
    (root / "imagesTr" / "case_002_0001.nii.gz").unlink()
    with pytest.raises(DatasetError, match=r"case_002_0001\.nii\.gz"):
        V.load_volumes("nnunet", root)


def test_btcv_and_amos_splits(tmp_path):
    names = [f"img{i:04d}" for i in range(1, 31)]
    btcv = vd.listed(tmp_path / "btcv", "dataset_0.json", {"training": names[:24], "validation": names[24:]})
    ds = V.load_volumes("btcv", btcv)
    assert len(ds.cases) == 30 and len(ds.test_ids) == 12 and len(ds.train_ids) == 18  # the paper's 18/12
    assert V.load_volumes("btcv", btcv).test_ids == ds.test_ids  # seeded
    train, test = ["amos_0001", "amos_0002", "amos_0507", "amos_0600"], ["amos_0003", "amos_0540"]
    amos = vd.listed(tmp_path / "amos", "dataset.json", {"training": train, "validation": test})
    ds = V.load_volumes("amos", amos)
    assert ds.test_ids == ["amos_0003", "amos_0540"] and ds.train_ids == [
        "amos_0001",
        "amos_0002",
        "amos_0507",
        "amos_0600",
    ]
    assert [ds.cases[i].modalities for i in ("amos_0001", "amos_0507")] == [["CT"], ["MRI"]]  # ids > 500 are MRI


def test_five_fold_splits_are_seeded_disjoint_and_reused(msd, tmp_path):
    ds = V.load_volumes("decathlon", msd)
    s = V.make_splits(ds, 5, seed=3)
    vals = [c for f in s["folds"] for c in f["val"]]
    assert sorted(vals) == sorted(ds.cases) and len(set(vals)) == 6
    for f in s["folds"]:
        assert not set(f["train"]) & set(f["val"]) and sorted(f["train"] + f["val"]) == sorted(ds.cases)
    assert V.make_splits(ds, 5, seed=3) == s and V.make_splits(ds, 5, seed=4) != s
    path = tmp_path / "splits.json"
    assert V.read_splits(path, ds, 5, 3) == s and path.exists()
    edited = json.loads(path.read_text())
    fold = edited["folds"][0]  # a hand edit that still splits the training cases: swap one train and one val case
    fold["train"], fold["val"] = (
        sorted([*fold["train"][1:], fold["val"][0]]),
        sorted([*fold["val"][1:], fold["train"][0]]),
    )
    path.write_text(json.dumps(edited))
    assert V.read_splits(path, ds, 5, 3)["folds"][0] == fold  # the file wins: reused as written
    edited["test"] = ["nobody"]
    path.write_text(json.dumps(edited))
    with pytest.raises(DatasetError, match=r"1 cases of the file are not in the dataset \(nobody\)"):
        V.read_splits(path, ds, 5, 3)
    fold["val"].append(fold["train"][0])  # a case in both parts
    edited["test"] = []
    path.write_text(json.dumps(edited))
    with pytest.raises(DatasetError, match="fold 0 does not split the 6 training cases into disjoint"):
        V.read_splits(path, ds, 5, 3)


def _smaller_copy(src, dst, n):
    """The first ``n`` cases of the Decathlon folder ``src`` as their own dataset (files copied)."""
    desc = json.loads((src / "dataset.json").read_text())
    desc["training"] = desc["training"][:n]
    for sub in ("imagesTr", "labelsTr"):
        (dst / sub).mkdir(parents=True)
    for e in desc["training"]:
        for key in ("image", "label"):
            (dst / e[key]).write_bytes((src / e[key]).read_bytes())
    (dst / "dataset.json").write_text(json.dumps(desc))
    return dst


HOW_TO = "delete it to have it written again, or point segmentation3d.split_file at another file"


def test_splits_record_and_check_what_they_were_made_for(msd, tmp_path):
    """A splits file stores the fold count, seed and case set; another run's are refused, never used."""
    ds = V.load_volumes("decathlon", msd)
    path = tmp_path / "splits.json"
    s = V.read_splits(path, ds, 5, 3)
    assert (s["format"], s["num_folds"], s["seed"], s["case_set"]) == (2, 5, 3, V.case_set_hash(ds))
    for folds, seed, message in [
        (3, 3, "holds 5 folds, the run asks for num_folds=3"),
        (5, 4, "was made with split_seed=3, the run asks for split_seed=4"),
    ]:
        with pytest.raises(DatasetError) as e:
            V.read_splits(path, ds, folds, seed)
        assert str(e.value) == f"splits file {path} {message}; {HOW_TO}"
    small = V.load_volumes("decathlon", _smaller_copy(msd, tmp_path / "small", 4))
    assert V.case_set_hash(small) != V.case_set_hash(ds)
    assert V.default_splits_name(small, 5, 3) != V.default_splits_name(ds, 5, 3)  # a file of its own
    assert V.default_splits_name(ds, 5, 3) == f"splits_decathlon_Tiny_{V.case_set_hash(ds)[:8]}_k5_s3.json"
    hostile = V.VolumeDataset("../../x y", "amos", tmp_path, [], [], {})  # a dataset.json "name" is no path
    assert V.default_splits_name(hostile, 5, 0).startswith("splits_amos_x_y_")
    small_path = tmp_path / "small.json"
    V.read_splits(small_path, small, 2, 3)
    with pytest.raises(DatasetError) as e:
        V.read_splits(small_path, ds, 2, 3)  # the whole dataset on the small copy's file
    assert str(e.value) == (
        f"splits file {small_path} splits 4 training + 0 test cases, the dataset at {msd} has 6 + 0; 2 of its "
        f"cases are not in the file (task_004, task_005); {HOW_TO}"
    )
    with pytest.raises(DatasetError, match="2 cases of the file are not in the dataset"):
        V.read_splits(path, small, 5, 3)
    old = {k: v for k, v in s.items() if k not in ("format", "case_set")}  # as an older poolskip wrote it
    path.write_text(json.dumps(old))
    with pytest.raises(DatasetError, match=f"has format 1, not 2 \\(an older poolskip wrote it\\).*; {HOW_TO}$"):
        V.read_splits(path, ds, 5, 3)
    for text in ("[1, 2]", "{not json", '{"format": 2, "folds": 7}'):
        path.write_text(text)
        with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}: not a splits file .*; {HOW_TO}$"):
            V.read_splits(path, ds, 5, 3)


def _broken(tmp_path, what):
    root = vd.decathlon(tmp_path / what, n=2)
    label = root / "labelsTr" / "task_001.nii.gz"
    if what == "shape":
        vd.save(label, np.zeros((5, 5, 5), np.uint8))
    elif what == "affine":
        vd.save(label, vd.volume(1)[1], spacing=(2.0, 1.0, 1.0))
    elif what == "values":
        vd.save(label, np.full(vd.SHAPE, 7, np.uint8))
    elif what == "corrupt":
        label.write_bytes(gzip.compress(b"not a nifti")[:20])
    elif what == "missing":
        label.unlink()
    return root, label


@pytest.mark.parametrize(
    "what, message",
    [("shape", "label shape"), ("affine", "affine differs"), ("values", "outside the 3 classes"),
     ("corrupt", "not a readable NIfTI"), ("missing", "does not exist")],
)  # fmt: skip
def test_bad_input_names_the_file(tmp_path, what, message):
    root, label = _broken(tmp_path, what)
    with pytest.raises(DatasetError, match=message) as e:
        ds = V.load_volumes("decathlon", root)
        V.read_case(ds.cases["task_001"], 3)
    assert "task_001" in str(e.value) and "\n" not in str(e.value)


def test_missing_dataset_json(tmp_path):
    with pytest.raises(DatasetError, match="dataset.json not found"):
        V.load_volumes("decathlon", tmp_path)


def test_preprocessing_resamples_normalises_and_caches(tmp_path, monkeypatch):
    root = vd.decathlon(tmp_path / "aniso", n=2, spacing=(1.0, 1.0, 2.0), modality="CT")
    ds = V.load_volumes("decathlon", root)
    spacing, median = V.plan_geometry(ds, sorted(ds.cases), (1.0, 1.0, 1.0))
    assert median == [vd.SHAPE[0], vd.SHAPE[1], 2 * vd.SHAPE[2]]
    prep = V.Preprocessing(spacing, (0.0, 100.0))
    vols = V.preprocess_all(ds, ["task_000"], prep, tmp_path / "cache")
    v = vols["task_000"]
    assert v["image"].shape[1:] == v["label"].shape and v["label"].shape[2] > vd.SHAPE[2]  # z resampled to 1 mm
    assert 0.0 <= float(v["image"].min()) and float(v["image"].max()) <= 1.0  # the CT window, scaled
    assert set(v["locations"]) == {"1", "2"} and v["label"].dtype == torch.uint8
    with monkeypatch.context() as m:
        m.setattr(V, "preprocess_case", lambda *a: pytest.fail("the cache was not used"))
        again = V.preprocess_all(ds, ["task_000"], prep, tmp_path / "cache")
    assert torch.equal(again["task_000"]["image"], v["image"])
    # dataset.json's modality mended (CT -> MRI): the same files, another normalisation, not the cached volumes
    desc = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**desc, "modality": {"0": "MRI"}}))
    mri = V.preprocess_all(V.load_volumes("decathlon", root), ["task_000"], prep, tmp_path / "cache")["task_000"]
    assert float(mri["image"].min()) < 0.0 and mri["modalities"] == ["MRI"]  # z-scored


def test_the_crop_keeps_every_label_voxel_where_the_image_is_zero(tmp_path):
    """Cropping to the image's non-zero box alone cut off foreground outside it, and evaluation (which scores the
    preprocessed volumes) never saw it: a smaller reference, a silently higher Dice."""
    root = vd.decathlon(tmp_path / "msd", n=2)
    img, seg = vd.volume(0)
    assert (seg[12:] > 0).any()
    img[12:] = 0  # the scanner's zeros over part of the labelled structure
    vd.save(root / "imagesTr" / "task_000.nii.gz", img)
    ds = V.load_volumes("decathlon", root)
    v = V.preprocess_case(ds.cases["task_000"], 3, V.Preprocessing((1.0, 1.0, 1.0)))
    for c in (1, 2):
        assert int((v["label"] == c).sum()) == int((seg == c).sum())
    xs = np.nonzero((seg > 0).any((1, 2)))[0]
    assert v["image"].shape[1] == max(12, xs.max() + 1)  # the box: the image's x < 12 and the label's foreground


def _one_hot(label: torch.Tensor, k: int = 3) -> torch.Tensor:
    return torch.nn.functional.one_hot(label.long(), k).movedim(-1, 0).float()


def test_a_resampled_case_is_scored_in_the_grid_it_was_read_in(tmp_path):
    """Scoring the resampled volumes (as evaluation did) compares a prediction with a resampled reference: a
    prediction perfect there scored 100 Dice though, taken back to the scan's own voxels, it is not."""
    from poolskip.metrics import dice_iou

    spacing = (0.7, 0.9, 2.5)
    root = vd.decathlon(tmp_path / "msd", n=1, spacing=spacing)
    img, seg = vd.volume(0)
    img[:, :3], seg[:, :3] = 0, 0  # a zero border: the crop takes it off
    vd.save(root / "imagesTr" / "task_000.nii.gz", img, spacing)
    vd.save(root / "labelsTr" / "task_000.nii.gz", seg, spacing)
    case = V.load_volumes("decathlon", root).cases["task_000"]

    coarse = V.preprocess_case(case, 3, V.Preprocessing((1.5, 1.5, 1.5)))
    g = coarse["geometry"]
    assert g["resampled"] and g["crop"][1][0] > 0  # resampled, and cropped in y
    pred, label, at = V.to_original(_one_hot(coarse["label"]), coarse)
    assert pred.shape == label.shape == seg.shape and at == pytest.approx(spacing)
    assert np.array_equal(label.numpy(), seg)  # the label as read (the affine is RAS already)
    dice = dice_iou(pred, label, 3)[0]
    assert (0.6 < dice).all() and (dice < 0.97).all()  # what 1.5 mm voxels lose of 0.7 x 0.9 x 2.5 mm ones
    soft = torch.softmax(torch.randn((3, *coarse["label"].shape), generator=torch.Generator().manual_seed(0)), 0)
    together = V.to_original(soft, coarse)[0]
    with pytest.MonkeyPatch.context() as m:  # classes resampled a few at a time: the same argmax as one by one
        m.setattr("poolskip.data.seg3d.preprocess.CLASSES_AT_ONCE", 1)
        assert torch.equal(V.to_original(soft, coarse)[0], together)
    assert torch.equal(together, V.to_original(soft, coarse)[0]) and len(together.unique()) == 3
    assert dice_iou(coarse["label"], coarse["label"], 3)[0].tolist() == [1.0, 1.0]  # the old, resampled score

    fine = V.preprocess_case(case, 3, V.Preprocessing(tuple(s / 2 for s in spacing)))  # each voxel split in 8
    pred, label, _ = V.to_original(_one_hot(fine["label"]), fine)
    assert np.array_equal(pred.numpy(), seg)  # back exactly: the way back is the way there, inverted

    same = V.preprocess_case(case, 3, V.Preprocessing(spacing))  # not resampled: scored where it is
    pred, label, at = V.to_original(_one_hot(same["label"]), same)
    assert not same["geometry"]["resampled"] and label is same["label"] and torch.equal(pred, label.long())


def test_mri_is_z_scored(msd, tmp_path):
    ds = V.load_volumes("decathlon", msd)
    v = V.preprocess_case(ds.cases["task_002"], 3, V.Preprocessing((1.0, 1.0, 1.0)))
    assert abs(float(v["image"].mean())) < 1e-4 and abs(float(v["image"].std()) - 1) < 1e-3


def test_patches_are_a_function_of_seed_epoch_step_and_split_across_ranks(msd, tmp_path):
    ds = V.load_volumes("decathlon", msd)
    vols = list(V.preprocess_all(ds, sorted(ds.cases), V.Preprocessing((1.0, 1.0, 1.0)), tmp_path).values())
    kw = dict(seed=5, augment=V.Seg3dAugment())
    one = V.PatchSampler(vols, (16, 16, 16), 3, 4, **kw)
    b = one.batch(1, 2)
    assert b.inputs.shape == (3, 1, 16, 16, 16) and b.targets.shape == (3, 16, 16, 16) and b.global_size == 3
    assert type(b.inputs) is torch.Tensor and b.targets.dtype == torch.long
    assert (b.targets[-1] > 0).any()  # the last third of a batch is centred on foreground
    later = list(V.PatchSampler(vols, (16, 16, 16), 3, 4, **kw).batches(1, start=2))[0]
    assert torch.equal(later.inputs, b.inputs) and torch.equal(later.targets, b.targets)
    assert not torch.equal(one.batch(2, 2).inputs, b.inputs)
    shares = [V.PatchSampler(vols, (16, 16, 16), 3, 4, dist=Dist(r, 2), **kw).batch(1, 2) for r in (0, 1)]
    assert [len(s.inputs) for s in shares] == [2, 1] and all(s.global_size == 3 for s in shares)
    assert torch.equal(torch.cat([s.inputs for s in shares]), b.inputs)


def test_small_volumes_are_padded_into_the_patch():
    image, label = torch.ones(1, 4, 5, 6), torch.ones(4, 5, 6, dtype=torch.uint8)
    start = V.patch_start((4, 5, 6), (8, 8, 8), np.random.default_rng(0))
    x, y = V.crop_patch(image, label, (8, 8, 8), start)
    assert x.shape == (1, 8, 8, 8) and float(x.sum()) == 120 and int(y.sum()) == 120


def test_nnunet_raw_files_stay_inside_the_dataset(tmp_path):
    """nnU-Net's layout names no files but a file ending: one that is a path is refused, and a case file that
    is a link leading out of the folder too."""
    root = vd.nnunet_raw(tmp_path / "Dataset998_Tiny", n=2)
    desc = json.loads((root / "dataset.json").read_text())
    (root / "dataset.json").write_text(json.dumps({**desc, "file_ending": "/../../x.nii.gz"}))
    with pytest.raises(DatasetError, match=r"'file_ending' must be a file extension such as '\.nii\.gz', got '/\.\./"):
        V.load_volumes("nnunet", root)
    (root / "dataset.json").write_text(json.dumps(desc))
    image = root / "imagesTr" / "case_001_0000.nii.gz"
    image.rename(tmp_path / "elsewhere.nii.gz")
    image.symlink_to(tmp_path / "elsewhere.nii.gz")
    with pytest.raises(DatasetError, match=f"{image} \\(case 'case_001'\\) points outside the dataset folder {root}"):
        V.load_volumes("nnunet", root)


def test_3d_augmentation_in_two_phases_as_every_modality(msd, tmp_path):
    """``Seg3dAugment.sample`` draws the batch's per-patch seeds (the same draw as a batch without
    augmentation: the patches lie where they would), and ``apply`` with a process's share of them gives
    that share of the sampler's augmented batch."""
    ds = V.load_volumes("decathlon", msd)
    vols = list(V.preprocess_all(ds, sorted(ds.cases), V.Preprocessing((1.0, 1.0, 1.0)), tmp_path).values())
    aug = V.Seg3dAugment()
    plain, augmented = (V.PatchSampler(vols, (16, 16, 16), 4, 3, seed=2, augment=a) for a in (None, aug))
    assert augmented.plan(1, 2) == plain.plan(1, 2)
    params = aug.sample(torch.tensor([[16, 16, 16]] * 4), np.random.default_rng(9))
    assert params["seed"].shape == (4,) and params["seed"].dtype == torch.int64
    seeds = torch.tensor([seed for _, _, seed in plain.plan(1, 2)])
    base = plain.batch(1, 2)
    share = [1, 2]
    x, y = aug.apply(base.inputs[share], base.targets[share], {"seed": seeds[share]})
    b = augmented.batch(1, 2)
    assert torch.equal(x, b.inputs[share]) and torch.equal(y, b.targets[share])
    assert not torch.equal(b.inputs, base.inputs)  # the transforms did something
