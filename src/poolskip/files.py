"""Atomic file writes: a temporary file in the same directory, fsync, then rename.

Readers (and a run killed mid-write) never see half a file: the old content or the new, nothing else.
The file gets the permissions ``open()`` would give a new file (0666 less the umask), not the temporary
file's 0600. A write that fails (disk full, file-size limit, read-only directory) raises the ``OSError``
that says why, and leaves the old file as it was.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch


def escapes(path: str | os.PathLike, root: str | os.PathLike) -> Path | None:
    """Where ``path`` really leads (symbolic links resolved) if that is outside ``root`` (resolved too), else
    None: the one containment test for files a dataset names and for run directories."""
    target = Path(path).resolve()
    return None if target.is_relative_to(Path(root).resolve()) else target


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> None:
    """Call ``write(fh)`` on a temporary binary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask, read without setting it (``os.umask`` can only set, racing other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # no /proc (macOS): set and restore at once
    os.umask(mask)
    return mask


class _RecordingWriter:
    """A file's ``write``/``flush`` for ``torch.save`` that remembers the ``OSError`` of a failed write:
    torch's zip writer turns it into a ``RuntimeError`` that no longer says the disk was full."""

    def __init__(self, fh: BinaryIO):
        self.fh, self.error = fh, None

    def write(self, data) -> int:
        try:
            self.fh.write(data)
        except OSError as e:
            self.error = self.error or e
            raise
        return len(data)

    def flush(self) -> None:
        self.fh.flush()


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path``, atomically; a failed write raises its ``OSError``."""

    def write(fh: BinaryIO) -> None:
        sink = _RecordingWriter(fh)
        try:
            torch.save(obj, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise

    atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode()))


def remove_stale_temp_files(directory: str | os.PathLike) -> list[Path]:
    """Delete the temporary files an interrupted :func:`atomic_write` left in ``directory`` (a process killed
    between writing and renaming); returns what was removed. Call it only while no writer is active there."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale
