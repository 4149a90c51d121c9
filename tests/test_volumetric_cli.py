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
