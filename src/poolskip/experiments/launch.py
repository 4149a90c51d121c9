"""Run a list of jobs: here, one device per concurrent job, or on Slurm through submitit.

A :class:`Job` is one engine run: a resolved config mapping, its run directory and whether it resumes
(``checkpoints/last.pt``); other work (e.g. scoring the folds' ensemble of a Table 3 cell) is any object with
the :class:`Work` methods. Which runs to train and which to skip (finished) or resume (half done) is the
caller's decision (``poolskip reproduce``); this module only places the jobs:

- :func:`run_local`: ``parallel`` jobs at once on this machine. Slot *k* trains on ``devices[k % len(devices)]``
  (default: the visible CUDA devices, ``cuda:0``, ``cuda:1``, ...; the config's own device, i.e. the CPU under
  ``auto``, where there is none), so with as many devices as slots no two concurrent jobs share a GPU. One job
  at a time trains in this process; several each train in a fresh spawned process.
- :func:`run_slurm`: one Slurm job per run through `submitit <https://github.com/facebookincubator/submitit>`_
  (``pip install 'poolskip[slurm]'``), the runs of one call submitted as one job array. A job that reaches its
  time limit or is preempted is requeued by submitit and resumes from its last checkpoint. ``executor="local"``
  runs the same jobs as subprocesses of this machine with submitit's local executor (a rehearsal of a
  cluster run, and what the tests use).
"""

from __future__ import annotations

import argparse
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ..errors import PoolskipError

__all__ = [
    "LAUNCHERS",
    "Job",
    "LaunchError",
    "SlurmOptions",
    "Work",
    "add_launch_arguments",
    "device_slots",
    "launch",
    "launch_options",
    "run_job",
    "run_local",
    "run_slurm",
    "train_job",
    "visible_devices",
]

#: Where the jobs run: ``local`` (this machine, ``--jobs`` at once) or ``slurm`` (one submitit job per run).
LAUNCHERS = ("local", "slurm")


class LaunchError(PoolskipError):
    """Some jobs failed (the others were trained first) or could not be submitted."""

    exit_code = 1


class Work(Protocol):
    """What the launchers place: a frozen dataclass (picklable: a spawned process or a Slurm job runs it) with a
    ``name`` for the log, a ``device`` the launcher sets (None: its own choice), and these methods."""

    name: str
    device: str | None

    @property
    def what(self) -> str:
        """What it does, for the log (``training (VGG16, seed 0)``)."""

    def run(self) -> Any:
        """Do it in this process."""

    def requeued(self) -> Work:
        """What a Slurm job preempted or at its time limit is requeued with (e.g. resume from its checkpoint)."""

    def portable(self) -> Work:
        """This work as a Slurm job runs it: absolute paths (it may start elsewhere), no device (Slurm gives it
        its GPUs)."""


@dataclass(frozen=True)
class Job:
    """One training run: the config mapping ``make_config`` resolves, where it writes, whether it resumes."""

    config: Mapping[str, Any]
    run_dir: Path
    resume: bool = False
    label: str = ""  # how the log names it, e.g. "[3/15] cifar10_VGG16_plain/seed0"
    detail: str = ""  # what it is, e.g. "VGG16, seed 0"
    device: str | None = None  # set by the launcher: overrides the config's run.device

    @property
    def name(self) -> str:
        return self.label or str(self.run_dir)

    @property
    def what(self) -> str:
        return f"{'resuming' if self.resume else 'training'}{f' ({self.detail})' if self.detail else ''}"

    def run(self) -> str:
        return train_job(self)

    def requeued(self) -> Job:
        from ..engine.rundir import RunDir

        # resume what it wrote: from its checkpoint, or afresh if it stopped before its first one
        return replace(self, resume=RunDir(self.run_dir).holds_run())

    def portable(self) -> Job:
        return replace(self, device=None, run_dir=Path(self.run_dir).resolve())


@dataclass(frozen=True)
class SlurmOptions:
    """The resources of each run's Slurm job (submitit's ``AutoExecutor`` parameters)."""

    partition: str | None = None  # sbatch --partition; None: the cluster's default
    time_min: int = 24 * 60  # sbatch --time, minutes; a run that outlives it is requeued and resumes
    gpus: int = 1  # GPUs per run (--gpus-per-node); 0 for a CPU-only run
    cpus: int = 8  # CPUs per run (--cpus-per-task)
    mem_gb: float | None = None  # memory per run (--mem), GB; None: the partition's default
    extra: Mapping[str, str] = field(default_factory=dict)  # other sbatch options, e.g. {"account": "lab"}
    parallel: int = 256  # runs of the array running at once (--array=0-N%parallel)
    executor: str = "slurm"  # submitit's executor: slurm (sbatch), or local (subprocesses here)


# ------------------------------------------------------------------------------------------ one job


def train_job(job: Job) -> str:
    """Train one job in this process (a top-level function: a spawned process or a Slurm job calls it)."""
    from ..engine.config import make_config
    from ..engine.trainer import train

    layers: list[Mapping[str, Any]] = [dict(job.config)]
    if job.device is not None:
        layers.append({"device": job.device})
        if job.device.startswith("cuda:"):
            import torch

            torch.cuda.set_device(job.device)  # code that asks for "the" GPU gets this job's one
    train(make_config(*layers), str(job.run_dir), resume=job.resume)
    return str(job.run_dir)


def run_job(job: Work) -> Any:
    """``job.run()`` (a top-level function: what a spawned process calls)."""
    return job.run()


def _run_in_subprocess(job: Work) -> None:
    """:func:`run_job` in a fresh spawned process (its own CUDA context, memory given back at its end)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pool.submit(run_job, job).result()


# ------------------------------------------------------------------------------------------ devices


def visible_devices() -> list[str]:
    """``cuda:0``, ``cuda:1``, ... for the CUDA devices this process sees; empty without CUDA."""
    import torch

    return [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def device_slots(parallel: int, devices: Sequence[str] | None = None) -> list[str | None]:
    """The device of each of ``parallel`` concurrent slots: round robin over ``devices`` (default
    :func:`visible_devices`); ``None`` (the config's own device) for every slot when there is none."""
    if parallel < 1:
        raise ValueError(f"parallel jobs must be at least 1, got {parallel}")
    devices = list(visible_devices() if devices is None else devices)
    if not devices:
        return [None] * parallel
    return [devices[k % len(devices)] for k in range(parallel)]


# ------------------------------------------------------------------------------------------ local


def run_local(
    jobs: Sequence[Work],
    parallel: int = 1,
    devices: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    runner: Callable[[Work], Any] | None = None,
) -> None:
    """Run ``jobs`` here, ``parallel`` at a time, each concurrent slot on its own device (:func:`device_slots`).

    Jobs start in list order as slots free up. A failed job is logged and the others still run; then
    :class:`LaunchError` names every failure. ``runner`` runs one job (default: :func:`run_job` in this
    process for ``parallel == 1``, in a spawned process otherwise); tests pass a fake one.
    """
    slots = device_slots(parallel, devices)
    if runner is None:
        runner = run_job if parallel == 1 else _run_in_subprocess
    todo: queue.Queue[Work] = queue.Queue()
    for job in jobs:
        todo.put(job)
    failures: list[tuple[Work, BaseException]] = []
    lock = threading.Lock()

    def slot(device: str | None) -> None:
        while True:
            try:
                job = replace(todo.get_nowait(), device=device)
            except queue.Empty:
                return
            on = f" on {device}" if device else ""
            log(f"{job.name}: {job.what}{on}")
            t = time.time()
            try:
                runner(job)
            except Exception as e:  # the other jobs still get their turn; reported at the end
                with lock:
                    failures.append((job, e))
                log(f"{job.name}: FAILED after {time.time() - t:.0f} s ({type(e).__name__}: {e})")
                continue
            log(f"{job.name}: done in {time.time() - t:.0f} s{on}")

    if len(slots) == 1:
        slot(slots[0])
    else:
        threads = [  # daemons: Ctrl-C ends the command (the spawned training processes get the signal too)
            threading.Thread(target=slot, args=(d,), name=f"launch-slot-{k}", daemon=True) for k, d in enumerate(slots)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    _raise_failures(failures, len(jobs))


def _raise_failures(failures: list[tuple[Work, BaseException]], n: int) -> None:
    if failures:
        names = "; ".join(f"{j.name} ({type(e).__name__}: {e})" for j, e in failures)
        raise LaunchError(f"{len(failures)} of {n} run(s) failed: {names}") from failures[0][1]


# ------------------------------------------------------------------------------------------ Slurm


class SlurmRun:
    """What each Slurm job calls: run one job (:class:`Work`). On a time limit or preemption submitit calls
    :meth:`checkpoint` and requeues the job as :meth:`Work.requeued` says (a training run: resumed from
    ``checkpoints/last.pt``)."""

    def __call__(self, job: Work) -> Any:
        return job.run()

    def checkpoint(self, job: Work):
        import submitit

        return submitit.helpers.DelayedSubmission(self, job.requeued())


def _executor(folder: Path, options: SlurmOptions, name: str):
    from ..optional import require

    submitit = require("submitit", "slurm", "--launcher slurm")
    if options.executor not in ("slurm", "local"):
        raise LaunchError(f"submitit executor {options.executor!r}: expected slurm or local")
    try:
        executor = submitit.AutoExecutor(folder=folder / "%j", cluster=options.executor)
    except RuntimeError as e:  # no srun/sbatch here
        raise LaunchError(
            f"--launcher slurm: {e} (--slurm-executor local runs the same jobs as subprocesses of this machine)"
        ) from e
    params: dict[str, Any] = {
        "name": name,
        "timeout_min": options.time_min,
        "nodes": 1,
        "tasks_per_node": 1,
        "gpus_per_node": options.gpus,
        "cpus_per_task": options.cpus,
        "slurm_array_parallelism": options.parallel,
    }
    if options.mem_gb is not None:
        params["mem_gb"] = options.mem_gb
    if options.partition:
        params["slurm_partition"] = options.partition
    if options.extra:
        params["slurm_additional_parameters"] = dict(options.extra)
    executor.update_parameters(**params)
    return executor


def run_slurm(
    jobs: Sequence[Work],
    folder: str | Path,
    options: SlurmOptions | None = None,
    log: Callable[[str], None] = print,
    name: str = "poolskip",
) -> None:
    """Submit one Slurm job per run (one job array) through submitit, then wait for them all.

    ``folder`` receives submitit's pickles and each job's logs (``folder/<job id>/``); on a cluster it must be
    on a filesystem the compute nodes share. Each job sees its own GPUs (Slurm sets ``CUDA_VISIBLE_DEVICES``),
    so the run's config keeps its device (``auto``). Stopping this command does not cancel the submitted
    jobs; rerunning it before they end would submit their runs again (the run directory's lock refuses a
    second writer), so wait for them (``squeue``) first.
    """
    if not jobs:
        return
    options = options or SlurmOptions()
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    executor = _executor(folder, options, name)
    runner = SlurmRun()
    portable = [job.portable() for job in jobs]  # absolute paths, no device: Slurm gives each job its GPUs
    try:
        with executor.batch():
            submitted = [executor.submit(runner, job) for job in portable]
    except Exception as e:  # sbatch missing or refusing the options: say which, before anything ran
        raise LaunchError(f"submitting {len(jobs)} run(s) through submitit ({options.executor}) failed: {e}") from e
    for job, sub in zip(jobs, submitted):
        log(f"{job.name}: {job.what}, submitted as {options.executor} job {sub.job_id} (logs: {folder / sub.job_id})")
    failures: list[tuple[Work, BaseException]] = []
    for job, sub in zip(jobs, submitted):
        try:
            sub.result()
        except Exception as e:  # submitit's FailedJobError carries the job's traceback
            failures.append((job, e))
            log(f"{job.name}: FAILED ({options.executor} job {sub.job_id}; logs: {folder / sub.job_id})")
            continue
        log(f"{job.name}: done ({options.executor} job {sub.job_id})")
    _raise_failures(failures, len(jobs))


# ------------------------------------------------------------------------------------------ either


def launch(
    jobs: Sequence[Work],
    launcher: str = "local",
    parallel: int = 1,
    devices: Sequence[str] | None = None,
    slurm: SlurmOptions | None = None,
    folder: str | Path = "slurm",
    log: Callable[[str], None] = print,
) -> None:
    """Run ``jobs`` with ``launcher``: :func:`run_local` (``parallel``, ``devices``) or :func:`run_slurm`
    (``slurm`` options, submitit's files under ``folder``)."""
    if launcher == "local":
        run_local(jobs, parallel, devices, log)
    elif launcher == "slurm":
        run_slurm(jobs, folder, slurm, log)
    else:
        raise LaunchError(f"launcher {launcher!r}: expected one of {', '.join(LAUNCHERS)}")


# ------------------------------------------------------------------------------------------ command line


def _sbatch_option(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an sbatch option as KEY=VALUE, e.g. account=mylab")
    return key.removeprefix("--"), value


def add_launch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--launcher``, ``--devices`` and the ``--slurm-*`` options (``--jobs`` stays the command's own)."""
    d = SlurmOptions()
    parser.add_argument(
        "--launcher",
        choices=LAUNCHERS,
        default="local",
        help="local: train here (--jobs at once, one device each); slurm: one Slurm job per run through submitit",
    )
    parser.add_argument(
        "--devices",
        nargs="+",
        metavar="DEVICE",
        help="--launcher local: devices the --jobs slots take in turn (default: every visible GPU, e.g. cuda:0 "
        "cuda:1; the CPU without one)",
    )
    parser.add_argument("--slurm-partition", help="Slurm partition (default: the cluster's)")
    parser.add_argument(
        "--slurm-time",
        type=int,
        default=d.time_min,
        metavar="MINUTES",
        help=f"time limit of each run's job in minutes (default {d.time_min}); a run that reaches it is "
        "requeued and resumes from its last checkpoint",
    )
    parser.add_argument("--slurm-gpus", type=int, default=d.gpus, help=f"GPUs per run (default {d.gpus})")
    parser.add_argument("--slurm-cpus", type=int, default=d.cpus, help=f"CPUs per run (default {d.cpus})")
    parser.add_argument("--slurm-mem", type=float, metavar="GB", help="memory per run in GB (default: the partition's)")
    parser.add_argument(
        "--slurm-parallel",
        type=int,
        default=d.parallel,
        help=f"runs of the job array running at once (default {d.parallel})",
    )
    parser.add_argument(
        "--slurm-option",
        type=_sbatch_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another sbatch option, e.g. account=mylab or constraint=h100 (repeatable)",
    )
    parser.add_argument(
        "--slurm-executor",
        choices=("slurm", "local"),
        default=d.executor,
        help="submitit's executor: slurm (sbatch), or local to run the same jobs as subprocesses of this machine "
        "(a rehearsal of a cluster run)",
    )


def launch_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :func:`launch` keywords (``launcher``, ``devices``, ``slurm``) from :func:`add_launch_arguments`'s."""
    slurm = SlurmOptions(
        partition=args.slurm_partition,
        time_min=args.slurm_time,
        gpus=args.slurm_gpus,
        cpus=args.slurm_cpus,
        mem_gb=args.slurm_mem,
        extra=dict(args.slurm_option),
        parallel=args.slurm_parallel,
        executor=args.slurm_executor,
    )
    return {"launcher": args.launcher, "devices": args.devices, "slurm": slurm}
