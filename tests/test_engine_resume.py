"""Kill a training process with SIGKILL mid-epoch, resume it, and get exactly the uninterrupted run (CPU)."""

import json
import signal
import subprocess
import sys
import time

import torch

from poolskip.cli import main

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
