"""What the commands share: the error for a bad command line, the checkpoint a ``--which`` picks."""

from __future__ import annotations

from ..errors import PoolskipError


class UsageError(PoolskipError):
    """A command-line argument is wrong; the message names it and what is allowed (exit code 2)."""


def checkpoint_choice(path: str, which: str | None, default: str, flag: str = "--which") -> str:
    """The checkpoint (``last``/``best``) to read of ``path``: ``which``, or ``default`` where it was not given.
    A checkpoint file given with a ``which`` it is not is refused: the file is what is read, so ``last.pt --which
    best`` would silently score last.pt."""
    from pathlib import Path

    p = Path(path)
    if which is not None and not p.is_dir() and p.stem != which:
        if p.stem in ("last", "best"):
            raise UsageError(
                f"{path} is the {p.stem} checkpoint, but {flag} {which} asks for the {which} one: give its run "
                f"directory with {flag} {which}, or the file {p.with_name(which + '.pt')}"
            )
        raise UsageError(f"{flag} picks a run directory's checkpoint; {path} is a file, read as given: drop {flag}")
    return which or default
