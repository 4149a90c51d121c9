"""segmentation3d end to end through `poolskip train` on tiny NIfTI volumes: metrics, checkpoint, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("monai")
pytest.importorskip("nibabel")
pytest.importorskip("dynamic_network_architectures")

import volumetric_data as vd  # noqa: E402
from poolskip.cli import main  # noqa: E402


def test_train_evaluate_and_resume_exactly(tmp_path):
    root = vd.decathlon(tmp_path / "Task97_Tiny", n=5)
    common = [
        "--task", "segmentation3d", "--model", "nnunet", "--dataset", "decathlon", "--data-dir", str(root),
        "--batch-size", "2", "--out-dir", str(tmp_path / "runs"), "--pool-skip", "true",
        "--set", "schedule=constant", "iterations=1", "patch_size=[16,16,16]", "threads=1", "eval_batch_size=2",
        f"cache_dir={tmp_path / 'cache'}", "rotation=15",
    ]  # fmt: skip
    assert main(["train", *common, "--epochs", "2", "--run-name", "full"]) == 0
    full = tmp_path / "runs" / "full" / "seed0"
    records = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(0.0 <= r["dice"] <= 100.0 for r in records if "dice" in r)
    summary = json.loads((full / "summary.json").read_text())
    assert "dice" in json.dumps(summary)

    assert main(["train", *common, "--epochs", "1", "--run-name", "half"]) == 0
    half = tmp_path / "runs" / "half" / "seed0"
    assert main(["train", "--resume", str(half), "--epochs", "2"]) == 0
    a = torch.load(full / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(half / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and any(".pool_skip." in k for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a)  # the resumed run saw exactly the same batches


def test_folds_and_their_ensemble_through_the_cli(tmp_path, capsys):
    train, test = ["amos_0001", "amos_0002", "amos_0507", "amos_0600"], ["amos_0003", "amos_0540"]
    root = vd.listed(tmp_path / "amos", "dataset.json", {"training": train, "validation": test})  # AMOS: 4 + 2 test
    argv = [
        "train", "--task", "segmentation3d", "--model", "nnunet", "--dataset", "amos", "--data-dir", str(root),
        "--batch-size", "2", "--epochs", "1", "--out-dir", str(tmp_path / "runs"), "--run-name", "cv",
        "--set", "iterations=1", "patch_size=[16,16,16]", "threads=1", "eval_batch_size=2", "num_folds=2",
        f"cache_dir={tmp_path / 'cache'}", "--folds",
    ]  # fmt: skip
    assert main(argv) == 0
    seed = tmp_path / "runs" / "cv" / "seed0"
    assert (seed / "splits.json").is_file()
    assert all((seed / f"fold{k}" / "summary.json").is_file() for k in (0, 1))
    first = (seed / "fold0" / "summary.json").read_text()
    capsys.readouterr()
    assert main(argv) == 0  # the same command again resumes: finished folds are kept, nothing retrained
    assert capsys.readouterr().out.count("finished") == 2
    assert (seed / "fold0" / "summary.json").read_text() == first
    assert main(["ensemble", str(seed / "fold0"), str(seed / "fold1"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0.0 <= scores["dice"] <= 100.0 and scores["models"] == 2 and scores["eval_volumes"] == 2
    assert scores["amp"] == "none"  # the folds' run.amp
    moved = tmp_path / "moved"
    root.rename(moved)  # the data elsewhere on this machine: the same scores
    folds = [str(seed / "fold0"), str(seed / "fold1")]
    assert main(["ensemble", *folds, "--data-dir", str(moved), "--amp", "bf16"]) == 0
    assert capsys.readouterr().out.startswith("ensemble of 2 folds on the test set (bf16): dice ")
    assert main(["ensemble", *folds, "--data-dir", str(moved), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == scores
    assert main(["train", "--recipe", "digits", "--folds", "--out-dir", str(tmp_path / "x")]) == 2
    assert "--folds needs a task with cross-validation folds" in capsys.readouterr().err


def test_report_draws_slices_of_both_variants(tmp_path, capsys):
    root = vd.decathlon(tmp_path / "Task99_Tiny", n=5)
    for variant in ("false", "true"):
        argv = [
            "train", "--task", "segmentation3d", "--model", "nnunet", "--dataset", "decathlon", "--data-dir",
            str(root), "--batch-size", "2", "--epochs", "1", "--out-dir", str(tmp_path / "runs"),
            "--run-name", variant, "--pool-skip", variant, "--set", "iterations=1", "patch_size=[16,16,16]",
            "threads=1", "eval_batch_size=2", f"cache_dir={tmp_path / 'cache'}",
        ]  # fmt: skip
        assert main(argv) == 0
    capsys.readouterr()
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--pictures", "1"]) == 0
    out = capsys.readouterr().out
    # Table 3's metrics: Dice (monitored), NSD and IoU of each placement, read from the runs' summaries
    assert "| nnunet | Tiny | dice (higher is better) | plain |" in out  # the dataset.json's name, not the layout's
    m = json.loads((tmp_path / "runs" / "true" / "seed0" / "summary.json").read_text())["final_metrics"]
    assert f"{m['dice']:.2f} (n=1) |" in out and f"| {m['nsd']:.2f} (n=1) | {m['iou']:.2f} (n=1) | 0/fold0 |" in out
    assert (tmp_path / "rep" / "predictions_nnunet_Tiny.png").read_bytes()[:4] == b"\x89PNG"


def test_nnunet_command_prints_the_trainer_folder_to_export(capsys):
    from poolskip.integrations.nnunet import trainer_dir

    assert main(["nnunet"]) == 0
    assert capsys.readouterr().out.strip() == str(trainer_dir())
    assert main(["nnunet", "--export"]) == 0
    assert capsys.readouterr().out.strip() == f"export nnUNet_extTrainer={trainer_dir()}"
    assert main(["nnunet", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert {"nnUNetTrainerPoolSkip", "nnUNetTrainerPoolSkipAMOS", "nnUNetTrainerPoolSkip_5epochs"} <= set(names)
    assert all((trainer_dir() / "nnUNetTrainerPoolSkip.py").read_text().count(f"class {n}(") == 1 for n in names)
