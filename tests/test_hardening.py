"""The second hardening pass (issue 19), as a user meets it through the CLI: every bad input below is one line
on stderr naming the bad value, the exit code says who is to blame (2: the input, 1: the machine), no
traceback, and nothing on disk changes that should not. The first pass's cases are in test_cli_errors.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    assert message in one_line_error(capsys.readouterr().err, "train")
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
