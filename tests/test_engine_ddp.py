"""Two CPU processes under torchrun (gloo) train the same model as one process with the same global batch.

475 training images in batches of 96: the last batch splits 46/45, so the loss weighting across processes matters.
"""

import json
import subprocess
import sys

import torch
from torch import nn

from poolskip.cli import main

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
