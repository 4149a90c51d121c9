"""The one error base class of the package's user-facing failures.

``poolskip`` commands catch :class:`PoolskipError` once (in :func:`poolskip.cli.main`) and print its
message as one line, ``poolskip COMMAND: error: ...``, exiting with :attr:`~PoolskipError.exit_code`
and no traceback. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["PoolskipError", "did_you_mean", "repeated", "torch_load_failure"]


class PoolskipError(Exception):
    """A failure the user can fix from its message (bad input, missing file, a run that cannot go on)."""

    #: 2 for bad input (the value or file named in the message), 1 for a run that failed on its own.
    exit_code: int = 2


def did_you_mean(name: object, known: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` naming the closest of ``known`` to ``name`` (difflib), or ``""``."""
    close = difflib.get_close_matches(str(name), list(known), n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


def repeated(items: Iterable) -> list:
    """The items given more than once (sorted): for "--seeds names seed 3 twice"-style refusals, where each
    item is one run directory or fold."""
    items = list(items)
    return sorted({x for x in items if items.count(x) > 1})


def torch_load_failure(error: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one short clause: for a file holding more than
    tensors and plain data, what torch found there, without torch's advice to load it with ``weights_only=False``
    (which would run what the file holds); otherwise the exception's type and first 200 characters."""
    text = str(error)
    if text.startswith("Weights only load failed"):
        detail = text.split("trusted source.", 1)[-1].split("Check the documentation")[0]
        found = " ".join(detail.split("WeightsUnpickler error:")[-1].split())
        return f"it holds more than tensors and plain data ({found[:160]}); it was refused, none of it ran"
    return f"{type(error).__name__}: " + " ".join(text.split())[:200]
