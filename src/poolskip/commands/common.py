"""What the commands share: the error for a bad command line."""

from __future__ import annotations

from ..errors import PoolskipError


class UsageError(PoolskipError):
    """A command-line argument is wrong; the message names it and what is allowed (exit code 2)."""
