"""Progress: a one-line bar on interactive terminals, and progress lines in a run's log.

:class:`Progress` is the bar (silent when the stream is not a terminal). :func:`track` wraps a long loop
(an evaluation's batches or volumes): the bar, and inside :func:`reporting` a log line every ``every``
seconds and one at the end with the time it took (an evaluation shorter than ``every`` adds no line). The
engine and the commands open :func:`reporting` with their log on the main process and ``enabled=False``
on the others, so a task only writes ``for batch in track(batches, n, "eval"):``. :func:`tick` redraws the
innermost tracked loop's bar with a note, for work inside one item (the windows of one 3D volume).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Progress", "reporting", "tick", "track"]

T = TypeVar("T")


class Progress:
    """``update(done, describe)`` redraws at most 5 times a second; ``describe()`` is only called then."""

    def __init__(self, total: int, title: str, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.total, self.title, self.last, self.t0 = total, title, 0.0, time.perf_counter()

    def update(self, done: int, describe: Callable[[], str] = lambda: "") -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.2 and done < self.total):
            return
        self.last = now
        width = 30
        filled = width * done // max(self.total, 1)
        rate = done / max(now - self.t0, 1e-9)
        self.stream.write(
            f"\r{self.title} [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {rate:.1f} it/s {describe()}"
        )
        self.stream.flush()

    def close(self) -> None:
        """Clear the bar's line (a log line printed next starts on a clean line)."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


@dataclass(frozen=True)
class _Reporting:
    log: Callable[[str], None] | None  # where progress lines go (None: the terminal bar only)
    enabled: bool  # False on the non-main processes of a distributed run: no bar, no lines
    every: float  # seconds between progress lines


#: seconds between the progress lines of a tracked loop (and the shortest loop that logs its end line)
LOG_EVERY = 10.0
_TERMINAL_ONLY = _Reporting(None, True, LOG_EVERY)  # outside reporting(): the bar, no lines
_REPORTING: ContextVar[_Reporting | None] = ContextVar("poolskip_progress", default=None)
_ACTIVE: list[_Tracker] = []  # the tracked loops now running, innermost last (for tick)


@contextmanager
def reporting(
    log: Callable[[str], None] | None = None, *, enabled: bool = True, every: float | None = None
) -> Iterator[None]:
    """Within this block, :func:`track` writes progress lines to ``log`` (every ``every`` seconds, default
    :data:`LOG_EVERY`, and one at the end) and draws its bar on a terminal; ``enabled=False`` (the other
    processes of a distributed run) silences both."""
    every = LOG_EVERY if every is None else every
    token = _REPORTING.set(_Reporting(log if enabled else None, enabled, every))
    try:
        yield
    finally:
        _REPORTING.reset(token)


class _Tracker:
    def __init__(self, total: int, title: str, unit: str, rep: _Reporting):
        self.total, self.title, self.unit, self.rep = total, title, unit, rep
        self.bar = Progress(total, title, enabled=rep.enabled)
        self.done = 0
        self.t0 = self.last_line = time.perf_counter()

    def _line(self, text: str) -> None:
        if self.rep.log is not None:
            self.bar.close()
            self.rep.log(f"{self.title}: {text}")

    def advance(self) -> None:
        self.done += 1
        self.bar.update(self.done)
        now = time.perf_counter()
        if now - self.last_line >= self.rep.every and self.done < self.total:
            self.last_line, elapsed = now, now - self.t0
            left = elapsed / self.done * (self.total - self.done)
            pct = 100 * self.done // max(self.total, 1)
            self._line(f"{self.done}/{self.total} {self.unit} ({pct}%), {elapsed:.0f} s, about {left:.0f} s left")

    def tick(self, note: str) -> None:
        self.bar.update(self.done, lambda: note)

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.t0
        if elapsed >= self.rep.every:
            unit = {"batches": "batch", "volumes": "volume"}.get(self.unit, self.unit) if self.done == 1 else self.unit
            self._line(f"{self.done} {unit} in {elapsed:.1f} s")


def track(items: Iterable[T], total: int, title: str, unit: str = "batches") -> Iterator[T]:
    """``items`` (``total`` of them), with a bar on a terminal and progress lines in the log of the enclosing
    :func:`reporting` block; the end line says how long the loop took."""
    tracker = _Tracker(total, title, unit, _REPORTING.get() or _TERMINAL_ONLY)
    _ACTIVE.append(tracker)
    try:
        for item in items:
            yield item
            tracker.advance()
        tracker.finish()
    finally:
        tracker.bar.close()
        if tracker in _ACTIVE:
            _ACTIVE.remove(tracker)


def tick(note: str) -> None:
    """Redraw the innermost :func:`track` bar with ``note`` (e.g. ``"window 12"`` inside one volume); a no-op
    outside a tracked loop."""
    if _ACTIVE:
        _ACTIVE[-1].tick(note)
