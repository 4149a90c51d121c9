"""The second hardening pass (issue 19), as a user meets it through the CLI: every bad input below is one line
on stderr naming the bad value, the exit code says who is to blame (2: the input, 1: the machine), no
traceback, and nothing on disk changes that should not. The first pass's cases are in test_cli_errors.py."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from poolskip.cli import main

TINY = ["--model", "small_cnn", "--epochs", "1", "--set", "model_kwargs={width: 4}", "train_subset=64", "threads=1"]
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints")


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root``: size, mode and content."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mode, p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def one_line_error(err: str, command: str) -> str:
    err = err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"poolskip {command}: error: "), err
    return err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished tiny run directory (digits, small_cnn, 1 epoch)."""
    root = tmp_path_factory.mktemp("runs")
    assert main(["train", *TINY, "--out-dir", str(root), "--run-name", "ok"]) == 0
    return root / "ok" / "seed0"


# (argv after `train TINY`, what the message says): each is refused before anything is written, also those
# found only once the data are read or the model is built (no run directory, no .lock)
BAD_TRAIN = [
    (["--set", "model_kwargs={width: 0}"], "width must be a positive int (the first convs' channels), got 0"),
    (["--set", "model_kwargs={width: -3}"], "width must be a positive int (the first convs' channels), got -3"),
    (["--set", "betas=[0.9, 1.5]"], "'optim.betas' must be two numbers in [0, 1), got [0.9, 1.5]"),
    (["--set", "betas=[0.9]"], "'optim.betas' must be two numbers in [0, 1), got [0.9]"),
    (["--set", "betas=[0.9, 0.99, 0.5]"], "'optim.betas' must be two numbers in [0, 1), got [0.9, 0.99, 0.5]"),
    (["--set", "lr_mult={head: -1}"], "'optim.lr_mult' needs finite multipliers >= 0, got {'head': -1.0}"),
    (["--device", "banana"], "device 'banana' is not a device; use auto, cpu, cuda or cuda:N"),
    (["--pool-skip", "{a:"], "--pool-skip '{a:' is not valid YAML"),
    (["--model", "resnet_18"], "unknown model 'resnet_18'; did you mean 'resnet18'"),
    (["--task", "segmentaton"], "got 'segmentaton'; did you mean 'segmentation'"),
    (["--dataset", "cifar11"], "unknown dataset 'cifar11'; did you mean 'cifar10'"),
    (["--recipe", "digit"], "unknown recipe 'digit'; did you mean 'digits'?"),
    # NaN passes every `<` and `>`; inf passes `min`: both are refused wherever a range is checked
    (["--lr", "nan"], "'optim.lr' must be a finite number, got nan"),
    (["--lr", "inf"], "'optim.lr' must be a finite number, got inf"),
    (["--set", "grad_clip=.nan"], "'optim.grad_clip' must be a finite number, got nan"),
    (["--set", "label_smoothing=nan"], "'classification.label_smoothing' must be a finite number, got nan"),
    (["--set", "momentum=-inf"], "'optim.momentum' must be a finite number, got -inf"),
    (["--set", "power=nan"], "'optim.power' must be a finite number, got nan"),
    (["--set", "warmup_epochs=inf"], "'optim.warmup_epochs' must be a finite number, got inf"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD_TRAIN, ids=[" ".join(a) for a, _ in BAD_TRAIN])
def test_bad_training_input_is_one_line(argv, message, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("a file of the user's\n")
    before = snapshot(tmp_path)
    assert main(["train", *TINY, "--out-dir", str(tmp_path / "runs"), *argv]) == 2
    out, err = capsys.readouterr()
    assert message in one_line_error(err, "train")
    assert "run " not in out  # no line names a run directory that was never made
    assert snapshot(tmp_path) == before
    assert list(tmp_path.iterdir()) == [tmp_path / "keep.txt"]  # no run directory, no --out-dir made


BAD_MODELS = [
    (["nnunet"], "nnunet is a 3D network; this table counts one 3x32x32 image, so it lists 2D networks only"),
    (["vnet"], "vnet is a 3D network"),
    (["resnet18", "resnet_34"], "unknown model 'resnet_34'; did you mean 'resnet34'"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_MODELS, ids=[" ".join(a) for a, _ in BAD_MODELS])
def test_models_names_what_its_table_cannot_count(argv, message, capsys):
    assert main(["models", *argv]) == 2
    err = one_line_error(capsys.readouterr().err, "models")
    assert message in err and "small_cnn" in err and "nnunet, " not in err  # it offers what it can count


def test_models_counts_the_one_channel_small_cnn_on_rgb(capsys):
    assert main(["models", "small_cnn"]) == 0
    assert "small_cnn" in capsys.readouterr().out.split("\n")[2]


def test_report_out_is_made_or_refused_in_one_line(finished_run, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder\n")
    before = snapshot(tmp_path)
    assert main(["report", str(finished_run), "--out", str(tmp_path / "file" / "rep"), "--pictures", "0"]) == 2
    err = one_line_error(capsys.readouterr().err, "report")
    assert f"--out {tmp_path / 'file' / 'rep'}: cannot make this folder" in err
    assert snapshot(tmp_path) == before
    assert main(["report", str(finished_run), "--out", str(tmp_path / "new" / "rep"), "--pictures", "0"]) == 0
    assert (tmp_path / "new" / "rep" / "report.md").is_file()


def test_a_hostile_cifar_batch_is_refused_by_train_and_never_run(tmp_path, capsys):
    """A cifar-10-batches-py whose pickle calls os.system: the restricted unpickler refuses it, naming the file."""
    import pickle

    from test_data import _RunsCode, make_cifar

    make_cifar(tmp_path / "data")
    marker = tmp_path / "ran"
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"labels": [0]}))
    before = snapshot(tmp_path)
    data = ["--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--set", f"cache_dir={tmp_path / 'cache'}"]
    assert main(["train", *TINY, *data, "--out-dir", str(tmp_path / "runs")]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert f"{batch} is not a CIFAR batch" in err and "system, which a CIFAR batch never holds" in err
    assert not marker.exists()
    assert snapshot(tmp_path) == before and not (tmp_path / "runs").exists()


def test_a_one_stage_nnunet_with_the_amos_placement_says_why():
    from poolskip.models import create_model

    with pytest.raises(ValueError, match="nnunet_amos leaves out the last encoder stage.*only 1 stage"):
        create_model("nnunet", 2, pool_skip="nnunet_amos", patch_size=(6, 6, 6), width=2)


# ------------------------------------------------------------------------------------------ files


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_run_files_respect_the_umask(umask, tmp_path, capsys):
    old = os.umask(umask)
    try:
        assert main(["train", *TINY, "--out-dir", str(tmp_path), "--run-name", "u"]) == 0
    finally:
        os.umask(old)
    run = tmp_path / "u" / "seed0"
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def _resume_under_limit(run: Path, limit: int) -> subprocess.CompletedProcess:
    code = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "from poolskip.cli import main\n"
        f"sys.exit(main(['train', '--resume', {str(run)!r}, '--epochs', '2']))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)


def test_a_checkpoint_that_cannot_be_written_keeps_the_last_good_one(finished_run, tmp_path):
    """A file-size limit (as a full disk: the write fails part-way): exit 1, one line naming the checkpoint
    and saying the last good one was kept, where; last.pt is byte for byte what it was, no temp file left."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()
    done = _resume_under_limit(run, limit=len(before) // 2)
    assert done.returncode == 1, done.stderr
    err = one_line_error(done.stderr, "train")
    assert f"writing checkpoint {last} failed (File too large); the last good checkpoint, {last}, is kept" in err
    assert last.read_bytes() == before and not list(run.rglob("*.tmp"))
    assert torch.load(last, weights_only=True)["epoch"] == 1


def test_a_read_only_checkpoint_folder_keeps_the_last_good_one(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    checkpoints = run / "checkpoints"
    before = snapshot(checkpoints)
    checkpoints.chmod(0o555)
    try:
        probe = checkpoints / "probe"
        try:
            probe.write_text("")
            probe.unlink()
            pytest.skip("this user writes into read-only folders (root)")
        except PermissionError:
            pass
        assert main(["train", "--resume", str(run), "--epochs", "2"]) == 1
    finally:
        checkpoints.chmod(0o755)
    err = one_line_error(capsys.readouterr().err, "train")
    assert f"writing checkpoint {checkpoints / 'last.pt'} failed (Permission denied)" in err and "is kept" in err
    assert snapshot(checkpoints) == before


# ---- seg3d: 3D data (splits keyed by the case list, NaN/Inf voxels, dataset.json paths and fields)


@pytest.fixture
def vd():
    """The tiny NIfTI layouts of tests/volumetric_data.py (needs MONAI, nibabel and nnU-Net's networks)."""
    for module in ("monai", "nibabel", "dynamic_network_architectures"):
        pytest.importorskip(module)
    import volumetric_data

    return volumetric_data


def _train3d(tmp_path: Path, data: Path, layout: str = "decathlon", *sets: str, name: str = "r") -> list[str]:
    """`poolskip train` of the 3D task at its smallest: nnunet on 16^3 patches, one step, one eval volume."""
    return [
        "train", "--task", "segmentation3d", "--model", "nnunet", "--dataset", layout, "--data-dir", str(data),
        "--batch-size", "2", "--epochs", "1", "--out-dir", str(tmp_path / "runs"), "--run-name", name,
        "--set", "iterations=1", "patch_size=[16,16,16]", "threads=1", "eval_batch_size=2", "eval_subset=1",
        f"cache_dir={tmp_path / 'cache'}", *sets,
    ]  # fmt: skip


def _edit_json(root: Path, edit, name: str = "dataset.json") -> None:
    desc = json.loads((root / name).read_text())
    edit(desc)
    (root / name).write_text(json.dumps(desc))


def _set(key, value):
    return lambda vd, root: _edit_json(root, lambda d: d.__setitem__(key, value))


def _entry(i, key, value, group="training"):
    return lambda vd, root: _edit_json(root, lambda d: d[group][i].__setitem__(key, value))


def _outside_file(vd, root: Path) -> Path:
    """A real NIfTI file beside (not inside) the dataset folder."""
    return vd.save(root.parent / "outside.nii.gz", vd.volume(9)[1])


def _link_out(vd, root):
    label = root / "labelsTr" / "task_000.nii.gz"
    label.unlink()
    label.symlink_to(_outside_file(vd, root))


def _bad_voxels(folder: str, where, value):
    def mutate(vd, root):
        img, seg = vd.volume(1)
        arr = img if folder == "imagesTr" else seg.astype(np.float32)
        for w in where:
            arr[w] = value if not isinstance(value, list) else value.pop(0)
        vd.save(root / folder / "task_001.nii.gz", arr)

    return mutate


def _image(array_of):
    return lambda vd, root: vd.save(root / "imagesTr" / "task_002.nii.gz", array_of(vd.volume(2)[0]))


def _splits(change, folds: int = 5):
    """A splits file beside the dataset, made by `change(ds)` (None: the dataset as it is) with `folds` folds."""

    def mutate(vd, root):
        from poolskip.data import seg3d

        ds = seg3d.load_volumes("decathlon", root)
        (root.parent / "splits.json").write_text(json.dumps(change(seg3d.make_splits(ds, folds, 0), ds)))

    return mutate


def _first_cases(n):
    def change(splits, ds):
        from poolskip.data import seg3d

        return seg3d.make_splits(dataclasses.replace(ds, cases=dict(sorted(ds.cases.items())[:n])), 2, 0)

    return change


HOW_TO_SPLITS = "delete it to have it written again, or point segmentation3d.split_file at another file"
SPLIT_FILE = "split_file={tmp}/data/splits.json"

# (id, layout, what is done to a 5-case dataset in {tmp}/data/ds, extra --set values, the one-line message)
BAD_3D = [
    ("labels null", "decathlon", _set("labels", None), [],
     "{root}/dataset.json: 'labels' must map label values to class names, e.g. {{\"0\": \"background\", \"1\": "
     "\"liver\"}}, got None"),
    ("labels name->value", "decathlon", _set("labels", {"background": 0, "liver": 1}), [],
     "{root}/dataset.json: 'labels' must map label values to class names, e.g. {{\"0\": \"background\", \"1\": "
     "\"liver\"}}, got {{'background': 0, 'liver': 1}}"),
    ("modality zero", "decathlon", _set("modality", {"zero": "MRI"}), [],
     "{root}/dataset.json: 'modality' must map the channel indices 0..C-1 to modality names, e.g. {{\"0\": \"CT\"}}, "
     "got {{'zero': 'MRI'}}"),
    ("channel_names zero", "nnunet", _set("channel_names", {"zero": "CT"}), [],
     "{root}/dataset.json: 'channel_names' must map the channel indices 0..C-1 to modality names"),
    ("nnunet ignore label", "nnunet", _set("labels", {"background": 0, "organ1": 1, "ignore": 2}), [],
     "{root}/dataset.json: the 'ignore' label (value 2, nnU-Net v2's voxels left out of the loss) is not supported: it "
     "would be trained and scored as a class"),
    ("nnunet labels not int", "nnunet", _set("labels", {"background": 0, "organ1": "1", "organ2": 2}), [],
     "{root}/dataset.json: 'labels' must map class names to integer values (nnU-Net v2), got {{'background': 0, "
     "'organ1': '1', 'organ2': 2}}"),
    ("absolute label", "decathlon", _entry(0, "label", "/etc/passwd"), [],
     "{root}/dataset.json: training[0].label '/etc/passwd' points outside the dataset folder {root} (to "
     "/etc/passwd)"),
    ("../ image", "decathlon", lambda vd, root: (_outside_file(vd, root), _entry(1, "image", "../outside.nii.gz")(
        vd, root)), [],
     "{root}/dataset.json: training[1].image '../outside.nii.gz' points outside the dataset folder {root} (to "
     "{tmp}/data/outside.nii.gz)"),
    ("link leading out", "decathlon", _link_out, [],
     "{root}/dataset.json: training[0].label './labelsTr/task_000.nii.gz' points outside the dataset folder {root} "
     "(to {tmp}/data/outside.nii.gz)"),
    ("amos ../ test image", "amos", _entry(0, "image", "./../../etc/passwd", "validation"), [],
     "{root}/dataset.json: validation[0].image './../../etc/passwd' points outside the dataset folder {root}"),
    ("2D image", "decathlon", _image(lambda img: img[:, :, 0]), [],
     "{root}/imagesTr/task_002.nii.gz: a 2D image of shape (20, 24); the 3D task needs 3D volumes (4D: channels "
     "last, as many as the dataset.json names)"),
    ("4D, 2 channels for 1", "decathlon", _image(lambda img: np.stack([img, img], -1)), [],
     "{root}/imagesTr/task_002.nii.gz: 2 channel(s), but the dataset.json names 1 (MRI); a multi-modal volume is "
     "4D with one channel per modality, last"),
    ("NaN and Inf image voxels", "decathlon", _bad_voxels("imagesTr", [(3, 4, 5), (0, 0, 0)], [np.nan, np.inf]), [],
     "{root}/imagesTr/task_001.nii.gz: 1 NaN and 1 Inf voxel(s) of 7680 (as float32); image volumes must hold "
     "finite numbers: fix the file or leave the case out of the dataset"),
    ("NaN label voxels", "decathlon", _bad_voxels("labelsTr", [(3, 4, 5), (1, 2, 3)], np.nan), [],
     "{root}/labelsTr/task_001.nii.gz: 2 NaN and 0 Inf voxel(s) of 7680 (as float32); label volumes must hold"),
    ("fractional label", "decathlon", _bad_voxels("labelsTr", [(3, 4, 5)], 0.5), [],
     "{root}/labelsTr/task_001.nii.gz: label values [0.5] are not integers; a label map holds the class numbers "
     "0..2"),
    ("split_file of 5 folds, num_folds=3", "decathlon", _splits(lambda s, ds: s), [SPLIT_FILE, "num_folds=3"],
     "splits file {tmp}/data/splits.json holds 5 folds, the run asks for num_folds=3; " + HOW_TO_SPLITS),
    ("split_file of another seed", "decathlon", _splits(lambda s, ds: {**s, "seed": 7}), [SPLIT_FILE],
     "splits file {tmp}/data/splits.json was made with split_seed=7, the run asks for split_seed=0; " + HOW_TO_SPLITS),
    ("split_file of a 3-case copy", "decathlon", _splits(_first_cases(3)), [SPLIT_FILE, "num_folds=2"],
     "splits file {tmp}/data/splits.json splits 3 training + 0 test cases, the dataset at {root} has 5 + 0; 2 of its "
     "cases are not in the file (task_003, task_004); " + HOW_TO_SPLITS),
    ("split_file of an older poolskip", "decathlon",
     _splits(lambda s, ds: {k: v for k, v in s.items() if k not in ("format", "case_set")}), [SPLIT_FILE],
     "splits file {tmp}/data/splits.json has format 1, not 2 (an older poolskip wrote it): it does not record the "
     "fold count, seed and case set it was made for, so it cannot be checked; " + HOW_TO_SPLITS),
]  # fmt: skip


@pytest.mark.parametrize(("layout", "mutate", "sets", "message"), [c[1:] for c in BAD_3D], ids=[c[0] for c in BAD_3D])
def test_bad_3d_data_is_one_line(vd, layout, mutate, sets, message, tmp_path, capsys):
    """Each bad 3D dataset is refused in one line naming the file; nothing is written but the cache of the
    cases read before the bad one: no run directory, no lock."""
    make = {
        "decathlon": lambda root: vd.decathlon(root, n=5),
        "nnunet": lambda root: vd.nnunet_raw(root, n=5),
        "amos": lambda root: vd.listed(root, "dataset.json", {"training": [f"amos_{i:04d}" for i in (1, 2, 3, 507)],
                                                             "validation": ["amos_0004", "amos_0540"]}),
    }  # fmt: skip
    root = make[layout](tmp_path / "data" / "ds")
    mutate(vd, root)
    tmp = str(tmp_path)
    before = snapshot(tmp_path)
    assert main(_train3d(tmp_path, root, layout, *(s.format(tmp=tmp) for s in sets))) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert message.format(root=root, tmp=tmp) in err
    after = snapshot(tmp_path)
    written = sorted(set(after) - set(before))
    assert {k: after[k] for k in before} == before  # the dataset (and a split_file named) unchanged
    assert all(k.startswith("cache/volumetric/") and "task_001" not in k for k in written), written
    assert not [p for p in tmp_path.rglob("*") if p.name in RUN_FILES] and not (tmp_path / "runs").exists()


def _split_of(run: Path) -> dict:
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["task_state"]
    return {"train": state["train_ids"], "eval": state["eval_ids"], "file": state["split_file"]}


def test_a_smaller_copy_of_a_3d_dataset_does_not_lend_the_full_one_its_splits(vd, tmp_path, capsys):
    """Issue 19 item 2: a run on a 4-case copy, then on the 8-case dataset with the same cache: the full run gets a
    splits file of its own (the default name holds a hash of the case list) that splits all 8; num_folds=3 on the
    same dataset gets a third file, the 2-fold one left as it was."""
    from poolskip.data import seg3d

    full = vd.decathlon(tmp_path / "full", n=8)
    copy = tmp_path / "copy"
    shutil.copytree(full, copy)
    _edit_json(copy, lambda d: d.__setitem__("training", d["training"][:4]))
    assert main(_train3d(tmp_path, copy, "decathlon", "num_folds=2", "train_subset=1", name="copy")) == 0
    assert main(_train3d(tmp_path, full, "decathlon", "num_folds=2", "train_subset=1", name="full")) == 0
    small, big = _split_of(tmp_path / "runs/copy/seed0"), _split_of(tmp_path / "runs/full/seed0")
    assert small["file"] != big["file"]
    written = json.loads(Path(big["file"]).read_text())
    ds = seg3d.load_volumes("decathlon", full)
    assert written["case_set"] == seg3d.case_set_hash(ds) and written["num_folds"] == 2
    assert sorted(written["folds"][0]["train"] + written["folds"][0]["val"]) == [f"task_{i:03d}" for i in range(8)]
    assert big["eval"] == written["folds"][0]["val"][:1] and set(big["train"]) <= set(written["folds"][0]["train"])
    out = capsys.readouterr().out  # the run's description names the file it used
    assert f"splits {big['file']}" in out
    four = Path(big["file"]).read_bytes()
    assert main(_train3d(tmp_path, full, "decathlon", "num_folds=3", "fold=2", "train_subset=1", name="k3")) == 0
    k3 = _split_of(tmp_path / "runs/k3/seed0")
    assert k3["file"] not in (small["file"], big["file"]) and Path(big["file"]).read_bytes() == four
    assert len(json.loads(Path(k3["file"]).read_text())["folds"]) == 3
    assert f"(fold 2 of 3), 3 classes, patch 16x16x16 at 1x1x1 mm; splits {k3['file']}" in capsys.readouterr().out


# ---- ensemble: `ensemble` and `eval --dataset/--data-dir` compare the data and the members (issue 19 item 3)


@pytest.fixture(scope="module")
def runs3d(tmp_path_factory):
    """Tiny real 3D runs (nnU-Net width 4, 1 epoch of 1 step): the two folds of one BTCV split (8 cases, 3 of
    them test) and a copy of fold 0; fold 0 of the other split seed (whose test choice differs); a fold on a
    4-class copy of the data and one on a copy with a ninth case; a fold on a Decathlon MRI dataset, whose CT
    twin has the same cases."""
    for module in ("monai", "nibabel", "dynamic_network_architectures"):
        pytest.importorskip(module)
    import volumetric_data as vd

    root = tmp_path_factory.mktemp("ens")
    names = [f"img{i:04d}" for i in range(8)]
    groups = {"training": names[:6], "validation": names[6:]}
    data = {
        "btcv": vd.listed(root / "btcv", "dataset_0.json", groups),
        "btcv4": vd.listed(root / "btcv4", "dataset_0.json", groups, classes=4),
        "btcv9": vd.listed(
            root / "btcv9", "dataset_0.json", {"training": [*names[:6], "img0008"], "validation": names[6:]}
        ),  # fmt: skip
        "mri": vd.decathlon(root / "mri", n=5),
        "ct": vd.decathlon(root / "ct", n=5, modality="CT"),
    }

    def train(layout: str, folder: str, name: str, *sets: str, flags=()):
        argv = [
            "train", "--task", "segmentation3d", "--model", "nnunet", "--dataset", layout, "--data-dir",
            str(data[folder]), "--batch-size", "2", "--epochs", "1", "--out-dir", str(root / "runs"), "--run-name",
            name, "--set", "iterations=1", "patch_size=[16,16,16]", "threads=1", "eval_batch_size=2", "num_folds=2",
            f"cache_dir={root / 'cache'}", "model_kwargs={width: 4}", *sets, *flags,
        ]  # fmt: skip
        assert main(argv) == 0

    train("btcv", "btcv", "cv", flags=["--folds"])
    train("btcv", "btcv", "seed1", "split_seed=1", "fold=0")
    train("btcv", "btcv4", "classes4", "fold=1")
    train("btcv", "btcv9", "cases9", "fold=1")
    train("decathlon", "mri", "mri", "fold=0")
    shutil.copytree(root / "runs" / "cv" / "seed0" / "fold0", root / "runs" / "copy" / "fold0")
    return root, data


FOLD0 = "cv/seed0/fold0"
BAD_ENSEMBLES = [  # (members under runs/, what the message says; {r} is runs/)
    ([FOLD0, FOLD0], "ensemble member {r}/cv/seed0/fold0 is given twice (fold 0 of splits {r}/cv/seed0/splits.json"),
    ([FOLD0, "copy/fold0"], "ensemble member {r}/copy/fold0 is the same fold as {r}/cv/seed0/fold0 (fold 0 of splits"),
    ([FOLD0, "seed1/seed0"], "ensemble member {r}/seed1/seed0 was trained or validated on 3 of the 3 cases of "
     "{r}/cv/seed0/fold0's test set (img0002, img0003, img0004): its split (fold 0 of splits "),
    ([FOLD0, "mri/seed0"], "ensemble member {r}/mri/seed0: its layout 'decathlon' where {r}/cv/seed0/fold0 has 'btcv'"),
    (["mri/seed0", FOLD0], "ensemble member {r}/cv/seed0/fold0: its layout 'btcv' where {r}/mri/seed0 has 'decathlon'"),
    ([FOLD0, "cases9/seed0"], "ensemble member {r}/cases9/seed0: its data has 9 cases where {r}/cv/seed0/fold0 has 8, "
     "1 only in its data (img0008); an ensemble's members are folds of one run"),
    ([FOLD0, "classes4/seed0"], "ensemble member {r}/classes4/seed0: its classes ['organ0', 'organ1', 'organ2', "
     "'organ3'] where {r}/cv/seed0/fold0 has ['organ0', 'organ1', 'organ2']"),
]  # fmt: skip


@pytest.mark.parametrize(("members", "message"), BAD_ENSEMBLES, ids=[" ".join(m) for m, _ in BAD_ENSEMBLES])
def test_an_ensemble_of_unlike_members_is_refused_before_it_predicts(members, message, runs3d, capsys):
    root, _ = runs3d
    runs = root / "runs"
    before = snapshot(root)  # data, runs and the preprocessing cache
    assert main(["ensemble", *[str(runs / m) for m in members]]) == 2
    captured = capsys.readouterr()
    assert message.format(r=runs) in one_line_error(captured.err, "ensemble")
    assert captured.out == "" and snapshot(root) == before


def test_an_ensemble_member_of_another_task_is_refused(runs3d, finished_run, capsys):
    root, _ = runs3d
    fold0 = root / "runs" / FOLD0
    assert main(["ensemble", str(fold0), str(finished_run)]) == 2
    err = one_line_error(capsys.readouterr().err, "ensemble")
    assert f"ensemble member {finished_run} is a 'classification' run, {fold0} a 'segmentation3d' run" in err
    assert main(["ensemble", str(finished_run)]) == 2
    err = one_line_error(capsys.readouterr().err, "ensemble")
    assert f"ensemble member {finished_run}: task 'classification' has no cross-validation folds" in err


def test_the_folds_of_one_split_still_score_and_one_fold_says_it_is_alone(runs3d, capsys):
    import json

    root, _ = runs3d
    seed = root / "runs" / "cv" / "seed0"
    assert main(["ensemble", str(seed / "fold0"), str(seed / "fold1"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["models"] == 2 and scores["eval_volumes"] == 3 and 0.0 <= scores["dice"] <= 100.0
    assert main(["ensemble", str(seed / "fold1")]) == 0
    assert capsys.readouterr().out.startswith("1 fold alone (not an ensemble) on the test set: dice ")


def _crafted_fold(runs3d, to: Path, fold: str = "fold1", **config) -> Path:
    """A copy of the cv run's ``fold`` whose best.pt's config has the ``section.key`` values of ``config``."""
    shutil.copytree(runs3d[0] / "runs" / "cv" / "seed0" / fold, to)
    best = to / "checkpoints" / "best.pt"
    ck = torch.load(best, weights_only=True)
    for key, value in config.items():
        section, _, name = key.rpartition(".")
        (ck["config"][section] if section else ck["config"])[name] = value
    torch.save(ck, best)
    return to


def test_an_ensemble_member_of_another_config_or_not_finished_is_refused(runs3d, tmp_path, capsys):
    """Fold 0 of one run with fold 1 of another (other lr, epochs, seed, Pool Skip) printed as "ensemble of 2
    folds"; so did a fold still training or killed mid-way (its best.pt is written at its first evaluation)."""
    root, _ = runs3d
    fold0 = root / "runs" / FOLD0
    lr = torch.load(fold0 / "checkpoints" / "best.pt", weights_only=True)["config"]["optim"]["lr"]
    other = _crafted_fold(runs3d, tmp_path / "other" / "fold1", **{"optim.lr": 0.5, "run.seed": 1})
    half = _crafted_fold(runs3d, tmp_path / "half" / "fold1")
    (half / "summary.json").unlink()
    before = snapshot(root), snapshot(tmp_path)
    assert main(["ensemble", str(fold0), str(other)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and one_line_error(captured.err, "ensemble").endswith(
        f"ensemble member {other} was trained with optim.lr 0.5 where {fold0} has {lr!r} (keys that differ: "
        "optim.lr, run.seed); an ensemble's members are folds of one config (poolskip train --folds)"
    )
    assert main(["ensemble", str(fold0), str(half / "checkpoints" / "best.pt")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and (
        f"ensemble member {half / 'checkpoints' / 'best.pt'}: its run {half} has not finished (incomplete: "
        "checkpoints/last.pt but no summary.json: stopped, resumable)" in one_line_error(captured.err, "ensemble")
    )
    assert (snapshot(root), snapshot(tmp_path)) == before


def test_ensemble_loads_external_model_folds_with_allow_external_model(runs3d, tmp_path, capsys, monkeypatch):
    """ensemble's error for a fold of a package.module:factory model said to pass --allow-external-model,
    which ensemble did not accept: such folds could not be ensembled at all."""
    (tmp_path / "extnets.py").write_text("from poolskip.models.volumetric.nnunet import nnunet as unet3d\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    folds = [str(_crafted_fold(runs3d, tmp_path / "ext" / f, f, model="extnets:unet3d")) for f in ("fold0", "fold1")]
    assert main(["ensemble", *folds]) == 2
    assert "pass --allow-external-model if you trust it" in one_line_error(capsys.readouterr().err, "ensemble")
    assert main(["ensemble", *folds, "--allow-external-model", "--json"]) == 0
    ext = json.loads(capsys.readouterr().out)
    seed = runs3d[0] / "runs" / "cv" / "seed0"
    assert main(["ensemble", str(seed / "fold0"), str(seed / "fold1"), "--json"]) == 0
    assert ext == json.loads(capsys.readouterr().out) and ext["models"] == 2  # the same weights, the same scores


BAD_EVALS = [  # (run under runs/, eval flags with {name} a data folder, what the message says)
    ("mri/seed0", ["--data-dir", "{ct}"], "the checkpoint was trained on channels ['MRI'], normalisation "
     "['z-score'], but the decathlon data at {ct} has channels ['CT'], normalisation ['CT window [-175, 250]']"),
    ("mri/seed0", ["--dataset", "btcv", "--data-dir", "{btcv}"], "the checkpoint was trained on channels ['MRI'], "
     "normalisation ['z-score'], classes ['background', 'class1', 'class2'], but the btcv data at {btcv} has channels "
     "['CT'], normalisation ['CT window [-175, 250]'], classes ['organ0', 'organ1', 'organ2']; point --data-dir"),
    (FOLD0, ["--data-dir", "{btcv4}"], "the checkpoint was trained on classes ['organ0', 'organ1', 'organ2'], but "
     "the btcv data at {btcv4} has classes ['organ0', 'organ1', 'organ2', 'organ3']"),
    (FOLD0, ["--dataset", "decathlon", "--data-dir", "{ct}"], "the checkpoint was trained on classes ['organ0', "
     "'organ1', 'organ2'], but the decathlon data at {ct} has classes ['background', 'class1', 'class2']"),
]  # fmt: skip


@pytest.mark.parametrize(("run", "flags", "message"), BAD_EVALS, ids=[f"{r} {' '.join(f)}" for r, f, _ in BAD_EVALS])
def test_eval_on_unlike_3d_data_names_stored_and_found(run, flags, message, runs3d, capsys):
    root, data = runs3d
    before = snapshot(root)
    flags = [f.format(**data) for f in flags]
    assert main(["eval", str(root / "runs" / run), *flags]) == 2
    captured = capsys.readouterr()
    err = one_line_error(captured.err, "eval")
    assert f"{root / 'runs' / run / 'checkpoints' / 'last.pt'}: {message.format(**data)}" in err
    assert captured.out == "" and snapshot(root) == before  # refused before anything is preprocessed


def test_eval_on_a_copy_of_the_training_data_still_runs(runs3d, tmp_path, capsys):
    root, data = runs3d
    shutil.copytree(data["mri"], tmp_path / "mri")
    assert main(["eval", str(root / "runs" / "mri" / "seed0"), "--data-dir", str(tmp_path / "mri"), "--json"]) == 0
    assert "dice" in capsys.readouterr().out


def test_eval_of_a_classifier_on_data_of_other_channels_is_refused(finished_run, tmp_path, capsys):
    from test_data import make_cifar

    make_cifar(tmp_path / "data")
    before = snapshot(finished_run)
    assert main(["eval", str(finished_run), "--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]) == 2
    err = one_line_error(capsys.readouterr().err, "eval")
    assert (
        f"{finished_run / 'checkpoints' / 'last.pt'}: the checkpoint was trained on channels 1, but cifar10 at "
        f"{tmp_path / 'data'} has channels 3" in err
    )
    assert snapshot(finished_run) == before


def test_eval_checks_the_models_spec_where_the_state_is_silent(finished_run, tmp_path, capsys):
    """A checkpoint whose task state passes (3 channels, 10 classes, like the CIFAR data) but whose model was
    built for 1 input channel: refused by the model spec, naming the checkpoint, stored and found."""
    from test_data import make_cifar

    make_cifar(tmp_path / "data")
    ck = torch.load(finished_run / "checkpoints" / "last.pt", weights_only=True)
    names = [f"c{i}" for i in range(10)]  # the fixture's classes
    ck["task_state"] = {**ck["task_state"], "mean": [0.5] * 3, "std": [0.25] * 3, "classes": names}
    torch.save(ck, tmp_path / "crafted.pt")
    assert (
        main(["eval", str(tmp_path / "crafted.pt"), "--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]) == 2
    )
    err = one_line_error(capsys.readouterr().err, "eval")
    assert (
        f"{tmp_path / 'crafted.pt'}: its model was built for in_channels 1, but cifar10 at {tmp_path / 'data'} asks "
        "for in_channels 3" in err
    )
    # as many classes as the data, in another order: every label would mean another class, without a word
    ck["task_state"]["classes"] = [names[1], names[0], *names[2:]]
    torch.save(ck, tmp_path / "swapped.pt")
    assert (
        main(["eval", str(tmp_path / "swapped.pt"), "--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]) == 2
    )
    err = one_line_error(capsys.readouterr().err, "eval")
    assert (
        "the checkpoint was trained on class names ['c1', 'c0', 'c2'," in err and "has class names ['c0', 'c1'," in err
    )


# ---- runplan: the whole plan and every input checked before anything is written; run directories that stay
# inside --out-dir; stuck states (a run or fold killed before its first checkpoint) that have a way out


def tree(root: Path) -> dict[str, object]:
    """Everything under ``root``: files (mode and content), directories, and links (their target) as links."""
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            out[key] = ("link", os.readlink(p))
        elif p.is_dir():
            out[key] = "dir"
        else:
            out[key] = (p.stat().st_mode, p.read_bytes())
    return out


def stopped_before_first_checkpoint(finished: Path, run: Path) -> Path:
    """``run``: what a run killed during its first epoch leaves (config, empty metrics, TensorBoard, .lock)."""
    run.mkdir(parents=True)
    for name in ("config.yaml", ".lock"):
        shutil.copy(finished / name, run / name)
    (run / "metrics.jsonl").write_text("")
    (run / "tb").mkdir()
    return run


# (argv after `train TINY --out-dir OUT`, what the message names): refused before any run directory is made
BAD_PLANS = [
    (["--seeds", "0", "0"], "--seeds names seed 0 twice"),
    (["--seeds", "3", "1", "3", "--run-name", "r"], "--seeds names seed 3 twice"),
    (["--pool-skip", "policy_x"], "unknown placement policy 'policy_x'"),
    (["--pool-skip", "vnet"], "placement policy 'vnet' selects none of its 3 convs"),
    (["--pool-skip", "{include: [nothing]}"], "pool_skip {'include': ['nothing']}"),
    (["--run-name", "a/b", "--set", "model_kwargs={width: 0}"], "width must be a positive int"),
    (["--data-dir", "MISSING", "--dataset", "cifar10"], "expected torchvision's pickled batches in MISSING"),
    (["--folds"], "--folds needs a task with cross-validation folds (segmentation3d); task is classification"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), BAD_PLANS, ids=[" ".join(a) for a, _ in BAD_PLANS])
def test_a_bad_plan_writes_nothing(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "older").mkdir()  # an earlier run's folder: kept as it is
    missing = str(tmp_path / "missing")
    argv = [missing if a == "MISSING" else a for a in argv]
    before = tree(tmp_path)
    assert main(["train", *TINY, "--out-dir", str(out), *argv]) == 2
    assert message.replace("MISSING", missing) in one_line_error(capsys.readouterr().err, "train")
    assert tree(tmp_path) == before


FOLD_ARGS = ["--task", "segmentation3d", "--model", "nnunet", "--dataset", "amos", "--set", "num_folds=3"]
BAD_FOLDS = [
    (["3"], "--folds 3: segmentation3d with 3 folds has folds 0..2"),
    (["0", "-1"], "--folds -1: segmentation3d with 3 folds has folds 0..2"),
    (["1", "2", "1"], "--folds names fold 1 twice"),
]  # fmt: skip


@pytest.mark.parametrize(("folds", "message"), BAD_FOLDS, ids=[" ".join(f) for f, _ in BAD_FOLDS])
def test_folds_beyond_the_fold_count_are_refused_up_front(folds, message, tmp_path, capsys):
    before = tree(tmp_path)
    argv = ["train", *FOLD_ARGS, "--data-dir", str(tmp_path / "amos"), "--out-dir", str(tmp_path / "o"), "--folds"]
    assert main([*argv, *folds]) == 2
    assert message in one_line_error(capsys.readouterr().err, "train")
    assert tree(tmp_path) == before


def test_a_second_seed_that_cannot_start_is_refused_before_the_first_trains(finished_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished_run, out / "r" / "seed1")
    before = tree(tmp_path)
    assert main(["train", *TINY, "--out-dir", str(out), "--run-name", "r", "--seeds", "0", "1"]) == 2
    assert f"{out / 'r' / 'seed1'} already holds a run" in one_line_error(capsys.readouterr().err, "train")
    assert tree(tmp_path) == before  # seed 0 was not trained first


def test_a_run_killed_before_its_first_checkpoint_can_be_resumed_or_overwritten(finished_run, tmp_path, capsys):
    """Refused without a flag, with a message offering what works; `--resume` starts it afresh from its own
    config, `--overwrite` from the command's."""
    out = tmp_path / "out"
    run = stopped_before_first_checkpoint(finished_run, out / "r" / "seed0")
    before = tree(tmp_path)
    assert main(["train", *TINY, "--out-dir", str(out), "--run-name", "r"]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert f"{run} holds a run that stopped before its first checkpoint (nothing to resume); use --overwrite" in err
    assert f"`--resume {run}` to start it afresh with its own" in err
    assert tree(tmp_path) == before
    assert main(["train", "--resume", str(run)]) == 0
    assert "stopped before its first checkpoint: starting it afresh" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1 and len(list((run / "tb").iterdir())) == 1
    again = stopped_before_first_checkpoint(finished_run, out / "q" / "seed0")
    assert main(["train", *TINY, "--out-dir", str(out), "--run-name", "q", "--overwrite"]) == 0
    assert (again / "checkpoints" / "last.pt").is_file()


def test_only_what_works_is_offered_for_a_run_that_lost_its_last_checkpoint(finished_run, tmp_path):
    """A finished run without last.pt (summary.json and best.pt kept) is neither resumed nor restarted."""
    from poolskip.engine.rundir import RunDir, RunDirError

    run = tmp_path / "r"
    shutil.copytree(finished_run, run)
    (run / "checkpoints" / "last.pt").unlink()
    with pytest.raises(RunDirError, match="already holds a run; use --overwrite to replace it, or another"):
        RunDir(run).check(resume=False)
    with pytest.raises(RunDirError, match="cannot resume .*: no checkpoints/last.pt there"):
        RunDir(run).check(resume=True)


def test_resume_with_fewer_epochs_than_ran_is_refused(tmp_path, capsys):
    assert main(["train", *TINY, "--epochs", "2", "--out-dir", str(tmp_path), "--run-name", "two"]) == 0
    run = tmp_path / "two" / "seed0"
    capsys.readouterr()
    before = tree(tmp_path)
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert f"{run} ran 2 epochs; --epochs (optim.epochs) must be >= 2 to resume it, got 1" in err
    assert tree(tmp_path) == before


def _link(tmp_path: Path, finished: Path, case: str) -> tuple[list[str], Path]:
    """Each case's command and the outside file or folder a link in the run leads to."""
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir(parents=True)
    (outside / "precious.txt").write_text("not the run's\n")
    if case == "run name":
        out.mkdir()
        (out / "r").symlink_to(outside, target_is_directory=True)
        return ["train", *TINY, "--out-dir", str(out), "--run-name", "r"], outside
    if case == "seed dir":
        (out / "r").mkdir(parents=True)
        (out / "r" / "seed0").symlink_to(outside, target_is_directory=True)
        return ["train", *TINY, "--out-dir", str(out), "--run-name", "r", "--overwrite"], outside
    run = out / "r" / "seed0"
    shutil.copytree(finished, run)
    name = {"config.yaml": "config.yaml", ".lock": ".lock", "tb": "tb"}[case]
    shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
    target = outside if name == "tb" else outside / "precious.txt"
    (run / name).symlink_to(target)
    return ["train", "--resume", str(run), "--epochs", "2"], target


LINKS = [
    ("run name", "r leads to {outside}, outside {out} (a symbolic link)"),
    ("seed dir", "seed0 leads to {outside}, outside {out} (a symbolic link)"),
    ("config.yaml", "config.yaml is a symbolic link (to {target}): a run directory's files are its own"),
    (".lock", ".lock is a symbolic link (to {target})"),
    ("tb", "tb is a symbolic link (to {target})"),
]


@pytest.mark.parametrize(("case", "message"), LINKS, ids=[c for c, _ in LINKS])
def test_a_run_never_writes_through_a_link_out_of_it(case, message, finished_run, tmp_path, capsys):
    argv, target = _link(tmp_path, finished_run, case)
    before = tree(tmp_path)
    assert main(argv) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert message.format(outside=tmp_path / "outside", out=tmp_path / "out", target=target) in err
    assert tree(tmp_path) == before


def test_overwrite_removes_links_in_the_run_as_links(finished_run, tmp_path, capsys):
    """A symlinked tb/ (and config.yaml): --overwrite removes the links, never what they point at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the run's\n")
    run = tmp_path / "out" / "r" / "seed0"
    shutil.copytree(finished_run, run)
    shutil.rmtree(run / "tb")
    (run / "tb").symlink_to(outside, target_is_directory=True)
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(outside / "precious.txt")
    before = tree(outside)
    assert main(["train", *TINY, "--out-dir", str(tmp_path / "out"), "--run-name", "r", "--overwrite"]) == 0
    assert tree(outside) == before
    assert not (run / "tb").is_symlink() and (run / "tb").is_dir() and not (run / "config.yaml").is_symlink()
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1


def _amos(tmp_path: Path) -> list[str]:
    """`train` of a tiny AMOS folder with 2 folds into OUT/cv (argv without --folds)."""
    pytest.importorskip("monai")
    pytest.importorskip("nibabel")
    pytest.importorskip("dynamic_network_architectures")
    import volumetric_data as vd

    train, test = ["amos_0001", "amos_0002", "amos_0507", "amos_0600"], ["amos_0003", "amos_0540"]
    root = vd.listed(tmp_path / "amos", "dataset.json", {"training": train, "validation": test})
    return [
        "train", "--task", "segmentation3d", "--model", "nnunet", "--dataset", "amos", "--data-dir", str(root),
        "--batch-size", "2", "--epochs", "1", "--out-dir", str(tmp_path / "runs"), "--run-name", "cv",
        "--set", "iterations=1", "patch_size=[16,16,16]", "threads=1", "eval_batch_size=2", "num_folds=2",
        f"cache_dir={tmp_path / 'cache'}",
    ]  # fmt: skip


def test_a_fold_killed_before_its_first_checkpoint_no_longer_blocks_folds(tmp_path, capsys):
    """It is trained afresh (nothing to resume); --overwrite is honoured: a finished fold is trained again."""
    argv = _amos(tmp_path)
    fold = tmp_path / "runs" / "cv" / "seed0" / "fold1"
    fold.mkdir(parents=True)
    (fold / "config.yaml").write_text("task: segmentation3d\n")
    (fold / "metrics.jsonl").write_text("")
    assert main([*argv, "--folds", "1"]) == 0
    assert "fold 1: stopped before its first checkpoint; training afresh" in capsys.readouterr().out
    assert json.loads((fold / "summary.json").read_text())["epochs"] == 1
    (fold / "tb" / "mark").write_text("from the first training\n")
    assert main([*argv, "--folds", "1"]) == 0
    assert "fold 1: finished" in capsys.readouterr().out and (fold / "tb" / "mark").is_file()
    assert main([*argv, "--folds", "1", "--overwrite"]) == 0
    assert "fold 1: training" in capsys.readouterr().out and not (fold / "tb" / "mark").exists()
    assert (fold / "summary.json").is_file()


def test_a_fold_whose_model_cannot_be_built_leaves_no_splits_file_nor_folder(tmp_path, capsys):
    """The fold's task reads the data (and writes the shared splits file) before the model is built: a bad
    --pool-skip found then takes back what this start wrote."""
    argv = _amos(tmp_path)
    assert main([*argv, "--pool-skip", "policy_x", "--folds", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the preprocessing's progress lines
    assert "unknown placement policy 'policy_x'" in one_line_error(err, "train")
    assert not (tmp_path / "runs").exists()


def test_a_fold_another_process_writes_stops_folds_before_any_fold_trains(tmp_path, capsys):
    from poolskip.engine.rundir import RunDir

    argv = _amos(tmp_path)
    fold = tmp_path / "runs" / "cv" / "seed0" / "fold1"
    holder = RunDir(fold)
    holder.open(resume=False)
    before = tree(tmp_path)
    try:
        assert main([*argv, "--folds", "0", "1"]) == 2
    finally:
        holder.close()
    err = one_line_error(capsys.readouterr().err, "train")
    assert f"fold 1 ({fold}) is being written by another process" in err
    assert tree(tmp_path) == before  # fold 0 was not trained first, no splits file


# `reproduce` and a `train` into one of its runs: whichever comes second refuses, and nothing is written
CONCURRENT = [
    ("reproduce", "1 run(s) are being trained by another process (their lock is held), e.g. {held}"),
    ("train --resume", "{held} is being written by pid"),
]


@pytest.mark.parametrize(("second", "message"), CONCURRENT, ids=[s for s, _ in CONCURRENT])
def test_reproduce_and_train_of_one_run_one_refuses(second, message, finished_run, tmp_path, capsys):
    from poolskip.engine.rundir import RunDir
    from poolskip.experiments.reproduce import plan

    held = tmp_path / "table4-tiny" / "runs" / plan("table4", "tiny")[-1].name
    shutil.copytree(finished_run, held)
    holder = RunDir(held)  # the first writer: a `train` (or a reproduction) training this run right now
    holder.open(resume=True)
    before = tree(tmp_path)
    argv = {"reproduce": ["reproduce", "table4", "--scale", "tiny", "--out", str(tmp_path)]}
    try:
        assert main(argv.get(second, ["train", "--resume", str(held), "--epochs", "2"])) == 2
    finally:
        holder.close()
    command = second.split()[0]
    assert message.format(held=held) in one_line_error(capsys.readouterr().err, command)
    assert tree(tmp_path) == before


# ---- values: a run that cannot learn is refused (item 6); DeepLab at batch 1, `report` over a malformed
# config.yaml and a checkpoint whose model_spec is invalid are one-line errors

LR_WHY = "(the recipes use at most 0.1; a rate this large diverges within the first steps)"

# (argv after `train TINY`, what the message says, whether the error comes only after the run directory was opened)
CANNOT_LEARN = [
    (["--lr", "1e30"], f"'optim.lr' must be <= 10.0 {LR_WHY}, got 1e+30"),
    (["--lr", "20"], f"'optim.lr' must be <= 10.0 {LR_WHY}, got 20.0"),
    (["--set", "schedule=cosine", "min_lr=0.5"],
     "'optim.min_lr' (0.5) must be at most 'optim.lr' (0.1): the cosine schedule goes from lr down to min_lr"),
    (["--set", "lr_mult={head: 1000}"],
     f"'optim.lr_mult' {{'head': 1000.0}} with lr 0.1 gives a rate above 10.0 {LR_WHY}"),
    (["--set", "momentum=1"],
     "'optim.momentum' must be < 1.0 (at 1 SGD never forgets a gradient and does not converge), got 1.0"),
    (["--set", "weight_decay=5"], "'optim.weight_decay' must be <= 1.0 (the recipes use at most 0.06; more shrinks "
     "the weights to 0), got 5.0"),
    (["--set", "gamma=0"], "'optim.gamma' must be > 0.0, got 0.0"),
    (["--set", "gamma=1e30"], "'optim.gamma' must be <= 1.0 (the rate is multiplied by it at each milestone: 0 stops "
     "learning, above 1 the rate grows), got 1e+30"),
    (["--set", "schedule=poly", "power=1e6"], "'optim.power' must be <= 10.0 (DeepLab's is 0.9;"),
    (["--set", "label_smoothing=1"],
     "'classification.label_smoothing' must be < 1.0 (at 1 every target is uniform: nothing to learn), got 1.0"),
    # one class: error 0 without learning anything
    (["--set", "train_subset=1"], "digits: the training split holds only class"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), CANNOT_LEARN, ids=[" ".join(a) for a, _ in CANNOT_LEARN])
def test_a_run_that_cannot_learn_is_refused_before_it_trains(argv, message, tmp_path, capsys):
    test_bad_training_input_is_one_line(argv, message, tmp_path, capsys)


def test_one_class_image_folder_is_refused(tmp_path, capsys):
    from test_data import make_imagefolder

    make_imagefolder(tmp_path / "data", classes=("cat",))
    before = snapshot(tmp_path)
    data = ["--dataset", "imagefolder", "--data-dir", str(tmp_path / "data"), "--set", f"cache_dir={tmp_path / 'c'}"]
    argv = ["train", *TINY[:-2], *data, "--out-dir", str(tmp_path / "runs")]  # TINY without train_subset
    assert main([*argv, "--set", "threads=1"]) == 2
    *progress, err = capsys.readouterr().err.strip().splitlines()
    err = one_line_error(err, "train")
    assert all(line.startswith("decoding 2 images of") for line in progress)
    assert "imagefolder: the training split holds only class 'cat' (2 images); a classifier needs images of" in err
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("c/")}
    assert after == before and not [p for p in tmp_path.rglob("*") if p.name in RUN_FILES]


def test_a_run_whose_loss_becomes_nan_stops_at_that_step_and_writes_nothing(tmp_path):
    """lr 1e30 past the config's checks (the trainer's own guard): step 1 is finite, its update is not; the run
    stops at step 2 with one line naming the step, the learning rate and the inputs, and writes no checkpoint,
    metrics or summary."""
    from poolskip.engine import NonFiniteLoss, make_config, train

    cfg = make_config({"model": "small_cnn", "model_kwargs": {"width": 4}, "epochs": 2, "batch_size": 8,
                       "train_subset": 64, "threads": 1})  # fmt: skip
    cfg.optim.lr = 1e30
    with pytest.raises(NonFiniteLoss) as caught:
        train(cfg, tmp_path / "run", log=lambda *a, **k: None)
    message = str(caught.value)
    assert len(message.splitlines()) == 1 and NonFiniteLoss.exit_code == 1
    assert message.startswith("the training loss is nan at step 2 of epoch 1; stopped before writing anything")
    assert "(optim.lr 1e+30: try a lower lr" in message and "NaN/Inf values in the inputs" in message
    assert message.endswith("No checkpoint was written")
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock", "config.yaml"]


def test_a_resumed_run_that_diverges_keeps_its_files(finished_run, tmp_path, capsys):
    """A last.pt whose weights are NaN (as after a diverged update), resumed: exit 1 at the first step of
    epoch 2, the checkpoint, metrics and summary as they were."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    last = run / "checkpoints" / "last.pt"
    ck = torch.load(last, weights_only=True)
    ck["model"] = {k: v.fill_(math.nan) if v.is_floating_point() else v for k, v in ck["model"].items()}
    torch.save(ck, last)
    before = {k: v for k, v in snapshot(run).items() if k != ".lock"}
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 1
    err = one_line_error(capsys.readouterr().err, "train")
    assert "the training loss is nan at step 1 of epoch 2; stopped before writing anything of this epoch" in err
    assert f"The last good checkpoint is {last}" in err
    assert {k: v for k, v in snapshot(run).items() if k != ".lock"} == before


def _camvid(root: Path, train_labels=None, test_labels=None) -> Path:
    """Tiny CamVid (4 train, 2 test images) with the masks of a split replaced by one value."""
    import numpy as np
    from PIL import Image

    from seg_layouts import make_camvid

    make_camvid(root, counts={"train": 4, "test": 2}, size=(25, 33))
    for split, value in (("train", train_labels), ("test", test_labels)):
        for mask in (root / f"{split}annot").glob("*.png") if value is not None else ():
            Image.fromarray(np.full((25, 33), value, np.uint8), mode="L").save(mask)
    return root


SEG = ["--recipe", "deeplab_camvid", "--epochs", "1", "--device", "cpu", "--set", "crop_size=[17, 21]",
       "eval_batch_size=2", "threads=1"]  # fmt: skip

# (masks of train / test, argv, exit code, message)
BAD_SEGMENTATION = [
    (None, None, ["--batch-size", "1"], 2,
     "model 'deeplabv3plus_mobilenet' normalises a globally pooled map (classifier.aspp.convs.4.2), which BatchNorm "
     "cannot do for one sample: batch_size 1 gives a process 1; use a batch of at least 2"),
    (0, None, ["--batch-size", "2"], 2,
     "camvid has training masks (train) holding only class 'sky'; a segmentation needs at least 2 classes"),
    (11, None, ["--batch-size", "2"], 2, "camvid has training masks (train) holding no class, only the ignore value"),
    # every test pixel is void (ignored): nothing to measure
    (None, 11, ["--batch-size", "2"], 1,
     "evaluation metric 'miou' is nan, 'pixel_acc' is nan, 'mean_acc' is nan, 'eval_loss' is nan after epoch 1 on "
     "camvid: a metric with nothing to measure"),
]  # fmt: skip


@pytest.mark.parametrize(("train", "test", "argv", "code", "message"), BAD_SEGMENTATION)
def test_segmentation_that_cannot_learn_or_measure_is_one_line(train, test, argv, code, message, tmp_path, capsys):
    data = _camvid(tmp_path / "camvid", train, test)
    before = snapshot(tmp_path)
    out = ["--data-dir", str(data), "--set", f"cache_dir={tmp_path / 'cache'}", "--out-dir", str(tmp_path / "runs")]
    assert main(["train", *SEG, *argv, *out]) == code
    assert message in one_line_error(capsys.readouterr().err, "train")
    kept = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("cache/", "runs/"))}
    assert kept == before
    written = [p.relative_to(tmp_path / "runs") for p in (tmp_path / "runs").rglob("*") if p.is_file()]
    assert {p.name for p in written} <= {".lock", "config.yaml"}  # the config of a run that trained; no results


def test_one_class_segfolder_is_refused(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from seg_layouts import make_segfolder

    data = make_segfolder(tmp_path / "sf")
    for mask in data.rglob("masks/*.png"):
        Image.fromarray(np.zeros((20, 28), np.uint8), mode="L").save(mask)
    before = snapshot(tmp_path)
    out = ["--dataset", "segfolder", "--data-dir", str(data), "--set", f"cache_dir={tmp_path / 'cache'}",
           "eval_split=val", "--batch-size", "2", "--out-dir", str(tmp_path / "runs")]  # fmt: skip
    assert main(["train", *SEG, *out]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert "segfolder declares 1 class (its largest training label + 1; set segmentation.segfolder_classes)" in err
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith(("cache/", "runs/"))} == before
    assert not [p for p in tmp_path.rglob("*") if p.name in RUN_FILES]


@pytest.mark.parametrize("case", ["background only declared", "background only in the labels"])
def test_one_class_volumes_are_refused(case, tmp_path, capsys):
    import json

    import numpy as np

    from volumetric_data import SHAPE, decathlon, save, tiny_segmentation3d

    cfg = tiny_segmentation3d(tmp_path)
    root = Path(cfg["data_dir"])
    shutil.rmtree(root)
    decathlon(root, n=5, classes=2)
    if case == "background only declared":
        desc = json.loads((root / "dataset.json").read_text())
        desc["labels"] = {"0": "background"}
        (root / "dataset.json").write_text(json.dumps(desc))
        message = f"{root / 'dataset.json'}: 'labels' must name the values 0..K-1 (K >= 2), got [0]"
    else:
        for label in (root / "labelsTr").glob("*.nii.gz"):
            save(label, np.zeros(SHAPE, np.uint8))
        message = "Tiny (" + str(root) + "): the 4 training volumes' labels hold only the background"
    before = snapshot(tmp_path)
    argv = ["train", "--task", "segmentation3d", "--model", "nnunet", "--dataset", "decathlon", "--data-dir", str(root),
            "--epochs", "1", "--out-dir", str(tmp_path / "runs"), "--set", f"cache_dir={cfg['cache_dir']}",
            "batch_size=2", "iterations=1", "patch_size=[16, 16, 16]", "threads=1"]  # fmt: skip
    assert main(argv) == 2
    *progress, err = capsys.readouterr().err.strip().splitlines()  # "preprocessed N volume(s)": progress lines
    assert message in one_line_error(err, "train") and all(line.startswith("preprocessed") for line in progress)
    after = {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("cache/")}
    assert after == before and not [p for p in tmp_path.rglob("*") if p.name in RUN_FILES]


def test_untrainable_models_are_refused_up_front():
    """Per process, under torchrun too: a BatchNorm after a global pool given one sample; a dropout of p=1."""
    from torch import nn

    from poolskip.engine.config import ConfigError, make_config
    from poolskip.engine.trainer import _refuse_untrainable

    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    pooled = nn.Sequential(nn.Conv2d(3, 4, 3), head)
    cfg = make_config({"model": "mine:net", "batch_size": 3})
    with pytest.raises(ConfigError, match=r"\(1\.2\).*batch_size 3 split across 2 processes gives a process 1; use a "
                                          r"batch of at least 4"):  # fmt: skip
        _refuse_untrainable(pooled, cfg, world_size=2)
    _refuse_untrainable(pooled, cfg, world_size=1)  # 3 samples: BatchNorm has a variance
    with pytest.raises(ConfigError, match=r"Dropout 1 has p=1.0, which drops every activation"):
        _refuse_untrainable(nn.Sequential(nn.Linear(2, 2), nn.Dropout(1.0)), cfg, world_size=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [unclosed\n", "config.yaml is unreadable or not YAML (while parsing a flow sequence"),
        ("\udcff\n", "config.yaml is unreadable or not YAML ('utf-8' codec can't decode byte 0xff"),
        ("- a list\n", "config.yaml must hold a mapping of config keys; rerun or remove that run"),
        ("data: 5\n", "config.yaml: 'data' must be a mapping of config keys, got 5; rerun or remove that run"),
    ],
    ids=["not YAML", "not text", "a list", "data not a mapping"],
)
def test_report_refuses_a_run_whose_config_is_malformed(text, message, finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "config.yaml").write_bytes(text.encode("utf-8", "surrogateescape"))
    before = snapshot(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--pictures", "0"]) == 2
    assert f"{run / message}" in one_line_error(capsys.readouterr().err, "report")
    assert snapshot(tmp_path) == before and not (tmp_path / "rep").exists()


BAD_SPECS = [
    ({"in_channels": "1"}, "'model_spec.in_channels' must be an integer >= 1, got '1'"),
    ({"num_classes": -3}, "'model_spec.num_classes' must be an integer >= 1, got -3"),
    ({"num_classes": True}, "'model_spec.num_classes' must be an integer >= 1, got True"),
    ({"spatial_dims": 7}, "'model_spec.spatial_dims' must be 1, 2 or 3, got 7"),
    ({"hints": [1]}, "'model_spec.hints' must be a mapping of factory keywords, got [1]"),
    ({"evil": 1}, "'model_spec' has unknown keys ['evil'] (expected ['hints', 'in_channels', 'num_classes', "),
    ({"num_classes": None}, "'model_spec' has no ['num_classes']"),
    ([1, 2], "'model_spec' must be a mapping, got list"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS, ids=[m.split(" must")[0] for _, m in BAD_SPECS])
def test_eval_refuses_a_checkpoint_whose_model_spec_is_invalid(spec, message, finished_run, tmp_path, capsys):
    ck = torch.load(finished_run / "checkpoints" / "best.pt", weights_only=True)
    if isinstance(spec, dict):
        ck["model_spec"].update(spec)
        ck["model_spec"] = {k: v for k, v in ck["model_spec"].items() if v is not None}
    else:
        ck["model_spec"] = spec
    file = tmp_path / "crafted.pt"
    torch.save(ck, file)
    before = snapshot(tmp_path)
    assert main(["eval", str(file)]) == 2
    assert f"{file}: {message}" in one_line_error(capsys.readouterr().err, "eval")
    assert snapshot(tmp_path) == before


def test_the_config_reference_shows_the_upper_bounds():
    from poolskip.engine.config import describe_keys

    helps = {key: text for key, _, text in describe_keys()}
    assert helps["optim.lr"] == "peak learning rate (0 <= lr <= 10)"
    assert helps["optim.momentum"] == "SGD momentum (0 <= momentum < 1)"
    assert helps["optim.epochs"] == "training epochs"  # a lower bound alone goes without saying


# ---- probe: the attacker's second look (reproduce's flags and resumed tables, report, diagnose, ensemble, eval of
# hostile checkpoints, Cityscapes labelIds, 3D geometry, run directories under a file)

DRY = ["reproduce", "table1", "--scale", "tiny", "--dry-run", "--time-steps", "0"]
BAD_REPRODUCE = [  # (flags, what the message says): refused before planning, a --dry-run too
    (["--jobs", "0"], "--jobs must be >= 1, got 0"),
    (["--jobs", "-1"], "--jobs must be >= 1, got -1"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["--train-subset", "0"], "--train-subset must be >= 1, got 0"),
    (["--time-steps", "-1"], "--time-steps must be >= 0, got -1"),
    (["--seeds", "0", "1", "0"], "--seeds names seed(s) [0] more than once; each seed is one run directory"),
    (["--devices", "cpu", "banana"], "--devices: 'banana' is not a device; use cpu, cuda or cuda:N"),
    (["--dataset", "cifar11"], "--dataset 'cifar11' is not a dataset of this table's task 'classification'; did "
     "you mean 'cifar10' or 'cifar100'?"),
    (["--dataset", "camvid"], "--dataset 'camvid' is not a dataset of this table's task 'classification' (known: "
     "digits, cifar10, cifar100, imagefolder) ('camvid' is a 2D segmentation dataset: set --task segmentation)"),
    (["--launcher", "slurm", "--slurm-time", "0"], "--slurm-time must be >= 1, got 0"),
    (["--launcher", "slurm", "--slurm-gpus", "-1"], "--slurm-gpus must be >= 0, got -1"),
    (["--launcher", "slurm", "--slurm-cpus", "0"], "--slurm-cpus must be >= 1, got 0"),
    (["--launcher", "slurm", "--slurm-mem", "0"], "--slurm-mem must be a number of GB > 0, got 0.0"),
    (["--launcher", "slurm", "--slurm-parallel", "0"], "--slurm-parallel must be >= 1, got 0"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), BAD_REPRODUCE, ids=[" ".join(f) for f, _ in BAD_REPRODUCE])
def test_reproduce_refuses_counts_seeds_devices_and_datasets_that_cannot_work(flags, message, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("a file of the user's\n")
    before = snapshot(tmp_path)
    assert main([*DRY, *flags, "--out", str(tmp_path / "rep")]) == 2
    assert message in one_line_error(capsys.readouterr().err, "reproduce")
    assert snapshot(tmp_path) == before and not (tmp_path / "rep").exists()


def test_reproduce_out_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "rep").write_text("a file of the user's\n")
    before = snapshot(tmp_path)
    assert main([*DRY, "--out", str(tmp_path / "rep")]) == 2
    err = one_line_error(capsys.readouterr().err, "reproduce")
    assert f"--out {tmp_path / 'rep'} is a file, not a folder" in err
    assert snapshot(tmp_path) == before


def test_reproduce_refuses_runs_on_disk_trained_with_another_config(tmp_path, capsys):
    """A finished table resumed as is trains nothing; resumed with other --epochs it is refused naming the run
    and the key (it skipped the finished runs and printed their 1-epoch numbers as the 2-epoch table's)."""
    argv = ["reproduce", "table1", "--scale", "tiny", "--threads", "1", "--out", str(tmp_path / "rep")]
    assert main(argv) == 0
    runs = tmp_path / "rep" / "table1-tiny" / "runs"
    before = snapshot(runs)
    assert main(argv) == 0
    assert "0 run(s) trained" in capsys.readouterr().out
    assert snapshot(runs) == before
    before = snapshot(tmp_path)
    assert main([*argv, "--epochs", "2"]) == 2
    err = one_line_error(capsys.readouterr().err, "reproduce")
    assert "was trained with optim.epochs 1 where this plan has 2 (and 1 more key(s)); choose another --out" in err
    assert str(runs) in err
    assert snapshot(tmp_path) == before
    next(runs.rglob("config.yaml")).unlink()  # a finished run that cannot tell how it was trained: never this plan's
    assert main(argv) == 2
    err = one_line_error(capsys.readouterr().err, "reproduce")
    assert "was trained with an unknown config (its config.yaml is missing); choose another --out" in err


def _finished_copy(finished_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns(".lock"))
    return run


BAD_SUMMARY_FINAL = [float("nan"), float("inf"), "ninety"]


@pytest.mark.parametrize("final", BAD_SUMMARY_FINAL, ids=map(str, BAD_SUMMARY_FINAL))
def test_report_refuses_a_summary_whose_final_is_not_a_finite_number(final, finished_run, tmp_path, capsys):
    run = _finished_copy(finished_run, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    summary["final"] = final
    (run / "summary.json").write_text(json.dumps(summary))
    before = snapshot(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--pictures", "0"]) == 2
    err = one_line_error(capsys.readouterr().err, "report")
    assert f"{run / 'summary.json'}: 'final' must be a finite number, got {final!r}" in err
    assert snapshot(tmp_path) == before


def test_report_refuses_negative_pictures(finished_run, tmp_path, capsys):
    assert main(["report", str(finished_run), "--out", str(tmp_path / "rep"), "--pictures", "-1"]) == 2
    assert "--pictures must be >= 0 (0 = none), got -1" in one_line_error(capsys.readouterr().err, "report")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("under", [False, True], ids=["a file", "under a file"])
def test_diagnose_out_that_is_or_is_under_a_file_is_refused_before_probing(under, finished_run, tmp_path, capsys):
    (tmp_path / "f").write_text("a file of the user's\n")
    out = tmp_path / "f" / "diag" if under else tmp_path / "f"
    before = snapshot(tmp_path)
    assert main(["diagnose", str(finished_run), "--out", str(out), "--probe-size", "8"]) == 2
    err = one_line_error(capsys.readouterr().err, "diagnose")
    where = f" cannot be made: {tmp_path / 'f'}" if under else ""
    assert f"--out {out}{where} is a file, not a folder; choose another --out" in err
    assert snapshot(tmp_path) == before


def test_ensemble_names_a_bad_device_as_a_device(finished_run, capsys):
    """It was blamed on the checkpoint ('corrupt or not a poolskip checkpoint ... tagged with banana')."""
    assert main(["ensemble", str(finished_run), "--device", "banana"]) == 2
    err = one_line_error(capsys.readouterr().err, "ensemble")
    assert "device 'banana' is not a device; use auto, cpu, cuda or cuda:N" in err and "corrupt" not in err


class _System:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_a_checkpoint_that_would_run_code_is_refused_without_advice_to_run_it(kind, finished_run, tmp_path, capsys):
    """No code runs, stderr is one line (torch's pickle-protocol warning is not passed on), and the message does not
    carry torch's advice to load it again with weights_only=False, which would run it."""
    import pickle

    marker, file = tmp_path / "ran", tmp_path / "x.pt"
    if kind == "torch.save":
        ck = torch.load(finished_run / "checkpoints" / "last.pt", weights_only=True)
        torch.save({**ck, "extra": _System(marker)}, file)
    else:
        file.write_bytes(pickle.dumps(_System(marker)))
    before = snapshot(tmp_path)
    assert main(["eval", str(file)]) == 2
    err = one_line_error(capsys.readouterr().err, "eval")
    assert f"{file} is corrupt or not a poolskip checkpoint (it holds more than tensors and plain data (" in err
    assert err.endswith("); it was refused, none of it ran)") and "weights_only" not in err
    assert not marker.exists() and snapshot(tmp_path) == before


def test_cityscapes_label_ids_outside_0_33_are_refused(tmp_path, capsys):
    """A value that is no Cityscapes labelId (e.g. a colour or trainId file misnamed) was ignored like void."""
    from PIL import Image

    from seg_layouts import make_cityscapes

    data = make_cityscapes(tmp_path / "cityscapes")
    mask = sorted((data / "gtFine" / "train" / "aachen").glob("*_labelIds.png"))[0]
    Image.fromarray(np.full((32, 64), 200, np.uint8), mode="L").save(mask)
    before = snapshot(tmp_path)
    argv = ["train", "--recipe", "deeplab_camvid", "--epochs", "1", "--device", "cpu", "--batch-size", "2",
            "--dataset", "cityscapes", "--data-dir", str(data), "--out-dir", str(tmp_path / "runs"), "--set",
            "crop_size=[17, 21]", "eval_batch_size=2", "threads=1", "eval_split=val",
            f"cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    assert main(argv) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert f"cityscapes: mask {mask} holds label value(s) [200], outside Cityscapes labelIds 0-33 and 255" in err
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.startswith("cache")} == before
    assert not (tmp_path / "runs").exists()


def _huge_spacing(vd, root: Path) -> None:
    import nibabel as nib

    for folder in ("imagesTr", "labelsTr"):
        path = root / folder / "task_000.nii.gz"
        nib.save(nib.Nifti1Image(np.asarray(nib.load(str(path)).dataobj), np.diag([1e6, 1.0, 1.0, 1.0])), str(path))


def _pixdim(value: float):
    def mutate(vd, root: Path) -> None:  # no sform or qform: the affine is made of pixdim alone
        import nibabel as nib

        for folder in ("imagesTr", "labelsTr"):
            path = root / folder / "task_000.nii.gz"
            img = nib.Nifti1Image(np.asarray(nib.load(str(path)).dataobj), None)
            img.header.set_sform(None, code=0)
            img.header.set_qform(None, code=0)
            img.header["pixdim"][1] = value
            nib.save(img, str(path))

    return mutate


BAD_3D_PROBE = [  # (layout, how the data is made, mutation, --set, message; {root} is the data folder)
    ("amos", "amos", lambda vd, root: _edit_json(root, lambda d: d.__setitem__("training", [])), (),
     "{root}/dataset.json: 'training' lists no cases; AMOS trains on them and tests on 'validation'"),
    ("decathlon", "decathlon", None, ("target_spacing=[.nan, 1, 1]",),
     "segmentation3d.target_spacing must be 3 positive finite numbers, got [nan, 1.0, 1.0]"),
    ("decathlon", "decathlon", None, ("target_spacing=[1, .inf, 1]",),
     "segmentation3d.target_spacing must be 3 positive finite numbers, got [1.0, inf, 1.0]"),
    ("decathlon", "decathlon", _huge_spacing, (),
     "{root}/imagesTr/task_000.nii.gz: resampling its [20, 24, 16] voxels of spacing [1000000.0, 1.0, 1.0] mm to "
     "[1.0, 1.0, 1.0] mm gives [20000000, 24, 16] voxels (more than 2,147,483,648); check its header's spacing"),
    ("decathlon", "decathlon", _pixdim(float("nan")), (),
     "{root}/imagesTr/task_000.nii.gz: its header's voxel-to-mm affine [[nan, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, "
     "0.0, 1.0]] is not finite; fix the header's spacing (pixdim / sform / qform)"),
    ("decathlon", "decathlon", _pixdim(float("inf")), (),
     "{root}/imagesTr/task_000.nii.gz: its header's voxel-to-mm affine [[-inf, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, "
     "0.0, 1.0]] is not finite; fix the header's spacing (pixdim / sform / qform)"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("layout", "make", "mutate", "sets", "message"),
    BAD_3D_PROBE,
    ids=["amos training empty", "target_spacing nan", "target_spacing inf", "spacing 1e6", "pixdim nan", "pixdim inf"],
)
def test_3d_geometry_that_cannot_be_planned_is_one_line(vd, layout, make, mutate, sets, message, tmp_path, capsys):
    root = tmp_path / "data"
    if make == "amos":
        vd.listed(root, "dataset.json", {"training": [f"amos_{i:04d}" for i in range(4)], "validation": ["amos_0004"]})
    else:
        vd.decathlon(root, n=5)
    if mutate is not None:
        mutate(vd, root)
    before = snapshot(root)
    assert main([*_train3d(tmp_path, root, layout, "model_kwargs={width: 4}", *sets)]) == 2
    assert message.format(root=root) in one_line_error(capsys.readouterr().err, "train")
    assert snapshot(root) == before and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("where", ["out-dir", "run-name"])
def test_a_run_directory_under_a_file_is_refused_naming_the_file(where, tmp_path, capsys):
    (tmp_path / "f").write_text("a file of the user's\n")
    before = snapshot(tmp_path)
    if where == "out-dir":
        argv, message = ["--out-dir", str(tmp_path / "f" / "runs")], f"--out-dir {tmp_path / 'f' / 'runs'} cannot"
    else:
        argv, message = ["--out-dir", str(tmp_path), "--run-name", "f/b"], "run name 'f/b'"
    assert main(["train", *TINY, *argv]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert f"{message}" in err and f"{tmp_path / 'f'} is a file, not a directory" in err
    assert snapshot(tmp_path) == before


BAD_NNUNET_CHECKPOINTS = ["os.system", "empty", "truncated"]


@pytest.mark.parametrize("kind", BAD_NNUNET_CHECKPOINTS)
def test_an_nnunet_checkpoint_is_read_as_data_or_refused_in_one_sentence(kind, tmp_path):
    """What the nnU-Net trainer's load_checkpoint reads: never run, and a damaged file is an error naming it
    (it was a bare EOFError / RuntimeError, and a hostile one quoted torch's advice to load it unsafely)."""
    from poolskip.errors import PoolskipError
    from poolskip.integrations.nnunet import read_nnunet_checkpoint

    marker, file = tmp_path / "ran", tmp_path / "checkpoint_final.pth"
    torch.save({"network_weights": {}, "extra": _System(marker)} if kind == "os.system" else {}, file)
    if kind == "empty":
        file.write_bytes(b"")
    elif kind == "truncated":
        file.write_bytes(file.read_bytes()[:100])
    with pytest.raises(PoolskipError) as raised:
        read_nnunet_checkpoint(file)
    message = str(raised.value)
    assert message.startswith(f"{file}: refused to load this nnU-Net checkpoint (") and "weights_only" not in message
    assert message.endswith("; a checkpoint is loaded as data, never code") and "\n" not in message
    if kind == "os.system":
        assert "it holds more than tensors and plain data (" in message and "posix.system" in message
    assert not marker.exists()


def test_a_model_factory_that_returns_no_module_is_one_line(tmp_path, monkeypatch, capsys):
    """A package.module:factory of the user's that returns None (a forgotten return) was an AttributeError
    traceback deep in the trainer."""
    (tmp_path / "mymodels.py").write_text("def forgot(num_classes, **kwargs):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = snapshot(tmp_path)
    assert main(["train", *TINY, "--model", "mymodels:forgot", "--out-dir", str(tmp_path / "runs")]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert "model 'mymodels:forgot': its factory returned NoneType, not a torch.nn.Module" in err
    assert {k: v for k, v in snapshot(tmp_path).items() if "__pycache__" not in k} == before
    assert not (tmp_path / "runs").exists()


def test_a_finished_run_given_more_epochs_is_never_finished_by_its_old_summary(finished_run, tmp_path, monkeypatch):
    """Resumed with --epochs 2 and stopped after epoch 2's last.pt but before its summary, the run kept its
    1-epoch summary.json: it read as finished, every later resume returned that summary, and reproduce put the
    1-epoch number in a 2-epoch table. The old summary goes when the run goes on; one of fewer epochs than
    last.pt is written again from it."""
    import poolskip.engine.trainer as trainer
    from poolskip.experiments.results import read_summary, run_status

    run = _finished_copy(finished_run, tmp_path)
    old = (run / "summary.json").read_text()

    def stopped(self):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(trainer._Session, "summary", stopped)
        assert main(["train", "--resume", str(run), "--epochs", "2"]) != 0  # "interrupted"
    assert run_status(run) == "incomplete" and torch.load(run / "checkpoints" / "last.pt")["epoch"] == 2
    for summary in (None, old):  # none (this code), or the 1-epoch one an earlier version left
        if summary is not None:
            (run / "summary.json").write_text(summary)
        assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
        assert read_summary(run).raw["epochs"] == 2 and len(read_summary(run).raw["final_metrics"]) > 0


def test_a_mid_epoch_checkpoint_resumes_only_with_its_batch_size(finished_run, tmp_path, capsys):
    """A checkpoint_every checkpoint resumes at its step of the epoch's batches: with another batch size (or
    training subset) that step names other samples, and the epoch repeated some and skipped others."""
    run = _finished_copy(finished_run, tmp_path)
    (run / "summary.json").unlink()
    last = run / "checkpoints" / "last.pt"
    ck = torch.load(last, weights_only=True)
    torch.save({**ck, "epoch": 0, "step": 3}, last)
    before = snapshot(run)
    assert main(["train", "--resume", str(run), "--set", "batch_size=64"]) == 2
    err = one_line_error(capsys.readouterr().err, "train")
    assert (
        f"{last} was written mid-epoch (step 3 of epoch 1) with batch_size 128; resuming it with batch_size 64" in err
    )
    assert main(["train", "--resume", str(run), "--set", "train_subset=32"]) == 2
    assert "with train_subset 64; resuming it with train_subset 32 would repeat" in capsys.readouterr().err
    assert {k: v for k, v in snapshot(run).items() if k != ".lock"} == before


def test_best_pt_is_written_before_last_pt(finished_run, tmp_path, monkeypatch):
    """last.pt records the best as saved; written first, a stop before best.pt left a run whose best.pt was
    missing (or an older epoch's) for good, as the resume took the best as already saved."""
    import poolskip.engine.trainer as trainer

    run = _finished_copy(finished_run, tmp_path)
    (run / "checkpoints" / "best.pt").unlink()
    written, save = [], trainer._Session.save

    def recording(self, name):
        written.append((name, self.pos.epoch))
        save(self, name)

    monkeypatch.setattr(trainer._Session, "save", recording)
    monkeypatch.setattr(trainer._Session, "evaluation_due", lambda self: True)
    monkeypatch.setattr(trainer._Session, "end_epoch", _improving(trainer._Session.end_epoch))
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert written == [("best", 2), ("last", 2)]


def _improving(end_epoch):
    def wrapped(self, record):
        self.pos.best = float("nan")  # whatever was measured improves on it
        end_epoch(self, record)

    return wrapped


def test_resuming_a_finished_run_changes_nothing(finished_run, tmp_path, capsys):
    """It wrote summary.json again, its wall_seconds now the checkpoint's plus this start's, not the run's."""
    run = _finished_copy(finished_run, tmp_path)
    before = snapshot(run)
    assert main(["train", "--resume", str(run)]) == 0
    assert f"{run} finished its 1 epochs before; nothing to train (raise --epochs)" in capsys.readouterr().out
    assert {k: v for k, v in snapshot(run).items() if k != ".lock"} == before


def test_a_run_started_from_backbone_weights_loads_and_resumes_without_that_file(tmp_path, capsys):
    """The ImageNet file initialises the backbone only; the checkpoint holds every weight. Building the model from
    it again (eval, diagnose, ensemble, resume) on a machine without the file failed, or downloaded weights that
    the checkpoint then replaced."""
    from torchvision.models import mobilenet_v2

    imagenet = tmp_path / "mobilenet_v2.pth"
    torch.save(mobilenet_v2().state_dict(), imagenet)
    data = _camvid(tmp_path / "camvid")
    out = ["--data-dir", str(data), "--set", f"cache_dir={tmp_path / 'cache'}", "--out-dir", str(tmp_path / "runs")]
    argv = ["train", *SEG, "--batch-size", "2", *out, "--run-name", "r", "--set", f"backbone_weights={imagenet}"]
    assert main(argv) == 0
    imagenet.unlink()
    run = tmp_path / "runs" / "r" / "seed0"
    capsys.readouterr()
    assert main(["eval", str(run), "--device", "cpu", "--json"]) == 0, capsys.readouterr().err
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0, capsys.readouterr().err
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2
