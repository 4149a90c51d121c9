"""Helpers shared by the benchmark scripts: robust timing on a busy machine, saved-tensor bytes, tables."""

from __future__ import annotations

import platform
from collections.abc import Callable, Sequence

import torch
from torch.utils import benchmark


def interleaved_min_times(fns: dict[str, Callable[[], object]], rounds: int, number: int) -> dict[str, float]:
    """Seconds per call of each function: the best of ``rounds`` rounds of ``number`` calls each.

    The functions take turns within every round, so a slow spell of a shared machine hits all of them,
    and the minimum over rounds is the least disturbed estimate of each.
    """
    timers = {name: benchmark.Timer("fn()", globals={"fn": fn}) for name, fn in fns.items()}
    for fn in fns.values():  # warm-up (allocator, oneDNN primitive caches)
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(number).mean)
    return best


def saved_bytes(fn: Callable[[], object], exclude: Sequence[torch.Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd keeps for backward while ``fn()`` runs.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``; a storage saved twice counts once, and
    the storages of ``exclude`` (parameters: they are kept whether or not autograd saves them) not at all.
    """
    skip = {t.untyped_storage().data_ptr() for t in exclude}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine() -> str:
    """One line naming the hardware and software the numbers come from."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, torch {torch.__version__}, {torch.get_num_threads()} threads"
