"""A run directory and its one writer.

::

    RUN_DIR/
      .lock              held (flock) by the one process writing this run
      config.yaml        the resolved config (what `--resume` reads back)
      metrics.jsonl      one JSON record per epoch (strict JSON: NaN is written as null)
      tb/                TensorBoard events
      checkpoints/       last.pt, best.pt (torch.load(..., weights_only=True))
      summary.json       written when the run finishes

A new run never reuses a directory that holds a run (pass ``overwrite`` to replace it), a resumed one
needs ``checkpoints/last.pt``, and a second process writing the same directory is refused.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from ..errors import PoolskipError
from ..files import atomic_write_text, remove_stale_temp_files

__all__ = ["RunDir", "RunDirError", "lock_held", "new_run_dir"]

#: what makes a directory "hold a run"
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "tb")


def lock_held(run_dir: str | os.PathLike) -> bool:
    """Whether a live process holds ``run_dir/.lock``, the one-writer lock :class:`RunDir` takes (tested by
    taking it without blocking and letting go at once)."""
    lock = Path(run_dir) / ".lock"
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: RunDir takes no lock either
        return False
    with open(lock) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


class RunDirError(PoolskipError):
    """The run directory cannot be used as asked (taken, locked, missing, outside --out-dir)."""


def strict_json(obj: Any) -> Any:
    """``obj`` with NaN and infinities as None, so the files are strict JSON (a per-class IoU of a class absent
    from both prediction and target is NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    return obj


def new_run_dir(out_dir: str | os.PathLike, run_name: str | None, default_name: str) -> Path:
    """``out_dir/run_name``, checked to stay inside ``out_dir``; without ``run_name`` a fresh directory
    ``out_dir/default_name`` (``-2``, ``-3``, ... appended if taken), created here so that two runs
    started in the same second never share one."""
    out = Path(out_dir)
    if run_name is not None:
        if not run_name or Path(run_name).is_absolute() or ".." in Path(run_name).parts:
            raise RunDirError(
                f"run name {run_name!r} must be a relative path inside --out-dir {out} (no '..', not absolute)"
            )
        return out / run_name
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", default_name)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(1, 10_000):
        candidate = out / (base if i == 1 else f"{base}-{i}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise RunDirError(f"could not find a free run directory name {base}-N under {out}")


class RunDir:
    """The files of one run. Only the main process writes (``writer=False`` on other ranks)."""

    def __init__(self, path: str | os.PathLike, writer: bool = True):
        self.path, self.writer = Path(path), writer
        self.checkpoints = self.path / "checkpoints"
        self.last, self.best = self.checkpoints / "last.pt", self.checkpoints / "best.pt"
        self._lock = None

    # ------------------------------------------------------------------------------- opening

    def holds_run(self) -> bool:
        return self.path.is_dir() and any((self.path / f).exists() for f in RUN_FILES)

    def open(self, resume: bool, overwrite: bool = False) -> None:
        """Check the directory fits the request, take the writer's lock, clear stale temp files."""
        if resume:
            if not self.last.is_file():
                raise RunDirError(
                    f"cannot resume {self.path}: no checkpoints/last.pt there (expected a run directory written by "
                    "`poolskip train` that saved at least one checkpoint)"
                )
        elif self.holds_run() and not overwrite:
            raise RunDirError(
                f"{self.path} already holds a run; use `--resume {self.path}` to continue it, --overwrite to replace "
                "it, or another --run-name"
            )
        if not self.writer:
            return
        with self._writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        if overwrite and not resume:
            for name in RUN_FILES:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        for folder in (self.path, self.checkpoints):
            remove_stale_temp_files(folder)

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock, as before
            return
        fh = open(self.path / ".lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunDirError(f"{self.path} is being written by {holder}; one run directory has one writer") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._lock = fh

    def close(self) -> None:
        """Release the lock (also when the run failed)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ------------------------------------------------------------------------------- writing

    @contextlib.contextmanager
    def _writing(self, target: Path):
        """A failed write (disk full, file-size limit, read-only directory) as a one-line RunDirError (exit
        code 1) that says what failed and which checkpoint is still there."""
        try:
            yield
        except OSError as e:
            kept = (
                f"the last good checkpoint, {self.last}, is kept as it was"
                if self.last.is_file()
                else "no checkpoint was written yet"
            )
            error = RunDirError(f"writing {target} failed ({e.strerror or e}); {kept}")
            error.exit_code = 1
            raise error from None

    def write_config(self, config: dict[str, Any]) -> None:
        if self.writer:
            with self._writing(self.path / "config.yaml"):
                atomic_write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """metrics.jsonl holding exactly ``records`` (on resume: the checkpointed epochs)."""
        if self.writer:
            text = "".join(json.dumps(strict_json(r)) + "\n" for r in records)
            with self._writing(self.path / "metrics.jsonl"):
                atomic_write_text(self.path / "metrics.jsonl", text)

    def append_metrics(self, record: dict[str, Any]) -> None:
        if self.writer:
            with self._writing(self.path / "metrics.jsonl"), open(self.path / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(strict_json(record)) + "\n")

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            with self._writing(self.path / "summary.json"):
                atomic_write_text(self.path / "summary.json", json.dumps(strict_json(summary), indent=2) + "\n")
