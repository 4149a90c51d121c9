"""A one-line progress bar on interactive terminals; silence otherwise (the loop prints a line per epoch)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


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
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
