"""This process's place among the processes of a run, and the two things data and metrics need from it.

A :class:`Dist` is made once by the engine (from ``torchrun``'s RANK / WORLD_SIZE / LOCAL_RANK) and handed
to the task, which passes it to its loaders: :meth:`Dist.shard` is the one way a global batch is split
across processes, :meth:`Dist.all_reduce_sum` the one way a metric's sums are combined. With one process
(``Dist()``) both are the identity, so a task's code is the same with and without torchrun.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as torch_dist

__all__ = ["Dist"]

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """``rank`` of ``world_size`` processes, running on ``device`` (``local_rank``: its GPU on the node)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    local_rank: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")
        object.__setattr__(self, "device", torch.device(self.device))

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and prints."""
        return self.rank == 0

    def shard(self, n: int, device: torch.device | str | None = None) -> torch.Tensor:
        """The positions in a global batch of ``n`` samples that this process takes: contiguous, near-equal
        parts (``torch.tensor_split``), so the processes' shares together are the one-process batch in order.
        ``device``: where the index tensor lives (default CPU). One process: ``arange(n)``."""
        return torch.tensor_split(torch.arange(n, device=device), self.world_size)[self.rank]

    def every_nth(self, items: Sequence[T]) -> list[T]:
        """This process's share of whole items that are each handled by one process (evaluation images,
        volumes): items ``rank``, ``rank + world_size``, ... One process: all of them."""
        return list(items[self.rank :: self.world_size])

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of ``t`` over the processes, in place (and returned); one process: ``t`` unchanged."""
        if self.world_size > 1:
            torch_dist.all_reduce(t)
        return t
