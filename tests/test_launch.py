"""experiments/launch.py: one device per concurrent job (a fake device list), submitit's local executor
running a tiny table through ``reproduce --launcher slurm``, and the skip/resume rules on both launchers."""

import argparse
import json
import threading
from pathlib import Path

import pytest

from poolskip.commands import reproduce
from poolskip.experiments import launch
from poolskip.experiments.launch import Job, LaunchError, SlurmRun, device_slots, run_local
from poolskip.experiments.reproduce import plan
from poolskip.experiments.results import read_summary


def _args(command, tmp_path, *extra):
    p = argparse.ArgumentParser()
    reproduce.add_arguments(p)
    return p.parse_args([command, "--out", str(tmp_path), *extra])


def _job_dirs(folder: Path) -> list[Path]:
    """submitit's per-job folders (``folder/%j`` with the job id; the template itself stays empty)."""
    return [p for p in folder.iterdir() if p.name != "%j"]


def _jobs(tmp_path, n):
    return [Job({"model": "small_cnn"}, tmp_path / f"run{i}", label=f"job{i}") for i in range(n)]


def test_device_slots_take_the_devices_in_turn():
    assert device_slots(2, ["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1"]
    assert device_slots(3, ["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1", "cuda:0"]  # more slots than GPUs: shared
    assert device_slots(1, ["cuda:3"]) == ["cuda:3"]
    assert device_slots(2, []) == [None, None]  # no GPU: the config's own device (the CPU under auto)
    with pytest.raises(ValueError, match="at least 1"):
        device_slots(0, ["cpu"])


def test_concurrent_local_jobs_each_get_their_own_device(tmp_path):
    """Four jobs, two slots, a fake list of two GPUs: the jobs running at the same time never share a device."""
    devices = ["cuda:0", "cuda:1"]
    together = threading.Barrier(2)  # each job waits until the other slot runs one too
    lock = threading.Lock()
    running: list[str] = []
    seen: list[tuple[str, str]] = []

    def fake(job):
        with lock:
            assert job.device not in running, f"{job.device} given to two running jobs"
            running.append(job.device)
            seen.append((job.label, job.device))
        together.wait(timeout=60)
        with lock:
            running.remove(job.device)

    logs = []
    run_local(_jobs(tmp_path, 4), parallel=2, devices=devices, log=logs.append, runner=fake)
    assert sorted(label for label, _ in seen) == ["job0", "job1", "job2", "job3"]
    assert {d for _, d in seen} == set(devices)
    assert sum("on cuda:" in line and "training" in line for line in logs) == 4


def test_a_failed_local_job_is_reported_after_the_others_trained(tmp_path):
    trained = []

    def fake(job):
        if job.label == "job1":
            raise RuntimeError("out of memory")
        trained.append(job.label)

    with pytest.raises(LaunchError, match=r"1 of 3 run\(s\) failed: job1 \(RuntimeError: out of memory\)"):
        run_local(_jobs(tmp_path, 3), parallel=1, devices=["cpu"], log=lambda *a: None, runner=fake)
    assert trained == ["job0", "job2"]


def test_train_job_puts_the_slots_device_over_the_configs(tmp_path, monkeypatch):
    import poolskip.engine.trainer as trainer

    got = []
    monkeypatch.setattr(trainer, "train", lambda cfg, d, resume=False: got.append((cfg.run.device, d, resume)))
    launch.train_job(Job({"model": "small_cnn", "run": {"device": "auto"}}, tmp_path / "a", resume=True, device="cpu"))
    launch.train_job(Job({"model": "small_cnn", "run": {"device": "auto"}}, tmp_path / "b"))
    assert got == [("cpu", str(tmp_path / "a"), True), ("auto", str(tmp_path / "b"), False)]


def test_reproduce_passes_jobs_and_devices_to_the_launcher(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(launch, "run_local", lambda jobs, parallel, devices, log: calls.append((parallel, devices)))
    args = _args("table4", tmp_path, "--scale", "tiny", "--jobs", "2", "--devices", "cuda:0", "cuda:1")
    monkeypatch.setattr(reproduce, "collect", lambda runs, root: [])
    table = tmp_path / "table4.md"  # the table as write_outputs wrote it, which the command prints
    table.write_text("")
    monkeypatch.setattr(reproduce, "write_outputs", lambda *a: [table])
    assert reproduce.run(args) == 0
    assert calls == [(2, ["cuda:0", "cuda:1"])]


def test_slurm_options_reach_the_sbatch_script(tmp_path, monkeypatch):
    args = _args(
        "table1", tmp_path, "--launcher", "slurm", "--slurm-partition", "gpu", "--slurm-time", "90",
        "--slurm-gpus", "2", "--slurm-mem", "64", "--slurm-option", "account=lab", "--slurm-option=--qos=high",
    )  # fmt: skip
    opts = launch.launch_options(args)
    assert opts["launcher"] == "slurm"
    slurm = opts["slurm"]
    assert (slurm.partition, slurm.time_min, slurm.gpus, slurm.mem_gb) == ("gpu", 90, 2, 64.0)
    assert slurm.extra == {"account": "lab", "qos": "high"} and slurm.executor == "slurm"
    with pytest.raises(SystemExit):
        _args("table1", tmp_path, "--slurm-option", "novalue")
    with pytest.raises(LaunchError, match="slurm-executor local"):  # this machine has no Slurm
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        launch._executor(tmp_path, slurm, "poolskip")
    # where submitit finds srun it writes the sbatch script from the options
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    ex = launch._executor(tmp_path / "logs", slurm, "poolskip")
    sbatch = ex._executor._make_submission_file_text("python -m x", "uid")
    for line in ("--partition=gpu", "--time=90", "--gpus-per-node=2", "--cpus-per-task=8", "--mem=64GB",
                 "--account=lab", "--qos=high", "--ntasks-per-node=1", "--signal=USR2@"):  # fmt: skip
        assert f"#SBATCH {line}" in sbatch, line


def test_a_requeued_slurm_job_resumes_once_it_has_a_checkpoint(tmp_path):
    job = Job({"model": "small_cnn"}, tmp_path / "run")
    assert SlurmRun().checkpoint(job).args[0].resume is False  # nothing saved yet: starts over
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("model: small_cnn\n")  # stopped before its first checkpoint
    assert SlurmRun().checkpoint(job).args[0].resume is True  # a resume that starts it afresh (a new run is refused)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"x")
    again = SlurmRun().checkpoint(job)
    assert isinstance(again.function, SlurmRun) and again.args[0].resume is True


def test_an_ensemble_job_travels_as_a_slurm_job_and_is_scored_again_when_requeued(tmp_path, monkeypatch):
    """Table 3's ensemble scoring is placed like a training run: pickled for a spawned process or a Slurm job with
    absolute paths and no device (Slurm gives it its GPUs), requeued as it is (nothing half-written to resume),
    and run on the slot's device."""
    import pickle

    from poolskip.experiments import folds3d
    from poolskip.experiments.reproduce.ensembles import EnsembleJob

    monkeypatch.chdir(tmp_path)
    job = EnsembleJob(Path("out"), ("cell/fold0", "cell/fold1"), Path("out/ensembles/cell/seed0.json"), device="cpu")
    portable = job.portable()
    assert portable.device is None and portable.root.is_absolute() and portable.out.is_absolute()
    assert pickle.loads(pickle.dumps(portable)) == portable
    assert SlurmRun().checkpoint(job).args[0] is job
    for k in (0, 1):
        run = tmp_path / "out" / "runs" / "cell" / f"fold{k}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(f'{{"fold": {k}}}')
        (run / "config.yaml").write_text("run: {device: auto}\n")
    seen = []
    monkeypatch.setattr(folds3d, "ensemble_runs", lambda dirs, which, device: seen.append((dirs, which, device))
                        or {"dice": float("nan"), "models": len(dirs)})  # fmt: skip
    run_local([job], log=lambda *a: None)
    assert seen == [([Path("out/runs/cell/fold0"), Path("out/runs/cell/fold1")], "best", "cpu")]
    record = json.loads(Path("out/ensembles/cell/seed0.json").read_text())
    assert record["scores"] == {"dice": None, "models": 2} and sorted(record["members"]) == ["cell/fold0", "cell/fold1"]


def test_reproduce_on_submitits_local_executor_trains_skips_and_resumes(tmp_path, capsys):
    """``reproduce table1 --scale tiny --launcher slurm`` with submitit's local executor: one job per run,
    then nothing left to submit, then a run that lost its summary is resumed from its checkpoint."""
    slurm = ("--launcher", "slurm", "--slurm-executor", "local", "--slurm-gpus", "0", "--slurm-cpus", "1")
    args = _args("table1", tmp_path, "--scale", "tiny", "--threads", "1", "--train-subset", "128", *slurm)
    assert reproduce.run(args) == 0
    root = tmp_path / "table1-tiny"
    runs = plan("table1", "tiny")
    for r in runs:
        assert read_summary(root / "runs" / r.name).raw["epochs"] == 1
    out = capsys.readouterr().out
    assert out.count("submitted as local job") == len(runs) and "table1" in out
    job_dirs = _job_dirs(root / "slurm")
    assert len(job_dirs) == len(runs) and all(list(d.glob("*_log.out")) for d in job_dirs)

    assert reproduce.run(args) == 0  # every run finished: skipped, nothing submitted
    out = capsys.readouterr().out
    assert "submitted" not in out and "0 run(s) trained" in out

    lost = root / "runs" / runs[0].name
    (lost / "summary.json").unlink()  # checkpoints/last.pt stays: a half-done run
    assert reproduce.run(args) == 0
    out = capsys.readouterr().out
    assert out.count("submitted as local job") == 1 and f"{runs[0].name}: resuming" in out
    assert read_summary(lost).raw["epochs"] == 1 and len(_job_dirs(root / "slurm")) == len(runs) + 1


def test_a_failed_slurm_job_names_its_run(tmp_path):
    job = Job({"model": "no_such_model"}, tmp_path / "run", label="bad")
    opts = launch.SlurmOptions(executor="local", gpus=0, cpus=1, time_min=5)
    with pytest.raises(LaunchError, match=r"1 of 1 run\(s\) failed: bad"):
        launch.run_slurm([job], tmp_path / "slurm", opts, log=lambda *a: None)
    assert list(Path(tmp_path / "slurm").glob("*/*_log.err"))
