"""Kill a training process with SIGKILL mid-epoch, resume it, and get exactly the uninterrupted run (CPU); what a
resume refuses, and the checkpoint an error calls the last good one."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from interrupt import Interrupt, StopAfter
from poolskip.cli import main
from poolskip.engine import make_config, train

ARGS = [
    "--model", "small_cnn", "--epochs", "2", "--device", "cpu",
    "--set", "model_kwargs={width: 4}", "batch_size=32", "deterministic=true", "checkpoint_every=3", "cutout=3",
    "train_subset=640", "threads=1",
]  # fmt: skip
TIMING = {"epoch_seconds", "eval_seconds", "samples_per_s"}


def records(run):
    return [
        {k: v for k, v in json.loads(line).items() if k not in TIMING}
        for line in (run / "metrics.jsonl").read_text().splitlines()
    ]


def test_resume_after_sigkill_mid_epoch_is_exact(tmp_path):
    run = tmp_path / "killed" / "seed0"
    cmd = [sys.executable, "-m", "poolskip", "train", *ARGS, "--out-dir", str(tmp_path), "--run-name", "killed"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, position = time.time() + 240, None
        while time.time() < deadline and proc.poll() is None:
            try:  # checkpoints are written atomically: a load sees a whole file or none
                ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
                if ck["epoch"] >= 1 and ck["step"] > 0:  # inside epoch 2 or later
                    position = (ck["epoch"], ck["step"])
                    break
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert position is not None and proc.returncode == -signal.SIGKILL
    assert not (run / "summary.json").exists()

    assert main(["train", "--resume", str(run)]) == 0
    assert main(["train", *ARGS, "--out-dir", str(tmp_path), "--run-name", "whole"]) == 0
    whole = tmp_path / "whole" / "seed0"
    assert records(run) == records(whole) and len(records(run)) == 2
    a = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((run / "summary.json").read_text())["final"] == records(whole)[-1]["test_error"]


def _config(**over):
    flat = {
        "model": "small_cnn", "model_kwargs": {"width": 4}, "epochs": 2, "device": "cpu", "batch_size": 32,
        "train_subset": 320, "threads": 1, "seed": 0, **over,
    }  # fmt: skip
    return make_config(flat)


def test_a_run_stopped_between_its_checkpoint_and_its_tensorboard_write_gets_that_epoch_in_tensorboard(
    tmp_path, monkeypatch
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from poolskip.engine import trainer

    def killed(self, record):  # epoch 1's last.pt is written, then the process dies before its log writes
        raise Interrupt

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        m.setattr(trainer._RunLog, "epoch", killed)
        with pytest.raises(Interrupt):
            train(_config(), run)
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert not (run / "tb").exists()
    assert main(["train", "--resume", str(run)]) == 0
    events = EventAccumulator(str(run / "tb")).Reload()
    assert [e.step for e in events.Scalars("train_loss")] == [1, 2]  # epoch 1 from the checkpoint's history
    assert [r["epoch"] for r in records(run)] == [1, 2]


def test_a_resume_keeps_its_seed_and_never_ends_on_an_epoch_it_did_not_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    with pytest.raises(Interrupt):  # epoch 1 trained, not evaluated (eval_every 2), then stopped
        train(_config(eval_every=2), run, callbacks=[StopAfter(2)])
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    capsys.readouterr()

    assert main(["train", "--resume", str(run), "--seed", "1"]) == 2
    assert f"{run / 'checkpoints' / 'last.pt'} was trained with seed 0; a resume goes on with it, got seed 1" in (
        capsys.readouterr().err
    )
    assert main(["train", "--resume", str(run), "--epochs", "1"]) == 2  # its summary would have nothing to end on
    err = capsys.readouterr().err
    assert "holds epoch 1 unevaluated (eval_every 2), so no test_error to end on" in err and "> 1 to go on" in err
    assert not (run / "summary.json").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["epochs"] == 2

    assert main(["train", "--resume", str(run)]) == 0  # as it was: goes on to its 2 epochs
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["seed"] == 0 and summary["best_epoch"] == 2


def test_a_run_stopped_between_its_first_best_pt_and_its_first_last_pt_resumes_afresh(tmp_path, capsys):
    run = tmp_path / "run"
    train(_config(epochs=1), run)
    whole = records(run)
    (run / "checkpoints" / "last.pt").unlink()  # as if stopped just after best.pt, before last.pt
    (run / "summary.json").unlink()
    (run / "metrics.jsonl").unlink()
    assert main(["train", "--resume", str(run)]) == 0
    assert "stopped before its first checkpoint: starting it afresh" in capsys.readouterr().out
    assert records(run) == whole and (run / "checkpoints" / "last.pt").is_file()


def nan_grad_net(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return _NanGradAtStep3(num_classes, in_channels)


class _NanGradAtStep3(nn.Module):
    """A small net whose third training step has a finite loss but a NaN gradient (sqrt's slope at 0, times 0),
    so the update leaves a NaN weight; without grad_clip no gradient norm is measured to catch it."""

    def __init__(self, num_classes: int, in_channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(4, num_classes),
        )  # fmt: skip
        self.p, self.calls = nn.Parameter(torch.ones(())), 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls == 3:
                out = out + torch.sqrt(self.p * 0)
        return out


def test_a_mid_epoch_checkpoint_is_never_written_with_weights_an_update_made_nan(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    argv = ["train", "--model", "test_engine_resume:nan_grad_net", "--epochs", "1", "--device", "cpu"]
    argv += ["--set", "batch_size=32", "train_subset=320", "threads=1", "checkpoint_every=1"]
    argv += ["--out-dir", str(tmp_path)]
    assert main([*argv, "--run-name", "nan"]) == 1
    err = capsys.readouterr().err
    assert "the weights are not finite after the update (1 parameter tensor(s), e.g. 'p'" in err
    last = tmp_path / "nan" / "seed0" / "checkpoints" / "last.pt"
    assert "at step 3 of epoch 1; stopped" in err and f"The last good checkpoint is {last}" in err
    ck = torch.load(last, weights_only=True)
    assert (ck["epoch"], ck["step"]) == (0, 2) and all(torch.isfinite(v).all() for v in ck["model"].values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_run_trained_on_cuda_resumes_on_cuda(tmp_path):
    """Its last.pt holds the CPU and CUDA generators' states, which must be restored from the CPU."""
    run = tmp_path / "run"
    train(_config(epochs=1, device="cuda"), run)
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2


def test_the_code_commit_is_read_as_the_run_starts_not_when_it_ends(tmp_path):
    """summary.json's versions.poolskip_commit names the code the process runs: read before training, so a
    commit made while the run trains is not taken for its code."""
    from poolskip.engine.trainer import source_commit

    source_commit.cache_clear()
    seen = []

    class Probe:
        def start(self, task, model):
            seen.append(source_commit.cache_info().currsize)

        def on_epoch_end(self, epoch, model):
            pass

    train(_config(epochs=1), tmp_path / "run", callbacks=[Probe()])
    assert seen == [1]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["versions"].get("poolskip_commit") == source_commit()
