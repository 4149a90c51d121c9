"""What every modality's loader yields (:class:`Batch`) and how it seeds its random draws (:func:`mix_seed`).

The shuffle of epoch ``e`` and the augmentation of batch ``b`` come from generators seeded by
``mix_seed(seed, e)`` and ``mix_seed(seed, e, b)``: any batch can be rebuilt without replaying the ones
before it, which makes resuming mid-epoch exact, and under ``torchrun`` every process draws the same
global batch and keeps its own contiguous share (the DistributedSampler idea, without a DataLoader).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class Batch(NamedTuple):
    inputs: torch.Tensor  # this process's share, normalised float (N, C, *spatial)
    targets: torch.Tensor  # this process's targets: class labels (N,), label maps (N, *spatial), ...
    global_size: int  # samples in the global batch (all processes together)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across processes and Python runs."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF
