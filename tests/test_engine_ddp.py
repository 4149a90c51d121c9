"""Two CPU processes under torchrun (gloo) train the same model as one process with the same global batch, also
when stopped mid-epoch and resumed, and evaluate a split one of them holds nothing of.

475 training images in batches of 96: the last batch splits 46/45, so the loss weighting across processes matters.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from poolskip.cli import main
from poolskip.engine.trainer import restore

ARGS = [
    "--model", "test_engine_ddp:tiny_net", "--epochs", "2", "--device", "cpu", "--seed", "1",
    "--set", "batch_size=96", "train_subset=475", "eval_batch_size=200", "cutout=2", "rotation=10", "threads=1",
]  # fmt: skip


def tiny_net(num_classes: int = 10) -> nn.Module:
    """No BatchNorm: per-process batch statistics would differ from one process's by design."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 16, num_classes)
    )


def test_two_process_ddp_matches_one_process(tmp_path, monkeypatch):
    env = {"PYTHONPATH": str(__import__("pathlib").Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "poolskip"]
    cmd += ["train", *ARGS, "--pool-skip", "true", "--out-dir", str(tmp_path), "--run-name", "ddp"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("epoch 2/2") == 1  # logs from rank 0 only

    monkeypatch.syspath_prepend(env["PYTHONPATH"])
    assert main(["train", *ARGS, "--pool-skip", "true", "--out-dir", str(tmp_path), "--run-name", "one"]) == 0
    ddp, one = tmp_path / "ddp" / "seed1", tmp_path / "one" / "seed1"
    a = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(one / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and any("pool_skip" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert not torch.equal(a["4.weight"], tiny_net().state_dict()["4.weight"])  # it did train
    ma, mb = ((json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()) for d in (ddp, one))
    for ra, rb in zip(ma, mb):
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-4 and abs(ra["test_loss"] - rb["test_loss"]) < 1e-4
    assert json.loads((ddp / "summary.json").read_text())["world_size"] == 2


class _NanOnRank1(nn.Module):
    """``tiny_net`` whose training output turns NaN from its third step on, on rank 1 only."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net, self.steps = tiny_net(num_classes), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training:
            self.steps += 1
            if __import__("os").environ.get("RANK") == "1" and self.steps >= 3:
                out = out * float("nan")
        return out


def nan_on_rank1(num_classes: int = 10) -> nn.Module:
    return _NanOnRank1(num_classes)


def test_a_loss_that_turns_nan_on_one_process_stops_every_process_at_that_step(tmp_path):
    """The per-step check sums over processes: both ranks name step 3 themselves (none waits in a gradient
    all-reduce for a process that has gone), and nothing of the epoch is written."""
    here = str(__import__("pathlib").Path(__file__).parent)
    env = {"PYTHONPATH": __import__("os").pathsep.join([here, *sys.path]), "OMP_NUM_THREADS": "1"}  # this poolskip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "poolskip"]
    args = [a if a != "test_engine_ddp:tiny_net" else "test_engine_ddp:nan_on_rank1" for a in ARGS]
    cmd += ["train", *args, "--out-dir", str(tmp_path), "--run-name", "nan"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**__import__("os").environ, **env})
    assert proc.returncode != 0
    stop = "poolskip train: error: the training loss is nan at step 3 of epoch 1; stopped before writing anything"
    assert proc.stderr.count(stop) == 2, proc.stderr[-3000:]
    assert not (tmp_path / "nan" / "seed1" / "checkpoints").exists()
    assert not (tmp_path / "nan" / "seed1" / "summary.json").exists()


class _ExitAt(nn.Module):
    """``tiny_net`` whose process exits at once (as if killed) at training forward POOLSKIP_TEST_EXIT_AT."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.net, self.calls = tiny_net(num_classes), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if str(self.calls) == os.environ.get("POOLSKIP_TEST_EXIT_AT"):
                os._exit(3)
        return self.net(x)


def exit_net(num_classes: int = 10) -> nn.Module:
    return _ExitAt(num_classes)


def _torchrun(argv: list[str], **env) -> subprocess.CompletedProcess:
    here = str(Path(__file__).parent)
    env = {"PYTHONPATH": os.pathsep.join([here, *sys.path]), "OMP_NUM_THREADS": "1", **env}  # this poolskip
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "poolskip"]
    return subprocess.run([*cmd, *argv], capture_output=True, text=True, timeout=180, env={**os.environ, **env})


def test_a_two_process_run_stopped_mid_epoch_and_resumed_trains_as_one_process(tmp_path, monkeypatch):
    """The mid-epoch last.pt holds the epoch's loss sums of both processes (rank 0 resumes with them), so the
    resumed epoch's train_loss is the uninterrupted run's; 475 samples in batches of 96: 5 steps an epoch."""
    argv = ["train", *ARGS, "--model", "test_engine_ddp:exit_net", "--set", "checkpoint_every=2"]
    argv += ["--out-dir", str(tmp_path)]
    stopped = _torchrun([*argv, "--run-name", "ddp"], POOLSKIP_TEST_EXIT_AT="4")  # in step 4: last.pt at step 2
    run = tmp_path / "ddp" / "seed1"
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert stopped.returncode != 0 and (ck["epoch"], ck["step"]) == (0, 2), stopped.stderr[-3000:]
    resumed = _torchrun(["train", "--resume", str(run), "--allow-external-model"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delenv("POOLSKIP_TEST_EXIT_AT", raising=False)
    assert main([*argv, "--run-name", "one"]) == 0
    one = tmp_path / "one" / "seed1"
    ma, mb = ([json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()] for d in (run, one))
    assert len(ma) == len(mb) == 2
    for ra, rb in zip(ma, mb):
        assert abs(ra["train_loss"] - rb["train_loss"]) < 1e-4 and abs(ra["test_loss"] - rb["test_loss"]) < 1e-4


def seg_bn_net(num_classes: int, in_channels: int = 3) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, num_classes, 1)
    )


def test_two_processes_evaluate_a_split_one_of_them_has_no_image_of(tmp_path):
    """One test image for two processes: rank 1 makes no evaluation forward pass. Through DDP's wrapper the
    first one after training broadcasts its buffers and rank 1 would wait in another collective; the engine
    evaluates the bare model on rank 0's buffers, so the run ends, with the checkpoint's own mIoU."""
    from seg_layouts import make_camvid

    root = make_camvid(tmp_path / "camvid", counts={"train": 8, "test": 1}, size=(16, 20))
    argv = [
        "train", "--task", "segmentation", "--dataset", "camvid", "--data-dir", str(root), "--model",
        "test_engine_ddp:seg_bn_net", "--epochs", "1", "--device", "cpu", "--out-dir", str(tmp_path), "--run-name",
        "seg", "--set", "batch_size=4", "eval_batch_size=1", "threads=1", f"cache_dir={tmp_path / 'cache'}",
        "segmentation.crop_size=[13, 15]", "segmentation.eval_split=test",
    ]  # fmt: skip
    proc = _torchrun(argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "seg" / "seed0"
    summary = json.loads((run / "summary.json").read_text())
    model, task, _ = restore(run, "last", allow_external_model=True)
    with torch.no_grad():
        miou = task.evaluate(model, lambda: torch.autocast("cpu", enabled=False))["miou"]
    assert summary["world_size"] == 2 and summary["final_metrics"]["miou"] == miou
