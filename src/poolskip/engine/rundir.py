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
needs ``checkpoints/last.pt`` (or, for a run stopped before its first checkpoint, its ``config.yaml``: it
starts afresh), and a second process writing the same directory is refused. :meth:`RunDir.check` makes
these checks without writing anything, so that a run can check all its inputs before it makes its
directory; none of the run's files may be a symbolic link (``overwrite`` removes such links as links).
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
from ..files import atomic_write_text, escapes, remove_stale_temp_files

__all__ = ["RunDir", "RunDirError", "confine", "lock_held", "new_run_dir", "remove_empty_dirs"]

#: what makes a directory "hold a run"
RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "tb")
#: every path of a run directory the engine writes or follows, relative to it
OWN_FILES = (".lock", *RUN_FILES, "checkpoints/last.pt", "checkpoints/best.pt")


def lock_held(run_dir: str | os.PathLike) -> bool:
    """Whether a live process holds ``run_dir/.lock``, the one-writer lock :class:`RunDir` takes (tested by
    taking it without blocking and letting go at once). Only a lock another holds counts: on NFS, where
    ``flock`` is a byte-range lock that must be taken exclusive on a file open for writing, the file is opened
    so (a shared lock where it cannot be written), and a lock that cannot be tested at all is not taken as
    held (every run there read as "running" and every rerun of a table was refused)."""
    lock = Path(run_dir) / ".lock"
    if not lock.is_file():
        return False
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: RunDir takes no lock either
        return False
    try:
        fh, how = open(lock, "a"), fcntl.LOCK_EX  # appends nothing: the file is left as it is
    except OSError:  # a run directory this user cannot write (a copy of someone's results)
        fh, how = open(lock), fcntl.LOCK_SH
    with fh:
        try:
            fcntl.flock(fh, how | fcntl.LOCK_NB)
        except BlockingIOError:  # EWOULDBLOCK: another open file holds it
            return True
        except OSError:  # no lock to be had here (e.g. ENOLCK): nothing says another process writes the run
            return False
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


def confine(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``path``, checked to lead inside ``root`` once symbolic links are resolved (a run name, seed or fold
    directory that is a link to elsewhere would write there)."""
    path, root = Path(path), Path(root)
    real = escapes(path, root)
    if real is not None:
        raise RunDirError(
            f"{path} leads to {real}, outside {root} (a symbolic link): a run directory stays inside --out-dir; "
            "remove the link or choose another --run-name"
        )
    return path


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest of ``path`` and its parents that exists, when it is not a directory (mkdir would fail)."""
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    return existing if existing is not None and not existing.is_dir() else None


def new_run_dir(out_dir: str | os.PathLike, run_name: str | None, default_name: str) -> Path:
    """``out_dir/run_name``, checked to stay inside ``out_dir`` (links resolved) and not made here; without
    ``run_name`` a fresh directory ``out_dir/default_name`` (``-2``, ``-3``, ... appended if taken), created
    here so that two runs started in the same second never share one."""
    out = Path(out_dir)
    blocker = _file_in_the_way(out)
    if blocker is not None:
        where = "" if blocker == out else f" cannot be made: {blocker}"
        raise RunDirError(f"--out-dir {out}{where} is a file, not a directory; choose another --out-dir")
    if run_name is not None:
        if not run_name or Path(run_name).is_absolute() or ".." in Path(run_name).parts:
            raise RunDirError(
                f"run name {run_name!r} must be a relative path inside --out-dir {out} (no '..', not absolute)"
            )
        blocker = _file_in_the_way(out / run_name)
        if blocker is not None:
            raise RunDirError(f"run name {run_name!r}: {blocker} is a file, not a directory; choose another name")
        return confine(out / run_name, out)
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", default_name)
    for i in range(1, 10_000):
        candidate = out / (base if i == 1 else f"{base}-{i}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            continue
    raise RunDirError(f"could not find a free run directory name {base}-N under {out}")


def remove_empty_dirs(path: str | os.PathLike, keep: str | os.PathLike) -> None:
    """Remove ``path`` and its parents below ``keep`` while they are empty directories (what a failed start
    made and left empty; those that do not exist are passed over); stops at the first that is not."""
    path, keep = Path(path), Path(keep)
    while path != keep and keep in path.parents:
        if os.path.lexists(path):
            if path.is_symlink() or not path.is_dir():
                return
            try:
                path.rmdir()
            except OSError:  # not empty
                return
        path = path.parent


class RunDir:
    """The files of one run. Only the main process writes (``writer=False`` on other ranks)."""

    def __init__(self, path: str | os.PathLike, writer: bool = True):
        self.path, self.writer = Path(path), writer
        self.checkpoints = self.path / "checkpoints"
        self.last, self.best = self.checkpoints / "last.pt", self.checkpoints / "best.pt"
        self._lock = None

    # ------------------------------------------------------------------------------- opening

    def holds_run(self) -> bool:
        return self.path.is_dir() and any(os.path.lexists(self.path / f) for f in RUN_FILES)

    def restarts(self) -> bool:
        """Whether resuming starts the run afresh from its ``config.yaml``: it stopped before its first
        ``last.pt`` (and wrote no ``summary.json``), so there is nothing to continue; a ``best.pt`` alone is
        the first epoch's, written just before that epoch's ``last.pt``, and goes with the rest."""
        return (self.path / "config.yaml").is_file() and not any(
            os.path.lexists(p) for p in (self.last, self.path / "summary.json")
        )

    def check(self, resume: bool, overwrite: bool = False) -> None:
        """Refuse a directory that does not fit the request, writing nothing: a new run into a directory
        that holds one (without ``overwrite``), a resume without a checkpoint or a config to start afresh
        from, a path that is not a directory, run files that are symbolic links (``overwrite`` removes them)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path} is a file, not a run directory; choose another --run-name")
        if not (overwrite and not resume):
            links = [self.path / f for f in OWN_FILES if (self.path / f).is_symlink()]
            if links:
                raise RunDirError(
                    f"{links[0]} is a symbolic link (to {os.readlink(links[0])}): a run directory's files are its "
                    f"own, never written through a link; remove it{'' if resume else ' or pass --overwrite'}"
                )
        if resume:
            if not self.last.is_file() and not self.restarts():
                raise RunDirError(
                    f"cannot resume {self.path}: no checkpoints/last.pt there (expected a run directory written by "
                    "`poolskip train` that saved at least one checkpoint)"
                )
        elif self.holds_run() and not overwrite:
            if self.restarts():
                raise RunDirError(
                    f"{self.path} holds a run that stopped before its first checkpoint (nothing to resume); use "
                    f"--overwrite to start it afresh with this command's config, `--resume {self.path}` to start it "
                    "afresh with its own, or another --run-name"
                )
            hint = f"`--resume {self.path}` to continue it, " if self.last.is_file() else ""
            raise RunDirError(
                f"{self.path} already holds a run; use {hint}--overwrite to replace it, or another --run-name"
            )

    def open(self, resume: bool, overwrite: bool = False) -> None:
        """:meth:`check` the directory, then make it, take the writer's lock and check again (a process that
        held the lock may have written it meanwhile); clear it for ``overwrite`` (or a resume that starts
        afresh) and remove stale temp files. Only the writer opens: the other ranks checked the directory with
        :meth:`check` before training started, and checking it again here would race with the writer's own
        writes (a slow rank 1 found rank 0's new ``config.yaml`` and refused the run as "already holds a run")."""
        if not self.writer:
            return
        self.check(resume, overwrite)
        with self._writing(self.path):
            if overwrite and not resume and (self.path / ".lock").is_symlink():
                (self.path / ".lock").unlink()
            self.path.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        try:
            self.check(resume, overwrite)
        except RunDirError:
            self.close()
            raise
        clear = RUN_FILES if overwrite and not resume else ()
        if resume and not self.last.is_file():  # stopped before its first checkpoint: start afresh
            clear = tuple(f for f in RUN_FILES if f != "config.yaml")
        for name in clear:
            target = self.path / name
            if target.is_symlink() or target.is_file():
                target.unlink()  # a link goes as a link: never follow it to what it points at
            elif target.is_dir():
                shutil.rmtree(target)
        for folder in (self.path, self.checkpoints):
            remove_stale_temp_files(folder)

    def checkpoint_stamp(self) -> tuple[int, int, int] | None:
        """``last.pt``'s inode, size and mtime (None without one): a resume compares the stamp of the
        checkpoint it read with the one it finds once it holds the lock."""
        try:
            st = self.last.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

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
