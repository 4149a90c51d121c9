"""Mean ± sample standard deviation over runs, as every results table of the project states it.

One run has a mean but no spread (a sample std needs two values), so its std is None and its cell has
no "±"; no run at all has neither. :mod:`.tables` (the renderer of ``report``), :mod:`.reproduce`,
:mod:`.table3` and ``poolskip demo`` all use these two.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float]) -> tuple[float | None, float | None]:
    """``(mean, sample std)`` of ``values``; the mean is None without values, the std None with fewer than two."""
    values = list(values)
    mean = statistics.fmean(values) if values else None
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def format_mean_std(mean: float | None, std: float | None, n: int | None = None, *, missing: str = "-") -> str:
    """``"12.34 ± 0.56 (n=3)"``: two decimals, no "±" where ``std`` is None, no count where ``n`` is None,
    and ``missing`` where there is no mean."""
    if mean is None:
        return missing
    return f"{mean:.2f}" + ("" if std is None else f" ± {std:.2f}") + ("" if n is None else f" (n={n})")
